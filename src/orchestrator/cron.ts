import { createHash, randomUUID } from "node:crypto";
import { Cron } from "croner";
import type { Redis } from "ioredis";
import { localClock, type Clock } from "../clock/redis-clock.js";
import type { CronJobConfig, ResolvedConfig } from "../config/config.js";
import { ConfigError } from "../errors.js";
import { canonicalJson, formatTimestamp } from "../store/encoding.js";
import { cronKey, jobKey, queueKey, uniqueLockKey } from "../store/keys.js";
import { registerScripts, type ScriptCaller } from "../store/scripts.js";
import type { EventBus } from "../telemetry/events.js";

/**
 * Cron: `[[rrq.cron_jobs]]` entries enqueued on their schedule by every orchestrator, each fire
 * time exactly once.
 *
 * Schedules are RRQ's: 6 fields (sec min hour day-of-month month day-of-week) or 7 with a year,
 * in UTC, parsed by croner with the Rust `cron` crate's conventions (day-of-week 1–7 = Sun–Sat or
 * names; day-of-month and day-of-week must both match).
 *
 * Exactly once: each entry has a state hash `rrq:cron:<id>` whose `last_fire` is the latest fire
 * time handled. Every orchestrator sleeps until the next fire time and then runs
 * cron-fire-4.lua, which, in one atomic step, refuses a fire time at or before `last_fire` and
 * otherwise advances it and writes the job. However many orchestrators run, each fire time
 * yields one job. "Now" is Redis's clock as the worker measures it (src/clock/redis-clock.ts),
 * so a host whose clock runs ahead neither fires early nor claims fire times in the fleet's
 * future (which blocked every other orchestrator until real time caught up).
 *
 * Catch-up: a fire time that passed while no orchestrator ran is not replayed one by one. On
 * start (and after any gap), an entry whose last handled fire time is older than its most recent
 * due time fires once, for that most recent time, then follows its schedule. An entry seen for
 * the first time starts from now (nothing is caught up).
 *
 * RRQ 0.11 differences: RRQ checks every 30 s, computes the next time from the start of the
 * current minute, and every worker enqueues its own copy unless `unique = true`.
 */

/** A parsed cron entry. */
export interface CronEntry {
  readonly config: CronJobConfig;
  /** Stable id: function name plus a digest of schedule, queue, params and unique. */
  readonly id: string;
  readonly queue: string;
  readonly paramsJson: string;
  readonly schedule: Cron;
}

/** What one fire attempt did (cron-fire-4.lua's answer). */
export type FireResult =
  | { kind: "enqueued"; jobId: string }
  | { kind: "already-fired" }
  | { kind: "skipped-unique"; holder: string };

/** Longest single sleep; a longer wait is re-evaluated (clock jumps, Node's 24.8-day timer cap). */
const MAX_SLEEP_MS = 60_000;
/** Delay before retrying after a Redis error. */
const RETRY_MS = 1000;

/** Parses one entry; throws ConfigError for a bad schedule. */
export function parseCronEntry(config: CronJobConfig, defaultQueue: string): CronEntry {
  let schedule: Cron;
  try {
    schedule = new Cron(config.schedule, {
      timezone: "UTC",
      mode: "6-or-7-parts",
      alternativeWeekdays: true,
      domAndDow: true,
      paused: true,
    });
  } catch (error) {
    throw new ConfigError(
      "invalid_config",
      `cron job '${config.functionName}': invalid schedule '${config.schedule}': ${(error as Error).message}`,
    );
  }
  const queue = queueKey(config.queueName ?? defaultQueue);
  const paramsJson = canonicalJson(config.params, "params");
  const digest = createHash("sha1")
    .update(JSON.stringify([config.schedule, queue, paramsJson, config.unique]))
    .digest("hex")
    .slice(0, 10);
  return { config, id: `${config.functionName}:${digest}`, queue, paramsJson, schedule };
}

/** The first fire time strictly after `afterMs` (epoch ms), or undefined. */
export function nextFire(entry: CronEntry, afterMs: number): number | undefined {
  return entry.schedule.nextRun(new Date(afterMs))?.getTime();
}

/** The latest fire time at or before `atMs`, or undefined. */
export function latestFire(entry: CronEntry, atMs: number): number | undefined {
  return entry.schedule.previousRuns(1, new Date(atMs + 1))[0]?.getTime();
}

/** Enqueues cron jobs on schedule (one instance per orchestrator; see the module comment). */
export class CronScheduler {
  private readonly scripts: ScriptCaller;
  private readonly entries: CronEntry[] = [];
  private readonly sleeping = new Map<NodeJS.Timeout, () => void>();
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    private readonly config: ResolvedConfig,
    private readonly events: EventBus,
    /** Called after each enqueue (tests and logs); the bus has no cron event yet. */
    private readonly onFire?: (entry: CronEntry, fireMs: number, result: FireResult) => void,
    /** Redis's clock in a worker: fire decisions must not depend on this host's clock. */
    private readonly clock: Clock = localClock,
  ) {
    this.scripts = registerScripts(redis);
    for (const job of config.cronJobs) {
      try {
        this.entries.push(parseCronEntry(job, config.defaultQueueName));
      } catch (error) {
        // RRQ logs an invalid schedule and runs the other entries
        this.events.emit("worker:error", { context: "cron", error: error as Error });
      }
    }
  }

  /** Parsed entries. */
  get jobs(): readonly CronEntry[] {
    return this.entries;
  }

  /** Starts one timer loop per entry. */
  start(): void {
    for (const entry of this.entries) this.track(this.runEntry(entry));
  }

  /** Stops the timers and waits (up to 2 s) for fires in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const [timer, wake] of this.sleeping) {
      clearTimeout(timer);
      wake();
    }
    this.sleeping.clear();
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.inFlight]),
      new Promise((resolve) => (timeout = setTimeout(resolve, 2000))),
    ]);
    clearTimeout(timeout);
  }

  /**
   * Tries to enqueue `entry` for `fireMs`; exactly one caller per fire time gets "enqueued"
   * (or "skipped-unique").
   */
  async fire(entry: CronEntry, fireMs: number, now = this.clock.now()): Promise<FireResult> {
    const c = this.config;
    const jobId = randomUUID();
    const at = formatTimestamp(now);
    const unique = entry.config.unique ? `cron:${entry.config.functionName}` : "";
    const lockTtl = Math.max(
      c.defaultUniqueJobLockTtlSeconds,
      c.defaultJobTimeoutSeconds + c.defaultLockTimeoutExtensionSeconds + 1,
    );
    const [code, detail] = await this.scripts.run<[number, string]>(
      this.redis,
      "cron-fire",
      [cronKey(entry.id), jobKey(jobId), entry.queue, unique ? uniqueLockKey(unique) : ""],
      [
        fireMs,
        lockTtl,
        ...[jobId, entry.config.functionName, entry.paramsJson, at, "PENDING", "0", at],
        ...[c.defaultMaxRetries, c.defaultJobTimeoutSeconds, c.defaultResultTtlSeconds],
        ...[entry.queue, "null", unique, formatTimestamp(fireMs), Math.floor(now)],
      ],
    );
    if (code === 1) return { kind: "enqueued", jobId: detail };
    if (code === 2) return { kind: "skipped-unique", holder: detail };
    if (code === 0) return { kind: "already-fired" };
    return this.fire(entry, fireMs, now); // job id collision: try again with a new id
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => {
          this.sleeping.delete(timer);
          resolve();
        },
        Math.max(0, ms),
      );
      this.sleeping.set(timer, resolve);
    });
  }

  /** The latest fire time handled by any orchestrator (set to now for a new entry). */
  private async lastFire(entry: CronEntry): Promise<number> {
    await this.redis.hsetnx(cronKey(entry.id), "last_fire", this.clock.now());
    const value = await this.redis.hget(cronKey(entry.id), "last_fire");
    return Number(value);
  }

  private async runEntry(entry: CronEntry): Promise<void> {
    while (!this.stopped) {
      try {
        const last = await this.lastFire(entry);
        const now = this.clock.now();
        const due = nextFire(entry, last);
        if (due === undefined) return; // the schedule has no future time (a past year)
        if (due > now) {
          await this.sleep(Math.min(due - now, MAX_SLEEP_MS));
          continue;
        }
        // due ≤ now: fire the most recent due time (catch-up fires once, not per missed time)
        const target = latestFire(entry, now) ?? due;
        const result = await this.fire(entry, target);
        if (result.kind !== "already-fired") this.onFire?.(entry, target, result);
      } catch (error) {
        if (this.stopped) return;
        this.events.emit("worker:error", { context: `cron ${entry.id}`, error: error as Error });
        await this.sleep(RETRY_MS);
      }
    }
  }
}

/** Starts cron for a worker when the configuration has entries; returns the scheduler or undefined. */
export function startCron(
  redis: Redis,
  config: ResolvedConfig,
  events: EventBus,
  clock: Clock = localClock,
): CronScheduler | undefined {
  if (config.cronJobs.length === 0) return undefined;
  const scheduler = new CronScheduler(redis, config, events, undefined, clock);
  scheduler.start();
  return scheduler;
}
