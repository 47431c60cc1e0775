import type { ExecutionOutcome } from "@rrqkit/runner/protocol";
import { show } from "./matching.js";
import type { AttributeValue, SpanRecord } from "./otlp-receiver.js";

/** What the harness knows about the request a span describes, to derive the expected span. */
export interface SpanFacts {
  jobId: string;
  functionName: string;
  queue: string;
  attempt: number;
  /** null: the request carried none (the attribute must be absent); undefined: any string. */
  workerId: string | null | undefined;
  /** The request's trace_context (null or absent: the span has no parent). */
  traceContext: Record<string, string> | null;
  correlationContext: Record<string, string> | null;
  /** Whether the request carried a deadline; undefined when unknown (e2e). */
  hasDeadline: boolean | undefined;
  /** The outcome the runner gave; undefined when unknown (then only types are checked). */
  outcome: Pick<ExecutionOutcome, "status" | "error" | "retry_after_seconds"> | undefined;
}

/** Where the span rules are written. */
export const SPAN_SPEC =
  "protocol/TELEMETRY.md#the-rrqrunner-span-one-per-request-a-handler-runs-for";

const SPAN_KIND_CONSUMER = 5;
const STATUS_ERROR = 2;
const STATUS_UNSET = 0;

type Expect =
  | { kind: "value"; type: AttributeValue["type"]; value: unknown }
  | { kind: "type"; type: AttributeValue["type"]; min?: number }
  | { kind: "absent" };

const value = (type: AttributeValue["type"], v: unknown): Expect => ({
  kind: "value",
  type,
  value: v,
});
const typed = (type: AttributeValue["type"], min?: number): Expect => ({ kind: "type", type, min });
const absent: Expect = { kind: "absent" };

/** The outcome attribute value of TELEMETRY.md: an error of type cancelled is "cancelled". */
export function outcomeName(outcome: NonNullable<SpanFacts["outcome"]>): string {
  return outcome.status === "error" && outcome.error?.type === "cancelled"
    ? "cancelled"
    : outcome.status;
}

/** Every attribute rule of the rrq.runner span for these facts. */
function expectedAttributes(f: SpanFacts): Record<string, Expect> {
  const e: Record<string, Expect> = {
    "rrq.job_id": value("string", f.jobId),
    "rrq.function": value("string", f.functionName),
    "rrq.queue": value("string", f.queue),
    "rrq.attempt": value("int", f.attempt),
    "rrq.worker_id":
      f.workerId === null
        ? absent
        : f.workerId === undefined
          ? typed("string")
          : value("string", f.workerId),
    "rrq.queue_wait_ms": typed("int", 0),
    "span.kind": value("string", "consumer"),
    "messaging.system": value("string", "redis"),
    "messaging.destination.name": value("string", f.queue),
    "messaging.operation": value("string", "process"),
    "rrq.duration_ms": typed("int", 0),
  };
  if (f.hasDeadline === true) e["rrq.deadline_remaining_ms"] = typed("int");
  if (f.hasDeadline === false) e["rrq.deadline_remaining_ms"] = absent;
  // A correlation entry never overrides an attribute of the table (TELEMETRY.md).
  for (const [k, v] of Object.entries(f.correlationContext ?? {}))
    if (!(k.startsWith("rrq.") || k.startsWith("messaging.") || k === "span.kind"))
      e[k] = value("string", v);
  const o = f.outcome;
  if (!o) {
    e["rrq.outcome"] = typed("string");
    return e;
  }
  e["rrq.outcome"] = value("string", outcomeName(o));
  e["rrq.retry_delay_ms"] =
    o.status === "retry" && o.retry_after_seconds != null
      ? value("int", Math.round(o.retry_after_seconds * 1000))
      : absent;
  e["rrq.error_message"] = o.error ? value("string", o.error.message) : absent;
  e["rrq.error_type"] = o.error?.type ? value("string", o.error.type) : absent;
  return e;
}

function checkAttribute(
  name: string,
  actual: AttributeValue | undefined,
  rule: Expect,
): string | undefined {
  if (rule.kind === "absent")
    return actual ? `attribute ${name} must be absent here, got ${show(actual.value)}` : undefined;
  if (!actual) return `attribute ${name} is missing`;
  if (actual.type !== rule.type)
    return `attribute ${name} must be of type ${rule.type}, got ${actual.type} ${show(actual.value)}`;
  if (rule.kind === "value" && actual.value !== rule.value)
    return `attribute ${name} must be ${show(rule.value)}, got ${show(actual.value)}`;
  if (rule.kind === "type" && rule.min !== undefined && Number(actual.value) < rule.min)
    return `attribute ${name} must be >= ${rule.min}, got ${show(actual.value)}`;
  return undefined;
}

/** The parent a span must have: from a W3C traceparent, or none. */
function expectedParent(
  traceContext: Record<string, string> | null,
): { traceId: string; spanId: string } | undefined {
  const match = /^[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-[\da-f]{2}$/.exec(
    traceContext?.traceparent?.trim() ?? "",
  );
  return match ? { traceId: match[1]!, spanId: match[2]! } : undefined;
}

/**
 * Checks one `rrq.runner` span against TELEMETRY.md: name, kind, every attribute (value and
 * type), status, and the parent taken from the request's trace_context. Returns one message per
 * broken rule (empty when the span conforms).
 */
export function checkRunnerSpan(span: SpanRecord, facts: SpanFacts): string[] {
  const problems: string[] = [];
  if (span.name !== "rrq.runner")
    problems.push(`span name must be "rrq.runner", got ${show(span.name)}`);
  if (span.kind !== SPAN_KIND_CONSUMER)
    problems.push(`span kind must be CONSUMER (5), got ${span.kind}`);
  for (const [name, rule] of Object.entries(expectedAttributes(facts))) {
    const problem = checkAttribute(name, span.attributes[name], rule);
    if (problem) problems.push(problem);
  }
  const parent = expectedParent(facts.traceContext);
  if (parent) {
    if (span.traceId !== parent.traceId || span.parentSpanId !== parent.spanId)
      problems.push(
        `parent must come from trace_context (trace ${parent.traceId}, span ${parent.spanId}), got trace ${span.traceId}, parent ${span.parentSpanId || "(none)"}`,
      );
  } else if (span.parentSpanId) {
    problems.push(
      `span must have no parent without a trace_context, got parent ${span.parentSpanId}`,
    );
  }
  const o = facts.outcome;
  if (o) {
    const failed =
      o.status === "timeout" || (o.status === "error" && o.error?.type !== "cancelled");
    if (failed && span.status.code !== STATUS_ERROR)
      problems.push(
        `span status must be ERROR for outcome ${outcomeName(o)}, got code ${span.status.code}`,
      );
    if (failed && o.error && span.status.message !== o.error.message)
      problems.push(
        `span status description must be the error message ${show(o.error.message)}, got ${show(span.status.message)}`,
      );
    if (!failed && span.status.code !== STATUS_UNSET)
      problems.push(
        `span status must be UNSET for outcome ${outcomeName(o)}, got code ${span.status.code}`,
      );
    problems.push(...exceptionEventProblems(span, o.error));
  }
  return problems;
}

/**
 * TELEMETRY.md: an outcome whose error carries a traceback is recorded as OpenTelemetry's
 * `exception` event (type, message, stacktrace). Without a traceback (RRQ's runners never send
 * one) nothing is required.
 */
function exceptionEventProblems(span: SpanRecord, error: ExecutionOutcome["error"]): string[] {
  if (typeof error?.traceback !== "string") return [];
  const event = span.events.find((e) => e.name === "exception");
  if (!event) return ["an error with a traceback must be recorded as an exception event"];
  const rules: Record<string, Expect> = {
    "exception.type": value("string", error.type || event.attributes["exception.type"]?.value),
    "exception.message": value("string", error.message),
    "exception.stacktrace": value("string", error.traceback),
  };
  return Object.entries(rules).flatMap(([name, rule]) => {
    const problem = checkAttribute(name, event.attributes[name], rule);
    return problem ? [`exception event: ${problem}`] : [];
  });
}
