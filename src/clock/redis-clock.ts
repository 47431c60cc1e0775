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

/** Most TIME calls per measurement; the one with the shortest round trip is kept. */
const SAMPLES = 5;
/** A round trip this short ends a measurement early (uncertainty ≤ 2.5 ms). */
const GOOD_RTT_MS = 5;
/**
 * A measurement at least this uncertain (round trip, ms) is soon followed by another, 1 s later
 * instead of a refresh interval: a busy event loop (start-up) delays the reply's handling, which
 * makes the round trip long and the midpoint late.
 */
const POOR_RTT_MS = 20;
/** How long a measurement is kept over later, noisier ones (clocks drift slowly, but do step). */
const KEEP_MS = 5 * 60_000;

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
  /** The measurement in use, and when it was taken (monotonic ms). */
  private kept: { sample: ClockSample; atMs: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
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
    while (samples.length < SAMPLES && !samples.some((s) => s.rttMs <= GOOD_RTT_MS))
      samples.push(await sampleOffset(this.redis, this.localNow));
    const sample = bestOffset(samples);
    this.accept(sample);
    return sample;
  }

  /**
   * Takes a measurement unless the one in use is recent and clearly less uncertain (a refresh
   * during a load spike must not replace a good offset by a worse one).
   */
  private accept(sample: ClockSample): void {
    const now = performance.now();
    const kept = this.kept;
    const better = !kept || sample.rttMs <= kept.sample.rttMs + GOOD_RTT_MS;
    if (!better && now - kept.atMs < KEEP_MS) return;
    this.kept = { sample, atMs: now };
    this.offset = sample.offsetMs;
    this.measured = true;
    this.reportSkew();
  }

  /**
   * Resolves after the first measurement (errors ignored: the offset stays 0 until one
   * succeeds), then measures again every `refreshMs` (1 s while the measurement in use is poor).
   */
  async start(): Promise<void> {
    this.stopped = false;
    await this.refresh().catch(() => undefined);
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const poor = (this.kept?.sample.rttMs ?? Infinity) >= POOR_RTT_MS;
    this.timer = setTimeout(
      () =>
        void this.refresh()
          .catch(() => undefined)
          .finally(() => this.schedule()),
      poor ? 1000 : this.refreshMs,
    );
    this.timer.unref();
  }

  /** Stops the background refresh. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
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
