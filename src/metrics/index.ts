/**
 * rrqkit's metrics (README "Metrics"): one instrument list exported to Prometheus (the daemon's
 * `/metrics`, `metrics_port`) and to OpenTelemetry over OTLP, fed by the worker's events.
 */
export {
  INSTRUMENTS,
  instrumentList,
  OTEL_ATTRIBUTE,
  type GaugeSource,
  type InstrumentSpec,
  type Labels,
  type MetricsSink,
} from "./instruments.js";
export { RedisGaugeSource, type GaugeSourceOptions } from "./gauges.js";
export { PrometheusMetrics, type PrometheusMetricsOptions } from "./prometheus.js";
export { OtelMetrics, type OtelMetricsOptions } from "./otel.js";
export { subscribeMetrics } from "./subscriber.js";
export {
  metricsEndpointFromEnv,
  serveMetrics,
  startWorkerMetrics,
  type WorkerMetrics,
  type WorkerMetricsOptions,
} from "./worker-metrics.js";
