import type { Redis } from "ioredis";
import { bareQueueName, QUEUES_KEY, queueKey } from "../store/keys.js";
import type { GaugeKey, GaugeReading, GaugeSource } from "./instruments.js";

/** Queues read per collection at most (the registry plus the worker's own queues). */
export const MAX_GAUGE_QUEUES = 1000;

/** What the gauges read besides Redis. */
export interface GaugeSourceOptions {
  redis: Redis;
  /** Queues always reported (the worker's own), as names or keys. */
  queues: readonly string[];
  /** Requests in flight per runner name, now. */
  inFlight: () => ReadonlyMap<string, number>;
  /** Epoch ms by Redis's clock (queue scores are on it); `Date.now` by default. */
  now?: () => number;
  /**
   * How long one reading is reused (ms; default 1000): a Prometheus scrape and an OTLP export
   * close together cost Redis one round of commands.
   */
  cacheMs?: number;
}

type Readings = Readonly<Record<GaugeKey, readonly GaugeReading[]>>;

/**
 * Reads queue depth and oldest-ready age from Redis at collection time with a bounded cost:
 * SMEMBERS of the queue registry, then one pipeline of ZCARD + ZRANGE 0 0 WITHSCORES per queue
 * (at most {@link MAX_GAUGE_QUEUES}); never a scan. In-flight counts come from the worker.
 */
export class RedisGaugeSource implements GaugeSource {
  private cached: { at: number; readings: Promise<Readings> } | undefined;

  constructor(private readonly options: GaugeSourceOptions) {}

  read(): Promise<Readings> {
    const at = Date.now();
    if (this.cached && at - this.cached.at < (this.options.cacheMs ?? 1000))
      return this.cached.readings;
    const readings = this.readNow();
    this.cached = { at, readings };
    // a failed reading is not reused
    readings.catch(() => {
      if (this.cached?.readings === readings) this.cached = undefined;
    });
    return readings;
  }

  private async readNow(): Promise<Readings> {
    const runnerInFlight = [...this.options.inFlight()].map(([runner, value]) => ({
      labels: { runner },
      value,
    }));
    const { redis } = this.options;
    const registered = await redis.smembers(QUEUES_KEY);
    const keys = [...new Set([...this.options.queues, ...registered].map(queueKey))]
      .sort()
      .slice(0, MAX_GAUGE_QUEUES);
    const pipeline = redis.pipeline();
    for (const key of keys) {
      pipeline.zcard(key);
      pipeline.zrange(key, 0, 0, "WITHSCORES");
    }
    const replies = keys.length ? ((await pipeline.exec()) ?? []) : [];
    const now = (this.options.now ?? Date.now)();
    const queueDepth: GaugeReading[] = [];
    const queueOldestAge: GaugeReading[] = [];
    keys.forEach((key, i) => {
      const [depthError, depth] = replies[2 * i] ?? [null, 0];
      const [firstError, first] = replies[2 * i + 1] ?? [null, []];
      if (depthError) throw depthError;
      if (firstError) throw firstError;
      const labels = { queue: bareQueueName(key) };
      queueDepth.push({ labels, value: Number(depth) || 0 });
      const score = Number((first as string[])[1]);
      const age = Number.isFinite(score) && score <= now ? (now - score) / 1000 : 0;
      queueOldestAge.push({ labels, value: age });
    });
    return { queueDepth, queueOldestAge, runnerInFlight };
  }
}
