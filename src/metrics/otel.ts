import type { Attributes, Counter, Histogram, Meter } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type MetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  instrumentList,
  OTEL_ATTRIBUTE,
  OTEL_CONSTANT_ATTRIBUTES,
  type CounterKey,
  type GaugeKey,
  type GaugeSource,
  type HistogramKey,
  type InstrumentKey,
  type LabelName,
  type Labels,
  type MetricsSink,
} from "./instruments.js";

/** Default interval between two OTLP metric exports (OpenTelemetry's default: 60 s). */
export const DEFAULT_EXPORT_INTERVAL_MS = 60_000;

/** Options of {@link OtelMetrics}. */
export interface OtelMetricsOptions {
  /** OTLP/HTTP protobuf endpoint (…/v1/metrics), or a reader (tests, embedding). */
  endpoint: string | MetricReader;
  serviceName?: string;
  /** Export interval for an endpoint (`OTEL_METRIC_EXPORT_INTERVAL`, ms). */
  exportIntervalMs?: number;
  /** Reads the gauges at each collection. */
  gauges?: GaugeSource;
  /** A gauge reading failed: the collection goes on without it. */
  onError?: (error: Error) => void;
}

/** OpenTelemetry attributes of a measurement's labels. */
function attributesOf(labels: Labels): Attributes {
  const attributes: Attributes = { ...OTEL_CONSTANT_ATTRIBUTES };
  for (const [name, value] of Object.entries(labels))
    if (value !== undefined) attributes[OTEL_ATTRIBUTE[name as LabelName]] = value;
  return attributes;
}

/**
 * The OpenTelemetry side: a MeterProvider with every instrument of {@link instrumentList},
 * exported over OTLP/HTTP protobuf, fed through {@link MetricsSink} like the Prometheus side.
 */
export class OtelMetrics implements MetricsSink {
  readonly provider: MeterProvider;
  private readonly counters = new Map<InstrumentKey, Counter>();
  private readonly histograms = new Map<InstrumentKey, Histogram>();

  constructor(options: OtelMetricsOptions) {
    const reader =
      typeof options.endpoint === "string"
        ? new PeriodicExportingMetricReader({
            exporter: new OTLPMetricExporter({ url: options.endpoint }),
            exportIntervalMillis: options.exportIntervalMs ?? DEFAULT_EXPORT_INTERVAL_MS,
            exportTimeoutMillis: Math.min(
              30_000,
              options.exportIntervalMs ?? DEFAULT_EXPORT_INTERVAL_MS,
            ),
          })
        : options.endpoint;
    this.provider = new MeterProvider({
      resource: resourceFromAttributes({ "service.name": options.serviceName ?? "rrq" }),
      readers: [reader],
    });
    this.build(this.provider.getMeter("rrqkit.orchestrator"), options);
  }

  private build(meter: Meter, options: OtelMetricsOptions): void {
    const gauges = new Map<GaugeKey, ReturnType<Meter["createObservableGauge"]>>();
    for (const spec of instrumentList()) {
      const common = { description: spec.help, unit: spec.unit };
      if (spec.kind === "counter")
        this.counters.set(spec.key, meter.createCounter(spec.otel, common));
      else if (spec.kind === "histogram")
        this.histograms.set(
          spec.key,
          meter.createHistogram(spec.otel, {
            ...common,
            advice: { explicitBucketBoundaries: [...spec.buckets!] },
          }),
        );
      else gauges.set(spec.key as GaugeKey, meter.createObservableGauge(spec.otel, common));
    }
    const source = options.gauges;
    if (!source) return;
    meter.addBatchObservableCallback(
      async (result) => {
        try {
          const readings = await source.read();
          for (const [key, gauge] of gauges)
            for (const reading of readings[key])
              result.observe(gauge, reading.value, attributesOf(reading.labels));
        } catch (error) {
          options.onError?.(error as Error);
        }
      },
      [...gauges.values()],
    );
  }

  add(key: CounterKey, value: number, labels: Labels): void {
    this.counters.get(key)?.add(value, attributesOf(labels));
  }

  record(key: HistogramKey, seconds: number, labels: Labels): void {
    this.histograms.get(key)?.record(seconds, attributesOf(labels));
  }

  /** Exports what is pending now (tests; shutdown does it too). */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  /** Exports a last time and stops. */
  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}
