/**
 * Permanent errors and snoozes in the Node runtime (RUNNER_PROTOCOL.md §7, §7.2): the helpers'
 * outcomes, their wire form, and the conformance handlers over a real runner process.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NonRetryableError, Outcome, snooze } from "../src/index.js";
import { parseFrame, responseFrame, jsonCodec } from "../src/protocol/index.js";
import { outcomeFor, thrownOutcome } from "../src/runtime/outcome.js";
import { request } from "./support/requests.js";
import { RunnerProcess, type TestClient } from "./support/runner-process.js";

const req = () => request("x").frame.payload as never;

describe("NonRetryableError", () => {
  it("gives the reserved type non_retryable with message and stack", () => {
    const out = thrownOutcome(req(), new NonRetryableError("card invalid"));
    expect(out.status).toBe("error");
    expect(out.error).toMatchObject({ message: "card invalid", type: "non_retryable" });
    expect(out.error?.traceback).toMatch(/^NonRetryableError: card invalid\n/);
  });

  it("keeps the type for a subclass with its own name, and for another copy's error", () => {
    class BadInput extends NonRetryableError {
      override name = "BadInput";
    }
    expect(thrownOutcome(req(), new BadInput("x")).error?.type).toBe("non_retryable");
    const foreign = Object.assign(new Error("y"), { [Symbol.for("rrqkit.nonRetryable")]: true });
    expect(thrownOutcome(req(), foreign).error?.type).toBe("non_retryable");
    expect(thrownOutcome(req(), new Error("z")).error?.type).toBe("Error");
  });

  it("Outcome.failPermanently returns the same outcome without a traceback", () => {
    const out = outcomeFor(req(), Outcome.failPermanently("nope"));
    expect(out.error).toEqual({ message: "nope", type: "non_retryable" });
  });
});

describe("snooze", () => {
  it("is a retry with snooze true and the delay", () => {
    const out = outcomeFor(req(), snooze(30));
    expect(out).toMatchObject({
      status: "retry",
      retry_after_seconds: 30,
      error: { message: "Job snoozed", type: null },
      snooze: true,
    });
    expect(outcomeFor(req(), Outcome.snooze(0)).retry_after_seconds).toBe(0);
  });

  it("rejects negative, NaN, infinite and non-number seconds at the call", () => {
    for (const bad of [-1, NaN, Infinity, -Infinity, "5" as unknown as number]) {
      expect(() => snooze(bad)).toThrow(RangeError);
    }
  });

  it("writes snooze last and only when true, so other outcomes stay RRQ's bytes", () => {
    const frame = responseFrame(outcomeFor(req(), snooze(1.5)));
    expect(Object.keys(frame.payload)).toEqual([
      "job_id",
      "request_id",
      "status",
      "result",
      "error",
      "retry_after_seconds",
      "snooze",
    ]);
    const plain = responseFrame(outcomeFor(req(), Outcome.retry("later", 2)));
    expect(plain.payload).not.toHaveProperty("snooze");
    // A flag on a non-retry outcome means nothing and is dropped.
    const odd = outcomeFor(req(), { ...Outcome.success(1), snooze: true });
    expect(odd).not.toHaveProperty("snooze");
  });

  it("is read back from the wire, and a non-boolean snooze is an invalid frame", () => {
    const frame = responseFrame(outcomeFor(req(), snooze(1)));
    const decoded = parseFrame(jsonCodec.decodeBody(jsonCodec.encodeFrame(frame).subarray(4)));
    expect(decoded.payload).toMatchObject({ snooze: true });
    const bad = { type: "response", payload: { ...frame.payload, snooze: "yes" } };
    expect(() => parseFrame(bad)).toThrow(/snooze/);
  });
});

describe("conformance handlers fail_permanently and snooze (real process)", () => {
  let runner: RunnerProcess;
  let client: TestClient;
  beforeAll(async () => {
    runner = await RunnerProcess.start({ transport: "stdio", encoding: "json" });
    client = await runner.connect();
  });
  afterAll(async () => {
    await runner.stop();
  });

  it("fail_permanently answers non_retryable with the message", async () => {
    const r = request("fail_permanently", { message: "bad card" });
    client.send(r.frame);
    const out = await client.response(r.requestId);
    expect(out.status).toBe("error");
    expect(out.error).toMatchObject({ message: "bad card", type: "non_retryable" });
  });

  it("snooze snoozes `times` times per job, then succeeds with the attempt", async () => {
    const jobId = `job-snooze-${Date.now()}`;
    for (let i = 0; i < 2; i++) {
      const r = request("snooze", { seconds: 0.25, times: 2 }, { jobId });
      client.send(r.frame);
      expect(await client.response(r.requestId)).toEqual({
        job_id: jobId,
        request_id: r.requestId,
        status: "retry",
        result: null,
        error: { message: "Job snoozed", type: null, code: null, details: null },
        retry_after_seconds: 0.25,
        snooze: true,
      });
    }
    const r = request("snooze", { seconds: 0.25, times: 2 }, { jobId });
    client.send(r.frame);
    expect(await client.response(r.requestId)).toMatchObject({
      status: "success",
      result: { snoozed: 2, attempt: 1 },
    });
  });
});
