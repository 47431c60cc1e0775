import { tracesEndpointFromEnv } from "@rrqkit/runner";
import type { JobRecord } from "../store/job.js";
import { parseTimestamp } from "../store/encoding.js";

/** How one attempt ended, as the rrq.job span reports it. */
export interface JobSpanResult {
  /** success, retry, timeout, error, fatal or transport_error (RRQ's rrq.job outcomes). */
  outcome: string;
  durationMs: number;
  retryDelayMs?: number;
  errorMessage?: string;
  errorType?: string | null;
  /** The runner's traceback: the span then gets an OpenTelemetry `exception` event. */
  traceback?: string | null;
}

/** The span of one attempt; ended exactly once. */
export interface JobSpan {
  end(result: JobSpanResult): void;
}

/** What an rrq.job span describes. */
export interface JobSpanStart {
  job: JobRecord;
  queue: string;
  runner: string;
  workerId: string;
}

/** Span hooks of the orchestrator (protocol/TELEMETRY.md, "Orchestrator spans"). */
export interface JobTelemetry {
  startJob(start: JobSpanStart): JobSpan | undefined;
  shutdown(): Promise<void>;
}

/** Records nothing. */
export const noopJobTelemetry: JobTelemetry = {
  startJob: () => undefined,
  shutdown: async () => {},
};

/**
 * OpenTelemetry rrq.job spans when the environment names an OTLP traces endpoint (the same rules
 * as the runners), else no-op hooks. The SDK is only loaded when needed.
 */
export async function jobTelemetryFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): Promise<JobTelemetry> {
  const endpoint = tracesEndpointFromEnv(env);
  if (!endpoint) return noopJobTelemetry;
  const { createJobTelemetry } = await import("./otel-sdk.js");
  return createJobTelemetry(endpoint, env.OTEL_SERVICE_NAME ?? "rrq");
}

/** The start attributes of an rrq.job span (RRQ's set). */
export function jobAttributes(start: JobSpanStart): Record<string, string | number> {
  const { job, queue, runner, workerId } = start;
  const attributes: Record<string, string | number> = {
    "span.kind": "consumer",
    "messaging.system": "redis",
    "messaging.destination.name": queue,
    "messaging.operation": "process",
    "rrq.job_id": job.id,
    "rrq.function": job.functionName,
    "rrq.queue": queue,
    "rrq.attempt": job.currentRetries + 1,
    "rrq.worker_id": workerId,
    "rrq.runner": runner,
  };
  const started = job.startTime ? parseTimestamp(job.startTime) : undefined;
  if (started !== undefined)
    attributes["rrq.queue_wait_ms"] = Math.max(0, Math.floor(started - job.enqueueTimeMs));
  for (const [key, value] of Object.entries(job.correlationContext ?? {})) attributes[key] = value;
  return attributes;
}

/** The end attributes of an rrq.job span. */
export function jobEndAttributes(result: JobSpanResult): Record<string, string | number> {
  const attributes: Record<string, string | number> = {
    "rrq.outcome": result.outcome,
    "rrq.duration_ms": Math.floor(result.durationMs),
  };
  if (result.retryDelayMs !== undefined)
    attributes["rrq.retry_delay_ms"] = Math.round(result.retryDelayMs);
  if (result.errorMessage) attributes["rrq.error_message"] = result.errorMessage;
  if (result.errorType) attributes["rrq.error_type"] = result.errorType;
  return attributes;
}
