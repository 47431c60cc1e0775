import {
  context as otelContext,
  propagation,
  SpanKind,
  SpanStatusCode,
  type Attributes,
  type Context,
  type Tracer,
} from "@opentelemetry/api";
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { ErrorTypes } from "../protocol/constants.js";
import type { ExecutionOutcome, ExecutionRequest } from "../protocol/generated/wire.js";
import type { RunnerTelemetry, RunSpan } from "./telemetry.js";

/** Options of {@link createOtelTelemetry}. */
export interface OtelTelemetryOptions {
  /** OTLP/HTTP traces URL; defaults to the OTEL_EXPORTER_OTLP_* environment. */
  endpoint?: string;
  /** Resource service.name; defaults to OTEL_SERVICE_NAME, else "rrq-runner". */
  serviceName?: string;
}

/** W3C TraceContext + Baggage, the propagation every rrqkit component uses. */
export const propagator = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
});

/** The parent context named by a job's `trace_context` carrier (the active context if none). */
export function parentContextFrom(
  carrier: Readonly<Record<string, string | undefined>> | null | undefined,
): Context {
  const entries: Record<string, string | undefined> = { ...(carrier ?? {}) };
  return propagator.extract(otelContext.active(), entries, {
    get: (c: typeof entries, key: string) => c[key],
    keys: (c: typeof entries) => Object.keys(c),
  });
}

/** Names the rrq.runner span sets itself: rrq.*, messaging.* and span.kind. */
function reservedAttribute(name: string): boolean {
  return name.startsWith("rrq.") || name.startsWith("messaging.") || name === "span.kind";
}

function wholeMs(ms: number): number {
  return Math.floor(ms);
}

/** The start attributes of an rrq.runner span (protocol/TELEMETRY.md). */
export function startAttributes(request: ExecutionRequest, now = Date.now()): Attributes {
  const c = request.context;
  const attributes: Attributes = {
    "rrq.job_id": request.job_id,
    "rrq.function": request.function_name,
    "rrq.queue": c.queue_name,
    "rrq.attempt": c.attempt,
    "span.kind": "consumer",
    "messaging.system": "redis",
    "messaging.destination.name": c.queue_name,
    "messaging.operation": "process",
  };
  if (c.worker_id != null) attributes["rrq.worker_id"] = c.worker_id;
  const enqueued = Date.parse(c.enqueue_time);
  if (!Number.isNaN(enqueued))
    attributes["rrq.queue_wait_ms"] = Math.max(0, wholeMs(now - enqueued));
  if (c.deadline != null) {
    const deadline = Date.parse(c.deadline);
    if (!Number.isNaN(deadline)) attributes["rrq.deadline_remaining_ms"] = wholeMs(deadline - now);
  }
  for (const [key, value] of Object.entries(c.correlation_context ?? {})) {
    // A correlation entry never overrides an attribute of the table (TELEMETRY.md).
    if (typeof value === "string" && !reservedAttribute(key)) attributes[key] = value;
  }
  return attributes;
}

/** The end attributes of an rrq.runner span for an outcome. */
export function endAttributes(outcome: ExecutionOutcome, durationMs: number): Attributes {
  const cancelled = outcome.status === "error" && outcome.error?.type === ErrorTypes.cancelled;
  const attributes: Attributes = {
    "rrq.outcome": cancelled ? "cancelled" : outcome.status,
    "rrq.duration_ms": wholeMs(durationMs),
  };
  if (outcome.status === "retry" && outcome.retry_after_seconds != null) {
    attributes["rrq.retry_delay_ms"] = Math.round(outcome.retry_after_seconds * 1000);
  }
  if (outcome.error) {
    attributes["rrq.error_message"] = outcome.error.message;
    if (outcome.error.type) attributes["rrq.error_type"] = outcome.error.type;
  }
  return attributes;
}

/**
 * The attributes of the OpenTelemetry `exception` event of an outcome whose error carries a
 * traceback (TELEMETRY.md), or undefined when it has none: only thrown errors get the event.
 */
export function exceptionEventAttributes(
  error: ExecutionOutcome["error"] | undefined,
): Attributes | undefined {
  if (!error || typeof error.traceback !== "string") return undefined;
  return {
    "exception.type": error.type || "Error",
    "exception.message": error.message,
    "exception.stacktrace": error.traceback,
  };
}

function spanFor(tracer: Tracer, request: ExecutionRequest): RunSpan {
  const started = performance.now();
  const parent = parentContextFrom(request.context.trace_context);
  const span = tracer.startSpan(
    "rrq.runner",
    { kind: SpanKind.CONSUMER, attributes: startAttributes(request) },
    parent,
  );
  return {
    end(outcome) {
      span.setAttributes(endAttributes(outcome, performance.now() - started));
      const exception = exceptionEventAttributes(outcome.error);
      if (exception) span.addEvent("exception", exception);
      const failed =
        outcome.status === "timeout" ||
        (outcome.status === "error" && outcome.error?.type !== ErrorTypes.cancelled);
      if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error?.message });
      span.end();
    },
  };
}

/** OpenTelemetry rrq.runner spans, exported by OTLP/HTTP protobuf. */
export function createOtelTelemetry(options: OtelTelemetryOptions = {}): RunnerTelemetry {
  const serviceName = options.serviceName ?? process.env.OTEL_SERVICE_NAME ?? "rrq-runner";
  const exporter = new OTLPTraceExporter(options.endpoint ? { url: options.endpoint } : {});
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  propagation.setGlobalPropagator(propagator);
  const tracer = provider.getTracer("rrq");
  return {
    startRun: (request) => spanFor(tracer, request),
    shutdown: () => provider.shutdown(),
  };
}
