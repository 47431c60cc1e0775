/**
 * @rrqkit/runner: write job handlers in Node and serve them to an rrqkit or RRQ orchestrator.
 *
 * ```ts
 * const registry = new Registry().register("send_email", async (request, signal) => {...});
 * await runFromArgs(registry);
 * ```
 */
export {
  Registry,
  type AnyRegistry,
  type Handler,
  type HandlerFor,
  type HandlerReturn,
  type TypedHandler,
  type TypedRequest,
} from "./runtime/registry.js";
export type {
  IsTyped,
  JobSpec,
  JobTypes,
  ParamsOf,
  ResultOf,
  Untyped,
} from "./runtime/job-types.js";
export { runnerTags, type JobContext, type OutputWriter } from "./runtime/live.js";
export {
  MiddlewareError,
  NEXT_TWICE,
  type Middleware,
  type MiddlewareContext,
  type Next,
} from "./runtime/middleware.js";
export { Outcome, isOutcomeLike, snooze, type HandlerOutcome } from "./runtime/outcome.js";
export { NonRetryableError } from "./runtime/errors.js";
export { RunnerRuntime, type RunnerRuntimeOptions } from "./runtime/runtime.js";
export {
  runFromArgs,
  parseLaunchArgs,
  handlerListLine,
  catalogFromEnv,
  JOB_CATALOG_ENV,
  UsageError,
  USAGE,
  type LaunchOptions,
} from "./runtime/cli.js";
export { installParentGuard, takeStdoutForFrames } from "./runtime/guards.js";
export {
  noopTelemetry,
  telemetryFromEnv,
  tracesEndpointFromEnv,
  type RunnerTelemetry,
  type RunSpan,
} from "./runtime/telemetry.js";
export { RUNTIME_NAME, RUNTIME_VERSION } from "./runtime/version.js";
export type {
  ExecutionRequest,
  ExecutionContext,
  ExecutionOutcome,
  OutcomeError,
  CancelRequest,
  LiveOptions,
  Progress,
  Output,
} from "./protocol/generated/wire.js";
export { PROTOCOL_VERSION, MAX_FRAME_BYTES, ErrorTypes } from "./protocol/constants.js";
