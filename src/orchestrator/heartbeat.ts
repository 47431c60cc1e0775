import type { ResolvedConfig } from "../config/config.js";
import { formatTimestamp } from "../store/encoding.js";
import type { JobStore } from "../store/job-store.js";
import type { EventBus } from "../telemetry/events.js";

/** What the health record reports about the worker. */
export interface HealthSnapshot {
  status: string;
  activeJobs: number;
  concurrencyLimit: number;
  queues: readonly string[];
}

/** Most orphaned jobs recovered per tick (RRQ's limit). */
export const RECOVERY_LIMIT_PER_TICK = 100;

/**
 * Writes `rrq:health:worker:<id>` (RRQ's payload and TTL) right away and then every
 * min(interval, 60) s, and after each write puts the jobs of dead workers back in their queues.
 * A dead worker is one with an active-jobs set and no live health key; a job is only recovered
 * once its lock has expired (rrq-0.11-facts §2.11).
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly store: JobStore,
    private readonly workerId: string,
    private readonly config: ResolvedConfig,
    private readonly snapshot: () => HealthSnapshot,
    private readonly events: EventBus,
  ) {}

  /** Seconds between ticks. */
  get intervalSeconds(): number {
    return Math.min(this.config.workerHealthCheckIntervalSeconds, 60);
  }

  /** Starts ticking: once now, then on the interval. */
  start(): void {
    const loop = () => {
      this.ticking = this.tick().finally(() => {
        if (!this.stopped) this.timer = setTimeout(loop, this.intervalSeconds * 1000);
      });
    };
    loop();
  }

  /** Stops ticking and waits for a tick in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
  }

  /** One heartbeat: the health record, then orphan recovery. Never throws. */
  async tick(): Promise<void> {
    try {
      await this.writeHealth();
      await this.recoverOrphans();
    } catch (error) {
      this.events.emit("worker:error", { context: "heartbeat", error: error as Error });
    }
  }

  /** Writes the health record with TTL int(interval + buffer). */
  async writeHealth(): Promise<void> {
    const s = this.snapshot();
    const ttl = Math.trunc(
      this.config.workerHealthCheckIntervalSeconds + this.config.workerHealthCheckTtlBufferSeconds,
    );
    await this.store.writeHealth(
      this.workerId,
      {
        worker_id: this.workerId,
        timestamp: formatTimestamp(Date.now()),
        status: s.status,
        active_jobs: s.activeJobs,
        concurrency_limit: s.concurrencyLimit,
        queues: s.queues,
      },
      Math.max(ttl, 1),
    );
  }

  /** Re-queues up to 100 jobs of dead workers; returns how many were recovered. */
  async recoverOrphans(): Promise<number> {
    let recovered = 0;
    const dead: string[] = [];
    for (const workerId of await this.store.workersWithActiveSets()) {
      if (workerId === this.workerId || recovered >= RECOVERY_LIMIT_PER_TICK) continue;
      if ((await this.store.healthTtl(workerId)) > 0) continue;
      dead.push(workerId);
      for (const jobId of await this.store.activeJobs(
        workerId,
        RECOVERY_LIMIT_PER_TICK - recovered,
      )) {
        const verdict = await this.store.recoverOrphan(
          jobId,
          workerId,
          this.config.defaultQueueName,
        );
        if (verdict === "recovered") recovered++;
      }
    }
    if (recovered > 0 || dead.length > 0)
      this.events.emit("recovery:done", { recovered, deadWorkers: dead });
    return recovered;
  }
}
