import type { Redis } from "ioredis";

/** A source of "now" in epoch milliseconds. */
export interface Clock {
  /** Now, epoch ms. */
  now(): number;
}

/** The local clock: what a clock defaults to where no Redis clock is wired in (tools, tests). */
export const localClock: Clock = { now: () => Date.now() };

/** Options of a {@link RedisClock}. */
export interface RedisClockOptions {
  /** The local wall clock (epoch ms); injectable so tests can skew it. Default `Date.now`. */
  localNow?: () => number;
  /** How often the offset is measured again, ms (default 30 s). */
  refreshMs?: number;
  /** An offset larger than this (ms, either way) is reported by `onSkew` (default 1000). */
  warnThresholdMs?: number;
  /** Called when the offset first passes the threshold, and again when it moves by more. */
  onSkew?: (offsetMs: number) => void;
}

/** One measurement of Redis's clock against the local one. */
export interface ClockSample {
  /** Redis time minus local time, ms (positive: the local clock is behind). */
  offsetMs: number;
  /** The round trip of the TIME command, ms; the offset is uncertain by half of it. */
  rttMs: number;
}

/** Measures Redis's clock minus `localNow` with one TIME call, centred on its round trip. */
export async function sampleOffset(redis: Redis, localNow: () => number): Promise<ClockSample> {
  const sent = localNow();
  const [seconds, micros] = await redis.time();
  const received = localNow();
  const redisMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  return { offsetMs: Math.round(redisMs - (sent + received) / 2), rttMs: received - sent };
}

/** TIME calls per measurement; the one with the shortest round trip is kept. */
const SAMPLES = 3;

/**
 * The offset a measurement stands for: the sample with the shortest round trip (the least
 * uncertain), and 0 when 0 lies within its uncertainty (± half the round trip, + 1 ms of
 * rounding): a host in sync then keeps writing its own clock's times exactly, instead of times
 * moved by a few ms of measurement noise.
 */
export function bestOffset(samples: readonly ClockSample[]): ClockSample {
  const best = samples.reduce((a, b) => (b.rttMs < a.rttMs ? b : a));
  const inSync = Math.abs(best.offsetMs) <= best.rttMs / 2 + 1;
  return inSync ? { offsetMs: 0, rttMs: best.rttMs } : best;
}

/**
 * Redis's clock as seen from this process: the local clock plus an offset measured against
 * Redis `TIME`, refreshed every `refreshMs`. Every time an orchestrator writes for others to
 * compare (lease expiries, queue scores, the ready cut-off, cron fire times) comes from here, so
 * a host whose clock is off cannot make other hosts' leases look expired, start deferred jobs
 * early, or claim cron fire times ahead of the fleet. Durations and timeouts stay on the local
 * clock (they need no agreement between hosts).
 *
 * Until the first measurement (and when Redis is unreachable) the last known offset is used,
 * 0 at first. Each measurement (best of three TIME calls, see {@link bestOffset}) replaces the
 * last: it is uncertain by half its round trip
 * (sub-millisecond on a LAN), far below the lease and poll granularity it serves.
 */
export class RedisClock implements Clock {
  private offset = 0;
  private measured = false;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<ClockSample> | undefined;
  private warnedAt: number | undefined;
  private readonly localNow: () => number;
  private readonly refreshMs: number;
  private readonly warnThresholdMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly options: RedisClockOptions = {},
  ) {
    this.localNow = options.localNow ?? Date.now;
    this.refreshMs = options.refreshMs ?? 30_000;
    this.warnThresholdMs = options.warnThresholdMs ?? 1000;
  }

  /** Redis's time now (epoch ms), by the last measured offset. */
  now(): number {
    return this.localNow() + this.offset;
  }

  /** Redis time minus local time, ms, as last measured (0 before the first measurement). */
  get offsetMs(): number {
    return this.offset;
  }

  /** Whether the offset has been measured at least once. */
  get synced(): boolean {
    return this.measured;
  }

  /**
   * Measures the offset now; throws when Redis does not answer (the old offset stays). One
   * measurement at a time: a call while one waits (Redis unreachable) shares it.
   */
  refresh(): Promise<ClockSample> {
    this.inFlight ??= this.measure().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async measure(): Promise<ClockSample> {
    const samples: ClockSample[] = [];
    for (let i = 0; i < SAMPLES; i++) samples.push(await sampleOffset(this.redis, this.localNow));
    const sample = bestOffset(samples);
    this.offset = sample.offsetMs;
    this.measured = true;
    this.reportSkew();
    return sample;
  }

  /**
   * Starts the refresh every `refreshMs` and resolves after the first measurement (errors
   * ignored: the offset stays 0 until one succeeds).
   */
  async start(): Promise<void> {
    this.timer ??= setInterval(() => void this.refresh().catch(() => undefined), this.refreshMs);
    this.timer.unref();
    await this.refresh().catch(() => undefined);
  }

  /** Stops the background refresh. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Calls onSkew when the offset crosses the threshold, or moved by more than it since. */
  private reportSkew(): void {
    const offset = this.offset;
    const over = Math.abs(offset) > this.warnThresholdMs;
    const moved =
      this.warnedAt === undefined || Math.abs(offset - this.warnedAt) > this.warnThresholdMs;
    if (over && moved) {
      this.warnedAt = offset;
      this.options.onSkew?.(offset);
    } else if (!over) this.warnedAt = undefined;
  }
}
