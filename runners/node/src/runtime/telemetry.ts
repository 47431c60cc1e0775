import type { ExecutionOutcome, ExecutionRequest } from "../protocol/generated/wire.js";

/** The span of one handler run; ended exactly once with the request's outcome. */
export interface RunSpan {
  end(outcome: ExecutionOutcome): void;
}

/** Span hooks of a runner (protocol/TELEMETRY.md). */
export interface RunnerTelemetry {
  /** Called when a request starts running (after the busy and version checks). */
  startRun(request: ExecutionRequest): RunSpan | undefined;
  /** Flushes and stops exporting. */
  shutdown(): Promise<void>;
}

/** Telemetry that records nothing. */
export const noopTelemetry: RunnerTelemetry = {
  startRun: () => undefined,
  shutdown: async () => {},
};

/**
 * The traces endpoint named by the environment, per TELEMETRY.md: the traces-specific variable
 * wins (empty disables), else the generic one with `/v1/traces` appended.
 */
export function tracesEndpointFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (specific !== undefined) return specific.trim() === "" ? undefined : specific.trim();
  const generic = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!generic) return undefined;
  return `${generic.replace(/\/v1\/[a-z]+\/?$/, "").replace(/\/$/, "")}/v1/traces`;
}

/**
 * OpenTelemetry span hooks when the environment names a traces endpoint, else no-op ones.
 * The OpenTelemetry SDK is only loaded when it is needed.
 */
export async function telemetryFromEnv(): Promise<RunnerTelemetry> {
  const endpoint = tracesEndpointFromEnv();
  if (!endpoint) return noopTelemetry;
  const { createOtelTelemetry } = await import("./otel.js");
  return createOtelTelemetry({ endpoint });
}
