/**
 * What the package entry exports of the metrics (src/index.ts): only modules that load no
 * metrics library, so importing rrqkit stays cheap; prom-client and the OpenTelemetry SDK are
 * loaded when a worker starts its metrics (see {@link startWorkerMetrics}).
 */
export {
  INSTRUMENTS,
  instrumentList,
  type InstrumentSpec,
  type MetricsSink,
} from "./instruments.js";
export { subscribeMetrics } from "./subscriber.js";
export {
  metricsEndpointFromEnv,
  startWorkerMetrics,
  type WorkerMetrics,
  type WorkerMetricsOptions,
} from "./worker-metrics.js";
