/**
 * rrqkit: an RRQ 0.11-compatible job orchestrator and producer for TypeScript.
 */
export {
  Producer,
  producerConfigFrom,
  type ProducerConfig,
  type JobResult,
  type WaitOptions,
  type BulkItem,
  type ProducerCancelResult,
  type ProducerContracts,
} from "./producer/producer.js";
// job contracts (docs/contracts.md): typed producers and the catalog
export {
  type EnqueueArgs,
  type TypedBulkItem,
  type BulkItemsOf,
  type LooseBulkItems,
} from "./producer/contracts.js";
export type { JobSpec, JobTypes, ParamsOf, ResultOf, Untyped } from "@rrqkit/runner";
export {
  CatalogError,
  JobCatalog,
  loadJobCatalog,
  type JobContract,
  type ParamsProblem,
} from "@rrqkit/runner/contracts";
export { type CancelRefusal } from "./control/cancel.js";
export { BulkEnqueueError, BULK_CHUNK_SIZE } from "./producer/bulk.js";
// middleware (docs/middleware.md)
export {
  runBefore,
  runAfter,
  pendingEnqueue,
  type ProducerMiddleware,
  type PendingEnqueue,
} from "./producer/middleware.js";
// orchestrator plugins (rrq.toml `plugins`, docs/middleware.md)
export {
  PLUGIN_EVENTS,
  type RrqPlugin,
  type PluginApi,
  type PluginConfigView,
  type PluginEventName,
  type PluginEvents,
  type PluginHandler,
  type PluginLogLevel,
} from "./plugins/api.js";
export { type EnqueueOptions, optionsFromSnakeCase, MAX_PARAMS_BYTES } from "./producer/options.js";
export {
  Worker,
  newWorkerId,
  type ShutdownReport,
  type WorkerOptions,
} from "./orchestrator/worker.js";
export {
  loadConfig,
  findConfigFile,
  CONFIG_NOT_FOUND,
  type LoadConfigOptions,
  type ConfigSource,
} from "./config/load.js";
export {
  resolveConfig,
  type ResolvedConfig,
  type RunnerConfig,
  type CronJobConfig,
} from "./config/config.js";
export {
  RrqError,
  ConfigError,
  ProducerError,
  InvalidParamsError,
  EnqueueVetoedError,
  RunnerError,
  type ErrorCode,
} from "./errors.js";
export {
  EventBus,
  type OrchestratorEvents,
  type EventName,
  type JobRef,
} from "./telemetry/events.js";
export { frameValidator, FrameSchemaError } from "./protocol/validate.js";
export {
  jobTelemetryFromEnv,
  noopJobTelemetry,
  type JobTelemetry,
  type JobSpan,
} from "./telemetry/otel.js";
// the operator data API (README "Operating it")
export * from "./api/index.js";
export {
  CronScheduler,
  parseCronEntry,
  nextFire,
  latestFire,
  type CronEntry,
  type FireResult,
} from "./orchestrator/cron.js";
// metrics (README "Metrics"): the worker starts them from metrics_port and OTEL_EXPORTER_OTLP_*
export {
  startWorkerMetrics,
  metricsEndpointFromEnv,
  subscribeMetrics,
  instrumentList,
  INSTRUMENTS,
  type WorkerMetrics,
  type WorkerMetricsOptions,
  type MetricsSink,
  type InstrumentSpec,
} from "./metrics/public.js";
// the web dashboard (README "Dashboard"): mount in node:http or Express, or serve standalone
export * from "./dashboard/server/index.js";
