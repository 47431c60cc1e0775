/** The conformance harness's rules for error.traceback: the matcher's $maxBytes and an optional $oneOf, and the exception event. */
import { describe, expect, it } from "vitest";
import { matchValue } from "../src/conformance/matching.js";
import type { SpanRecord } from "../src/conformance/otlp-receiver.js";
import { checkRunnerSpan, type SpanFacts } from "../src/conformance/span-rules.js";

const optionalTraceback = {
  traceback: { $oneOf: [{ $nullish: true }, { $type: "string", $maxBytes: 8192 }] },
};

describe("matching", () => {
  it("accepts an absent, null or short traceback and refuses one over 8 KiB", () => {
    expect(matchValue({}, optionalTraceback)).toEqual([]);
    expect(matchValue({ traceback: null }, optionalTraceback)).toEqual([]);
    expect(matchValue({ traceback: "é".repeat(4096) }, optionalTraceback)).toEqual([]);
    expect(matchValue({ traceback: "é".repeat(4097) }, optionalTraceback)).toHaveLength(1);
    expect(matchValue({ traceback: 7 }, optionalTraceback)).toHaveLength(1);
  });
});

describe("the exception event of rrq.runner", () => {
  const facts = (traceback?: string): SpanFacts => ({
    jobId: "j",
    functionName: "throw",
    queue: "q",
    attempt: 1,
    workerId: undefined,
    traceContext: null,
    correlationContext: null,
    hasDeadline: undefined,
    outcome: { status: "error", error: { message: "boom", type: "Error", traceback } },
  });
  const span = (events: SpanRecord["events"]): SpanRecord => ({
    traceId: "t",
    spanId: "s",
    parentSpanId: "",
    name: "rrq.runner",
    kind: 5,
    attributes: {},
    events,
    status: { code: 2, message: "boom" },
    resource: {},
    encoding: "protobuf",
  });
  const str = (value: string) => ({ type: "string" as const, value });
  const problems = (s: SpanRecord, f: SpanFacts) =>
    checkRunnerSpan(s, f).filter((p) => p.includes("exception"));

  it("is required, with type, message and stacktrace, only when the outcome has a traceback", () => {
    expect(problems(span([]), facts())).toEqual([]);
    expect(problems(span([]), facts("tb"))).toEqual([
      "an error with a traceback must be recorded as an exception event",
    ]);
    const event = {
      name: "exception",
      attributes: {
        "exception.type": str("Error"),
        "exception.message": str("boom"),
        "exception.stacktrace": str("tb"),
      },
    };
    expect(problems(span([event]), facts("tb"))).toEqual([]);
    expect(problems(span([event]), facts("other"))).toHaveLength(1);
  });
});
