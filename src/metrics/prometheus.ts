import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import {
  instrumentList,
  type CounterKey,
  type GaugeKey,
  type GaugeSource,
  type HistogramKey,
  type InstrumentKey,
  type Labels,
  type MetricsSink,
} from "./instruments.js";

/**
 * The Node process metrics (`process_*`, `nodejs_*`), registered once per process: prom-client
 * starts observers for them that are never stopped, so a worker restarted by `rrq worker watch`
 * must not register them again.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Options of {@link PrometheusMetrics}. */
export interface PrometheusMetricsOptions {
  /** Reads the gauges at each scrape. */
  gauges?: GaugeSource;
  /** Also export the Node process metrics (`process_*`, `nodejs_*`); default true. */
  processMetrics?: boolean;
  /** A gauge reading failed (e.g. Redis unreachable): the scrape goes on without it. */
  onError?: (error: Error) => void;
}

/**
 * The Prometheus side: a prom-client registry with every instrument of
 * {@link instrumentList}, fed through {@link MetricsSink}; gauges are read at scrape time.
 */
export class PrometheusMetrics implements MetricsSink {
  readonly registry = new Registry();
  private readonly counters = new Map<InstrumentKey, Counter>();
  private readonly histograms = new Map<InstrumentKey, Histogram>();
  private readonly process: Registry | undefined;

  constructor(options: PrometheusMetricsOptions = {}) {
    const { gauges, onError } = options;
    for (const spec of instrumentList()) {
      const common = {
        name: spec.prom,
        help: spec.help,
        labelNames: [...spec.labels],
        registers: [this.registry],
      };
      if (spec.kind === "counter") this.counters.set(spec.key, new Counter(common));
      else if (spec.kind === "histogram")
        this.histograms.set(spec.key, new Histogram({ ...common, buckets: [...spec.buckets!] }));
      else {
        const key = spec.key as GaugeKey;
        new Gauge({
          ...common,
          async collect() {
            this.reset();
            if (!gauges) return;
            try {
              for (const reading of (await gauges.read())[key])
                this.set(reading.labels as Record<string, string>, reading.value);
            } catch (error) {
              onError?.(error as Error);
            }
          },
        });
      }
    }
    this.process = options.processMetrics === false ? undefined : processMetrics();
  }

  add(key: CounterKey, value: number, labels: Labels): void {
    this.counters.get(key)?.inc(labels as Record<string, string>, value);
  }

  record(key: HistogramKey, seconds: number, labels: Labels): void {
    this.histograms.get(key)?.observe(labels as Record<string, string>, seconds);
  }

  /** The exposition text of every metric (what `/metrics` answers). */
  async scrape(): Promise<string> {
    const own = await this.registry.metrics();
    return this.process ? `${own}\n${await this.process.metrics()}` : own;
  }

  /** The exposition format's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
