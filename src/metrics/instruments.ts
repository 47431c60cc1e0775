/**
 * The one list of rrqkit's metrics. Both the Prometheus registry (src/metrics/prometheus.ts)
 * and the OpenTelemetry meter (src/metrics/otel.ts) are built from it, so the two always carry
 * the same instruments with the same values. README "Metrics" documents each entry.
 */

/** A label of an instrument, by its logical name. */
export type LabelName = "queue" | "function" | "runner" | "outcome";

/** Label values of one measurement. */
export type Labels = Partial<Record<LabelName, string>>;

/** What kind of instrument it is. */
export type InstrumentKind = "counter" | "histogram" | "gauge";

/** One metric, named for both exporters. */
export interface InstrumentSpec {
  /** The Prometheus name (snake_case, `_total` for counters, unit suffix). */
  readonly prom: string;
  /**
   * The OpenTelemetry name: OpenTelemetry's messaging semantic conventions where one exists
   * (`messaging.process.duration`, `messaging.client.consumed.messages`), else `rrq.`-prefixed.
   */
  readonly otel: string;
  readonly kind: InstrumentKind;
  /** UCUM unit for OpenTelemetry ("s", "{job}", ...). */
  readonly unit: string;
  readonly help: string;
  readonly labels: readonly LabelName[];
  /** Histogram bucket boundaries (seconds). */
  readonly buckets?: readonly number[];
}

/**
 * OpenTelemetry attribute keys of the labels (messaging semantic conventions where one exists).
 * Prometheus uses the logical names.
 */
export const OTEL_ATTRIBUTE: Readonly<Record<LabelName, string>> = {
  queue: "messaging.destination.name",
  function: "rrq.function",
  runner: "rrq.runner",
  outcome: "rrq.outcome",
};

/** Attributes every OpenTelemetry measurement carries (messaging semantic conventions). */
export const OTEL_CONSTANT_ATTRIBUTES: Readonly<Record<string, string>> = {
  "messaging.system": "redis",
};

/** Buckets of the duration and wait histograms: 5 ms to 1 hour. */
export const SECONDS_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
];

const JOB = ["queue", "function"] as const;

/** Every instrument, by key. */
export const INSTRUMENTS = {
  started: {
    prom: "rrq_jobs_started_total",
    otel: "messaging.client.consumed.messages",
    kind: "counter",
    unit: "{job}",
    help: "Jobs claimed from their queue by this worker (each attempt counts once).",
    labels: JOB,
  },
  completed: {
    prom: "rrq_jobs_completed_total",
    otel: "rrq.jobs.completed",
    kind: "counter",
    unit: "{job}",
    help: "Jobs that completed successfully.",
    labels: JOB,
  },
  failed: {
    prom: "rrq_jobs_failed_total",
    otel: "rrq.jobs.failed",
    kind: "counter",
    unit: "{job}",
    help: "Failed attempts: retried plus moved to the DLQ.",
    labels: JOB,
  },
  retried: {
    prom: "rrq_jobs_retried_total",
    otel: "rrq.jobs.retried",
    kind: "counter",
    unit: "{job}",
    help: "Failed attempts scheduled for another attempt.",
    labels: JOB,
  },
  dead: {
    prom: "rrq_jobs_dead_total",
    otel: "rrq.jobs.dead",
    kind: "counter",
    unit: "{job}",
    help: "Jobs moved to the dead-letter queue.",
    labels: JOB,
  },
  cancelled: {
    prom: "rrq_jobs_cancelled_total",
    otel: "rrq.jobs.cancelled",
    kind: "counter",
    unit: "{job}",
    help: "Jobs cancelled while this worker ran them.",
    labels: JOB,
  },
  snoozed: {
    prom: "rrq_jobs_snoozed_total",
    otel: "rrq.jobs.snoozed",
    kind: "counter",
    unit: "{job}",
    help: "Attempts that snoozed (the job runs again later, no retry counted).",
    labels: JOB,
  },
  expired: {
    prom: "rrq_jobs_expired_total",
    otel: "rrq.jobs.expired",
    kind: "counter",
    unit: "{job}",
    help: "Jobs whose expires_at had passed when claimed (ended FAILED, not run).",
    labels: JOB,
  },
  duration: {
    prom: "rrq_job_duration_seconds",
    otel: "messaging.process.duration",
    kind: "histogram",
    unit: "s",
    help: "Time from dispatch to the runner to the attempt's outcome, by outcome (success, retry, dead).",
    labels: ["queue", "function", "outcome"],
    buckets: SECONDS_BUCKETS,
  },
  wait: {
    prom: "rrq_job_wait_seconds",
    otel: "rrq.job.wait.duration",
    kind: "histogram",
    unit: "s",
    help: "Time a due job waited before a worker started it (start - max(enqueue, scheduled run time)).",
    labels: JOB,
    buckets: SECONDS_BUCKETS,
  },
  queueDepth: {
    prom: "rrq_queue_depth",
    otel: "rrq.queue.depth",
    kind: "gauge",
    unit: "{job}",
    help: "Jobs in the queue: ready, deferred and waiting retries (ZCARD), read at collection.",
    labels: ["queue"],
  },
  queueOldestAge: {
    prom: "rrq_queue_oldest_age_seconds",
    otel: "rrq.queue.oldest_age",
    kind: "gauge",
    unit: "s",
    help: "How long the queue's oldest ready job has been due (0: none is due).",
    labels: ["queue"],
  },
  runnerInFlight: {
    prom: "rrq_runner_in_flight",
    otel: "rrq.runner.in_flight",
    kind: "gauge",
    unit: "{request}",
    help: "Requests at this worker's runner processes now, per runner.",
    labels: ["runner"],
  },
  runnerRestarts: {
    prom: "rrq_runner_restarts_total",
    otel: "rrq.runner.restarts",
    kind: "counter",
    unit: "{restart}",
    help: "Runner processes started again after they exited or were recycled.",
    labels: ["runner"],
  },
  outputDropped: {
    prom: "rrq_output_dropped_bytes_total",
    otel: "rrq.output.dropped",
    kind: "counter",
    unit: "By",
    help: "Live jobs' output bytes dropped because a runner connection's output buffer was full.",
    labels: ["runner"],
  },
  leaseRenewals: {
    prom: "rrq_lease_renewals_total",
    otel: "rrq.lease.renewals",
    kind: "counter",
    unit: "{lease}",
    help: "Job leases renewed while their jobs ran.",
    labels: [],
  },
  recoveries: {
    prom: "rrq_recoveries_total",
    otel: "rrq.recoveries",
    kind: "counter",
    unit: "{job}",
    help: "Jobs of dead workers (or expired leases) put back in their queues by this worker.",
    labels: [],
  },
  redisErrors: {
    prom: "rrq_redis_errors_total",
    otel: "rrq.redis.errors",
    kind: "counter",
    unit: "{error}",
    help: "Failed Redis connections and connection attempts seen by this worker.",
    labels: [],
  },
} as const satisfies Record<string, InstrumentSpec>;

/** Key of an instrument in {@link INSTRUMENTS}. */
export type InstrumentKey = keyof typeof INSTRUMENTS;

/** Keys of the counters. */
export type CounterKey = {
  [K in InstrumentKey]: (typeof INSTRUMENTS)[K]["kind"] extends "counter" ? K : never;
}[InstrumentKey];

/** Keys of the histograms. */
export type HistogramKey = "duration" | "wait";

/** Keys of the gauges (read on collection, see {@link GaugeSource}). */
export type GaugeKey = "queueDepth" | "queueOldestAge" | "runnerInFlight";

/** One gauge reading. */
export interface GaugeReading {
  readonly labels: Labels;
  readonly value: number;
}

/** Reads the gauges' current values (from Redis and the worker) when a collection asks. */
export interface GaugeSource {
  read(): Promise<Readonly<Record<GaugeKey, readonly GaugeReading[]>>>;
}

/** Where measurements go: the Prometheus registry, the OpenTelemetry meter, or both. */
export interface MetricsSink {
  add(key: CounterKey, value: number, labels: Labels): void;
  record(key: HistogramKey, seconds: number, labels: Labels): void;
}

/** Every instrument as a list (README and tests walk it). */
export function instrumentList(): Array<InstrumentSpec & { key: InstrumentKey }> {
  return (Object.keys(INSTRUMENTS) as InstrumentKey[]).map((key) => ({
    key,
    ...(INSTRUMENTS[key] as InstrumentSpec),
  }));
}
