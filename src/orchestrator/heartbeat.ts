import type { ResolvedConfig } from "../config/config.js";
import { formatTimestamp } from "../store/encoding.js";
import type { JobStore } from "../store/job-store.js";
import type { EventBus } from "../telemetry/events.js";
import { IMPLEMENTATION, packageVersion } from "./implementation.js";
import { PeriodicTask } from "./periodic.js";
import type { PartitionState } from "./leases.js";
import type { Recovery } from "./recovery.js";
import type { RunnerStatus } from "../runner/runner-pool.js";

/** Rewrites prompted by {@link Heartbeat.nudge} are at least this far apart. */
const NUDGE_MIN_INTERVAL_MS = 1000;

/** What the health record reports about the worker. */
export interface HealthSnapshot {
  status: string;
  activeJobs: number;
  concurrencyLimit: number;
  queues: readonly string[];
  /** Redis's clock minus this host's, ms, once measured (rrqkit; see RedisClock). */
  clockOffsetMs?: number;
  /** The link to Redis as lease renewal saw it (rrqkit; see LeaseKeeper). */
  partition?: PartitionState;
  /** Quiet: claiming nothing, finishing what runs (rrqkit; see src/control/). */
  quiet?: boolean;
  /** The runner pools and their processes (rrqkit; the dashboard's workers page). */
  runners?: readonly RunnerStatus[];
}

/**
 * The status a health record reports: the loop's status, except that a worker whose queues are
 * empty while it still runs jobs is "running", not "idle (no jobs)" (RRQ's loop reports the
 * latter, which `rrq check` then showed beside a non-zero active count).
 */
export function reportedStatus(status: string, activeJobs: number): string {
  return activeJobs > 0 && status === "idle (no jobs)" ? "running" : status;
}

/**
 * Writes `rrq:health:worker:<id>` (RRQ's payload and TTL) right away and then every
 * min(interval, 60) s, and after each write runs RRQ's orphan recovery for workers whose health
 * key is gone (rrq-0.11-facts §2.11; jobs with a live lock are left alone), when it is this
 * worker's turn.
 */
export class Heartbeat {
  private loop: PeriodicTask | undefined;
  /** Ends a recovery pass in progress at stop (its SCAN is paced and can take seconds). */
  private readonly stopping = new AbortController();
  private nudgeTimer: NodeJS.Timeout | undefined;
  private nudgeWriting = false;
  private nudgeAgain = false;
  private lastWriteMs = 0;

  constructor(
    private readonly store: JobStore,
    private readonly workerId: string,
    private readonly config: ResolvedConfig,
    private readonly snapshot: () => HealthSnapshot,
    private readonly events: EventBus,
    private readonly recovery: Recovery,
    /**
     * Runs after each tick's write (the quiet switch re-reads its key; a change nudges a new
     * write); must not throw. After, not before: the first record goes out without a round trip.
     */
    private readonly afterWrite?: () => Promise<void>,
  ) {}

  /** Seconds between ticks. */
  get intervalSeconds(): number {
    return Math.min(this.config.workerHealthCheckIntervalSeconds, 60);
  }

  /** Starts ticking: once now, then on the interval. */
  start(): void {
    this.loop = new PeriodicTask(this.intervalSeconds * 1000, () => this.tick());
    this.loop.start(true);
  }

  /** Stops: ends a recovery scan in progress at its next SCAN call, and waits for the tick. */
  async stop(): Promise<void> {
    this.stopping.abort();
    clearTimeout(this.nudgeTimer);
    await this.loop?.stop();
  }

  /**
   * Rewrites the record soon (at most once a second, one write at a time): the worker calls it
   * when its active count goes from zero to non-zero or back, so `rrq check` does not show a
   * busy worker as idle (or the reverse) for up to a heartbeat interval.
   */
  nudge(): void {
    if (this.stopping.signal.aborted) return;
    // a write in flight may carry an older snapshot (one queued during an outage is sent when
    // Redis is back): write again after it
    if (this.nudgeWriting) this.nudgeAgain = true;
    if (this.nudgeTimer || this.nudgeWriting) return;
    const waitMs = Math.max(0, this.lastWriteMs + NUDGE_MIN_INTERVAL_MS - Date.now());
    this.nudgeTimer = setTimeout(() => {
      this.nudgeTimer = undefined;
      this.nudgeWriting = true;
      this.writeHealth()
        .catch((error: unknown) =>
          this.events.emit("worker:error", { context: "health record", error: error as Error }),
        )
        .finally(() => {
          this.nudgeWriting = false;
          if (!this.nudgeAgain) return;
          this.nudgeAgain = false;
          this.nudge();
        });
    }, waitMs);
    this.nudgeTimer.unref();
  }

  /** One heartbeat: the health record, then orphan recovery. Never throws. */
  async tick(): Promise<void> {
    try {
      await this.writeHealth();
      await this.afterWrite?.();
      await this.recoverOrphans();
    } catch (error) {
      this.events.emit("worker:error", { context: "heartbeat", error: error as Error });
    }
  }

  /** Writes the health record with TTL int(interval + buffer). */
  async writeHealth(): Promise<void> {
    this.lastWriteMs = Date.now();
    const s = this.snapshot();
    const ttl = Math.trunc(
      this.config.workerHealthCheckIntervalSeconds + this.config.workerHealthCheckTtlBufferSeconds,
    );
    await this.store.writeHealth(
      this.workerId,
      {
        worker_id: this.workerId,
        // on Redis's clock, so readers on other hosts compare it with theirs
        timestamp: formatTimestamp(Date.now() + (s.clockOffsetMs ?? 0)),
        status: reportedStatus(s.status, s.activeJobs),
        active_jobs: s.activeJobs,
        concurrency_limit: s.concurrencyLimit,
        queues: s.queues,
        // additive: tells rrqkit workers from RRQ's in `rrq check` (RRQ's readers ignore them)
        implementation: IMPLEMENTATION,
        version: packageVersion(),
        ...(s.clockOffsetMs === undefined ? {} : { clock_offset_ms: s.clockOffsetMs }),
        ...partitionFields(s.partition),
        quiet: s.quiet ?? false,
        ...(s.runners ? { runners: s.runners } : {}),
      },
      Math.max(ttl, 1),
    );
    if (this.events.has("worker:heartbeat"))
      this.events.emit("worker:heartbeat", {
        workerId: this.workerId,
        active: s.activeJobs,
        quiet: s.quiet ?? false,
      });
  }

  /**
   * RRQ's slow path: re-queues up to 100 jobs of workers whose health key is gone. Its SCAN walks
   * the whole keyspace, so rrqkit workers take turns (`takeOrphanScanTurn`): one pass per
   * interval across them.
   */
  async recoverOrphans(): Promise<number> {
    const intervalMs = this.intervalSeconds * 1000;
    if (!(await this.store.takeOrphanScanTurn(this.workerId, intervalMs))) return 0;
    return this.recovery.recoverDeadWorkers(this.stopping.signal);
  }
}

/**
 * The health record's additive fields about the link to Redis: `redis_link` ("ok", or
 * "partitioned" while lease renewal cannot reach Redis past a lease), `abandoned_attempts`
 * (attempts given up because their leases expired meanwhile, since start) and `last_partition`
 * (when the last such outage ended, how long it was, and how many attempts it cost).
 */
export function partitionFields(p: PartitionState | undefined): Record<string, unknown> {
  if (!p) return {};
  return {
    redis_link: p.link,
    abandoned_attempts: p.abandonedTotal,
    ...(p.last
      ? {
          last_partition: {
            ended_at: formatTimestamp(p.last.endedAtMs),
            down_seconds: Math.round(p.last.downForMs / 100) / 10,
            abandoned_attempts: p.last.abandoned,
          },
        }
      : {}),
  };
}
