/** The 8 KiB cap of error.traceback (RUNNER_PROTOCOL.md §7.1) and where the runtime fills it in. */
import { describe, expect, it } from "vitest";
import {
  boundedTraceback,
  capTraceback,
  MAX_TRACEBACK_BYTES,
  parseFrame,
  responseFrame,
} from "../src/protocol/index.js";
import { exceptionEventAttributes } from "../src/runtime/otel.js";
import { thrownOutcome } from "../src/runtime/outcome.js";
import { request } from "./support/requests.js";

describe("capTraceback", () => {
  it("keeps text of at most 8 KiB as it is", () => {
    expect(capTraceback("a\nb")).toBe("a\nb");
    const exact = "x".repeat(MAX_TRACEBACK_BYTES);
    expect(capTraceback(exact)).toBe(exact);
  });

  it("keeps the first 4096 and last 4000 bytes on character boundaries", () => {
    const text = "é".repeat(3000) + "z".repeat(5000); // 11,000 bytes
    const capped = capTraceback(text);
    expect(Buffer.byteLength(capped)).toBeLessThanOrEqual(MAX_TRACEBACK_BYTES);
    expect(capped).toBe("é".repeat(2048) + "\n... [2904 bytes truncated] ...\n" + "z".repeat(4000));
  });

  it("treats anything but a non-empty string as no traceback", () => {
    expect(boundedTraceback(undefined)).toBeNull();
    expect(boundedTraceback(7)).toBeNull();
    expect(boundedTraceback("")).toBeNull();
    expect(boundedTraceback("y".repeat(9000))).toHaveLength(
      4096 + 4000 + "\n... [904 bytes truncated] ...\n".length,
    );
  });
});

describe("thrown errors", () => {
  it("send their stack, capped, and TimeoutError's too", () => {
    const { frame } = request("throw");
    const req = frame.payload as never;
    class QuotaError extends Error {
      override name = "QuotaError";
    }
    const out = thrownOutcome(req, new QuotaError("over " + "q".repeat(20000)));
    expect(out.error?.type).toBe("QuotaError");
    expect(out.error?.traceback?.startsWith("QuotaError: over qqq")).toBe(true);
    expect(Buffer.byteLength(out.error!.traceback!)).toBeLessThanOrEqual(MAX_TRACEBACK_BYTES);
    const timeout = new Error("slow");
    timeout.name = "TimeoutError";
    expect(thrownOutcome(req, timeout).error?.traceback).toMatch(/^TimeoutError: slow\n/);
    expect(thrownOutcome(req, "a string").error).toMatchObject({ type: "string" });
    expect(thrownOutcome(req, "a string").error).not.toHaveProperty("traceback");
  });

  it("write traceback on the wire only when there is one, and get an exception event", () => {
    const error = { message: "m", type: "E", code: null, details: null };
    const base = { job_id: "j", request_id: "r", status: "error" as const };
    expect(responseFrame({ ...base, error }).payload).toMatchObject({ error });
    expect(Object.keys((responseFrame({ ...base, error }).payload as never)["error"])).toEqual([
      "message",
      "type",
      "code",
      "details",
    ]);
    expect(exceptionEventAttributes(error)).toBeUndefined();
    expect(exceptionEventAttributes({ ...error, traceback: "tb" })).toEqual({
      "exception.type": "E",
      "exception.message": "m",
      "exception.stacktrace": "tb",
    });
  });

  it("reject a traceback that is not a string", () => {
    const frame = {
      type: "response",
      payload: {
        job_id: "j",
        request_id: "r",
        status: "error",
        error: { message: "m", traceback: 1 },
      },
    };
    expect(() => parseFrame(frame)).toThrow(/error.traceback must be a string/);
  });
});
