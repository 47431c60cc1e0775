import { matchValue, show } from "./matching.js";
import type { OtlpReceiver, SpanRecord } from "./otlp-receiver.js";
import type { Failure } from "./runner-script.js";
import { checkRunnerSpan, SPAN_SPEC } from "./span-rules.js";

type Step = Record<string, unknown>;

/** How long to wait for a span once its job has finished (exporters batch every 50 ms here). */
const SPAN_WAIT_MS = 5000;

const JOB_SPAN_SPEC = "protocol/TELEMETRY.md#orchestrator-spans";

/** Attributes every rrq.job span carries, with their OTLP types (TELEMETRY.md "Orchestrator spans"). */
const JOB_SPAN_ATTRIBUTES: Record<string, string> = {
  "rrq.job_id": "string",
  "rrq.function": "string",
  "rrq.queue": "string",
  "rrq.attempt": "int",
  "rrq.worker_id": "string",
  "rrq.runner": "string",
  "rrq.queue_wait_ms": "int",
  "rrq.outcome": "string",
  "rrq.duration_ms": "int",
  "messaging.system": "string",
  "messaging.destination.name": "string",
  "messaging.operation": "string",
};

function handlerName(functionName: string): string {
  const hash = functionName.indexOf("#");
  return hash < 0 ? functionName : functionName.slice(hash + 1);
}

function queueOf(step: Step): string {
  const options = (step.options ?? {}) as Record<string, unknown>;
  const queue = typeof options.queue_name === "string" ? options.queue_name : "rrq:queue:default";
  return queue.startsWith("rrq:queue:") ? queue : `rrq:queue:${queue}`;
}

function traceOf(step: Step): Record<string, string> | null {
  const options = (step.options ?? {}) as Record<string, unknown>;
  return (options.trace_context as Record<string, string> | undefined) ?? null;
}

function parentProblem(span: SpanRecord, trace: Record<string, string> | null): string | undefined {
  const match = /^[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-[\da-f]{2}$/.exec(
    trace?.traceparent ?? "",
  );
  if (!match) return undefined;
  return span.traceId === match[1] && span.parentSpanId === match[2]
    ? undefined
    : `parent must come from the job's trace_context (trace ${match[1]}, span ${match[2]}), got trace ${span.traceId}, parent ${span.parentSpanId || "(none)"}`;
}

/**
 * Checks the rrq.runner span of a job run by a real orchestrator: the span of attempt
 * `spec.attempt` (default 1), with the outcome `spec.outcome` the runner gave.
 */
export async function checkE2eRunnerSpan(
  receiver: OtlpReceiver,
  jobId: string,
  step: Step,
  spec: Step,
): Promise<Failure[]> {
  const attempt = typeof spec.attempt === "number" ? spec.attempt : 1;
  const span = await receiver.waitFor(
    (s) =>
      s.name === "rrq.runner" &&
      s.attributes["rrq.job_id"]?.value === jobId &&
      s.attributes["rrq.attempt"]?.value === attempt,
    SPAN_WAIT_MS,
  );
  const rule = `rrq.runner span (${SPAN_SPEC})`;
  if (!span)
    return [{ rule, message: `no rrq.runner span for attempt ${attempt} of job ${jobId}` }];
  const problems = checkRunnerSpan(span, {
    jobId,
    functionName: handlerName(String(step.function_name)),
    queue: queueOf(step),
    attempt,
    workerId: undefined,
    traceContext: traceOf(step),
    correlationContext: null,
    hasDeadline: true,
    outcome: spec.outcome as never,
  });
  return problems.map((message) => ({ rule, message: `job ${jobId}: ${message}` }));
}

/** Checks the orchestrator's rrq.job span of a job: kind, parent, typed attributes, values. */
export async function checkJobSpan(
  receiver: OtlpReceiver,
  jobId: string,
  step: Step,
  spec: Step,
): Promise<Failure[]> {
  const attempt = typeof spec.attempt === "number" ? spec.attempt : 1;
  const span = await receiver.waitFor(
    (s) =>
      s.name === "rrq.job" &&
      s.attributes["rrq.job_id"]?.value === jobId &&
      s.attributes["rrq.attempt"]?.value === attempt,
    SPAN_WAIT_MS,
  );
  const rule = `orchestrator rrq.job span (${JOB_SPAN_SPEC})`;
  if (!span)
    return [
      {
        rule,
        message: `no rrq.job span for attempt ${attempt} of job ${jobId} reached the OTLP receiver`,
      },
    ];
  const problems: string[] = [];
  if (span.kind !== 5) problems.push(`span kind must be CONSUMER (5), got ${span.kind}`);
  for (const [name, type] of Object.entries(JOB_SPAN_ATTRIBUTES)) {
    const value = span.attributes[name];
    if (!value) problems.push(`attribute ${name} is missing`);
    else if (value.type !== type)
      problems.push(
        `attribute ${name} must be of type ${type}, got ${value.type} ${show(value.value)}`,
      );
  }
  const values = Object.fromEntries(Object.entries(span.attributes).map(([k, v]) => [k, v.value]));
  const expected = {
    "rrq.job_id": jobId,
    "rrq.function": String(step.function_name),
    "rrq.queue": queueOf(step),
    ...(spec.attributes as object | undefined),
  };
  for (const m of matchValue(values, expected)) problems.push(`${m.path}: ${m.message}`);
  const parent = parentProblem(span, traceOf(step));
  if (parent) problems.push(parent);
  return problems.map((message) => ({ rule, message: `job ${jobId}: ${message}` }));
}
