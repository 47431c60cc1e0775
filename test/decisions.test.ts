/** The outcome table's timeout rule (pure logic): whichever clock fires, one message. */
import { describe, expect, it } from "vitest";
import {
  decide,
  decideTransportError,
  failureDetail,
  type Decision,
  type RetryPolicy,
} from "../src/orchestrator/decisions.js";
import { parseJob } from "../src/store/job.js";

const job = parseJob("j1", {
  id: "j1",
  function_name: "sleep",
  status: "ACTIVE",
  enqueue_time: "2026-01-01T00:00:00+00:00",
});
const policy: RetryPolicy = {
  defaultMaxRetries: 3,
  baseRetryDelaySeconds: 0.5,
  maxRetryDelaySeconds: 5,
};
const timeout = (message: string | undefined) =>
  decide(
    job,
    {
      job_id: "j1",
      request_id: "r1",
      status: "timeout",
      error: message === undefined ? undefined : { message, type: "timeout" },
    },
    policy,
    1,
  );

describe("decide: runner-reported timeouts", () => {
  it("records a runner's own deadline expiry as the orchestrator's timeout message", () => {
    // The last one is RRQ 0.11's Python runtime (trailing period); seen when its clock wins.
    for (const message of [
      undefined,
      "Job execution timed out",
      "Job deadline exceeded",
      "Job execution timed out.",
    ]) {
      expect(timeout(message)).toMatchObject({
        kind: "dlq",
        error: "Job timed out after 1s.",
        outcome: "timeout",
      });
    }
  });

  it("keeps a handler's own timeout message", () => {
    expect(timeout("upstream API timed out")).toMatchObject({ error: "upstream API timed out" });
  });
});

describe("failure details: error type and traceback (RUNNER_PROTOCOL.md §7.1)", () => {
  const failed = (d: Decision) => failureDetail(d as Exclude<Decision, { kind: "complete" }>);
  const thrown = (traceback: unknown) =>
    decide(
      job,
      {
        job_id: "j1",
        request_id: "r1",
        status: "error",
        error: { message: "boom", type: "ValueError", traceback: traceback as string },
      },
      policy,
      1,
    );

  it("takes the runner's type and traceback, capped again at 8 KiB", () => {
    expect(failed(thrown("tb"))).toEqual({ type: "ValueError", traceback: "tb" });
    const long = failed(thrown("t".repeat(100_000))).traceback!;
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(8192);
    expect(long).toContain("bytes truncated] ...");
    expect(failed(thrown(42))).toEqual({ type: "ValueError", traceback: null });
  });

  it("names the orchestrator's own failures by their outcome", () => {
    expect(failed(decideTransportError(job, "EPIPE", policy))).toEqual({
      type: "transport_error",
      traceback: null,
    });
    const own: Decision = { kind: "dlq", error: "Job timed out after 1s.", outcome: "timeout" };
    expect(failed(own)).toEqual({ type: "timeout", traceback: null });
    expect(failed(timeout(undefined))).toEqual({ type: "timeout", traceback: null });
  });
});
