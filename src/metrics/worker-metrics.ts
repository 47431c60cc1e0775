import { createServer, type Server } from "node:http";
import type { Redis } from "ioredis";
import { ConfigError } from "../errors.js";
import type { EventBus } from "../telemetry/events.js";
import { RedisGaugeSource } from "./gauges.js";
import type { CounterKey, HistogramKey, Labels, MetricsSink } from "./instruments.js";
import type { OtelMetrics } from "./otel.js";
import type { PrometheusMetrics } from "./prometheus.js";
import { subscribeMetrics } from "./subscriber.js";

/** Gauge reading failures are reported at most this often. */
const ERROR_REPORT_EVERY_MS = 60_000;

/** Options of {@link startWorkerMetrics}. */
export interface WorkerMetricsOptions {
  /** Port of the Prometheus `/metrics` endpoint (0: none). */
  metricsPort: number;
  /** Host it binds. */
  metricsHost: string;
  events: EventBus;
  /** The worker's Redis connection (queue gauges read through it). */
  redis: Redis;
  /** The worker's queues (always reported by the queue gauges). */
  queues: readonly string[];
  /** Requests in flight per runner, now. */
  inFlight: () => ReadonlyMap<string, number>;
  /** Epoch ms by Redis's clock. */
  now?: () => number;
  /** Where the OTLP variables are read (default `process.env`). */
  env?: NodeJS.ProcessEnv;
}

/** A worker's running metrics: the endpoint, the OTLP export, or both. */
export interface WorkerMetrics {
  readonly prometheus: PrometheusMetrics | undefined;
  readonly otel: OtelMetrics | undefined;
  /** `http://host:port/metrics` when the endpoint listens. */
  readonly url: string | undefined;
  /** Unsubscribes, exports a last time (OTLP) and closes the endpoint. */
  stop(): Promise<void>;
}

/**
 * The OTLP metrics endpoint the environment names, by OpenTelemetry's rules (as traces):
 * `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`;
 * undefined when neither is set (no export). `OTEL_METRICS_EXPORTER=none` turns it off.
 */
export function metricsEndpointFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.OTEL_METRICS_EXPORTER?.trim().toLowerCase() === "none") return undefined;
  const specific = env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT;
  if (specific !== undefined) return specific.trim() === "" ? undefined : specific.trim();
  const generic = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!generic) return undefined;
  return `${generic.replace(/\/v1\/[a-z]+\/?$/, "").replace(/\/$/, "")}/v1/metrics`;
}

/** `OTEL_METRIC_EXPORT_INTERVAL` in ms, when it is a positive number. */
export function exportIntervalFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = Number(env.OTEL_METRIC_EXPORT_INTERVAL);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

/** A URL without its `user:password@` part (for logs). */
function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/** Sends each measurement to every sink. */
class Fanout implements MetricsSink {
  constructor(private readonly sinks: readonly MetricsSink[]) {}
  add(key: CounterKey, value: number, labels: Labels): void {
    for (const sink of this.sinks) sink.add(key, value, labels);
  }
  record(key: HistogramKey, seconds: number, labels: Labels): void {
    for (const sink of this.sinks) sink.record(key, seconds, labels);
  }
}

/** Serves `GET /metrics` (and `/`) from `prometheus`; resolves once listening. */
export function serveMetrics(
  prometheus: PrometheusMetrics,
  port: number,
  host: string,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path !== "/metrics" && path !== "/") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics\n");
      return;
    }
    prometheus.scrape().then(
      (text) => {
        res.writeHead(200, { "content-type": prometheus.contentType });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (error: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`metrics collection failed: ${String(error)}\n`);
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/**
 * Starts a worker's metrics when configured: the Prometheus endpoint when `metricsPort` is set,
 * the OTLP export when the environment names an endpoint; undefined when neither is. The
 * libraries are loaded only then. Throws when the port cannot be bound.
 */
export async function startWorkerMetrics(
  options: WorkerMetricsOptions,
): Promise<WorkerMetrics | undefined> {
  const env = options.env ?? process.env;
  const endpoint = metricsEndpointFromEnv(env);
  if (options.metricsPort <= 0 && endpoint === undefined) return undefined;
  let lastReport = -Infinity;
  const onError = (error: Error) => {
    if (Date.now() - lastReport < ERROR_REPORT_EVERY_MS) return;
    lastReport = Date.now();
    options.events.emit("worker:error", { context: "metrics: reading the gauges", error });
  };
  const gauges = new RedisGaugeSource({
    redis: options.redis,
    queues: options.queues,
    inFlight: options.inFlight,
    now: options.now,
  });
  let prometheus: PrometheusMetrics | undefined;
  let otel: OtelMetrics | undefined;
  let server: Server | undefined;
  if (options.metricsPort > 0) {
    const { PrometheusMetrics } = await import("./prometheus.js");
    prometheus = new PrometheusMetrics({ gauges, onError });
    const { metricsPort: port, metricsHost: host } = options;
    server = await serveMetrics(prometheus, port, host).catch((error: unknown) => {
      throw new ConfigError(
        "invalid_config",
        `metrics_port ${port}: cannot serve /metrics on ${host}:${port} ` +
          `(${(error as Error).message}); choose a free port or set metrics_port = 0`,
        { cause: error },
      );
    });
  }
  if (endpoint !== undefined) {
    const { OtelMetrics } = await import("./otel.js");
    otel = new OtelMetrics({
      endpoint,
      serviceName: env.OTEL_SERVICE_NAME ?? "rrq",
      exportIntervalMs: exportIntervalFromEnv(env),
      gauges,
      onError,
    });
  }
  const unsubscribe = subscribeMetrics(
    options.events,
    new Fanout([prometheus, otel].filter((s): s is NonNullable<typeof s> => s !== undefined)),
  );
  const address = server?.address();
  const url =
    address && typeof address === "object"
      ? `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}/metrics`
      : undefined;
  options.events.emit("metrics:started", {
    url: url ?? null,
    otlpEndpoint: endpoint === undefined ? null : withoutCredentials(endpoint),
  });
  return {
    prometheus,
    otel,
    url,
    async stop() {
      unsubscribe();
      await new Promise<void>((resolve) => {
        if (!server) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      // the last export (bounded by the exporter's timeout; the worker bounds it again)
      await otel?.shutdown().catch(() => undefined);
    },
  };
}
