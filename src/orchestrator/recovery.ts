import { setTimeout as sleep } from "node:timers/promises";
import type { ResolvedConfig } from "../config/config.js";
import type { FlowHooks } from "../flow/index.js";
import type { JobStore, RecoveryVerdict } from "../store/job-store.js";
import { dlqKey, healthKey, jobKey, jobLockKey, queueKey } from "../store/keys.js";
import type { EventBus } from "../telemetry/events.js";

/** Most jobs recovered per pass (RRQ's per-tick limit). */
export const RECOVERY_LIMIT_PER_PASS = 100;

/**
 * The orphan scan's pace: keys examined per SCAN call (RRQ: 100) and the pause after each call.
 * A pass over 1M keys takes ~1,000 calls, ~11 s, and holds Redis 0.5–0.9 ms per call, so the
 * scan uses about 8 % of Redis while it runs instead of all it can get (~59 % at RRQ's pace;
 * `npx tsx bench/orphan-scan.ts`); the heartbeat's 60 s interval leaves room for passes over
 * ~5M keys.
 */
export const ORPHAN_SCAN = { count: 1000, pauseMs: 10 } as const;

/** The last_error of a job sent to the DLQ for having been recovered too often. */
export const poisonMessage = (recoveries: number, lastError: string | null) =>
  `Job moved to DLQ after ${recoveries} recoveries: its worker or runner stopped while running it each time.` +
  (lastError && !lastError.startsWith("Recovered after") ? ` Last error: ${lastError}` : "");

/**
 * Puts the jobs of vanished holders back in their queues:
 *
 * - fast path (rrqkit): jobs whose lease expired, from the `rrq:leases` index, every lease
 *   renewal interval — a crashed orchestrator's jobs come back within about one lease;
 * - slow path (RRQ 0.11): jobs in the active sets of workers whose health key expired, on the
 *   heartbeat — this also covers jobs claimed by RRQ's own orchestrators.
 *
 * A job recovered more than `max_job_recoveries` times is poison: this worker takes it over and
 * moves it to the DLQ with a fenced write that says why.
 */
export class Recovery {
  /** Per dead worker, the timer of its follow-up pass (see {@link scheduleFollowUp}). */
  private readonly followUps = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly store: JobStore,
    private readonly config: ResolvedConfig,
    private readonly workerId: string,
    private readonly events: EventBus,
    /** Flow control: a recovered job's slot and session place are released (flow-release-n.lua). */
    private readonly flow?: FlowHooks,
  ) {}

  /** Recovers one job; `holder` is the dead worker whose active set listed it, if known. */
  async recover(jobId: string, holder?: string): Promise<RecoveryVerdict> {
    const { verdict, fence } = await this.store.recoverJob(jobId, this.workerId, holder, {
      defaultQueue: this.config.defaultQueueName,
      maxRecoveries: this.config.maxJobRecoveries,
      leaseMs: this.config.leaseSeconds * 1000,
    });
    if (verdict === "poison" && fence) await this.settlePoison(jobId, fence);
    // after the recovery write, so a job unparked by the release finds the slot free
    if (verdict === "recovered") await this.flow?.recovered(jobId, "requeued");
    else if (verdict === "poison" && fence) await this.flow?.recovered(jobId, "dead");
    return verdict;
  }

  private async settlePoison(jobId: string, fence: string): Promise<void> {
    const [recoveries, lastError, dlqName, functionName, queueName, retries] =
      await this.store.redis.hmget(
        jobKey(jobId),
        "recovery_count",
        "last_error",
        "dlq_name",
        "function_name",
        "queue_name",
        "current_retries",
      );
    const error = poisonMessage(Number(recoveries ?? 0), lastError ?? null);
    const write = await this.store.moveToDlq(
      { jobId, workerId: this.workerId, fence },
      dlqKey(dlqName || this.config.defaultDlqName),
      error,
      true,
    );
    if (write === "written")
      this.events.emit("job:dlq", {
        jobId,
        functionName: functionName ?? "",
        queue: queueKey(queueName || this.config.defaultQueueName),
        attempt: Number(retries) || 0,
        error,
        outcome: "poison",
      });
  }

  /** Fast path: recovers jobs whose lease expired. Returns how many were put back. */
  async recoverExpiredLeases(): Promise<number> {
    let recovered = 0;
    for (const jobId of await this.store.expiredLeases(
      this.store.clock.now(),
      RECOVERY_LIMIT_PER_PASS,
    )) {
      const verdict = await this.recover(jobId);
      if (verdict === "recovered" || verdict === "poison") recovered++;
    }
    if (recovered > 0) this.events.emit("recovery:done", { recovered, deadWorkers: [] });
    return recovered;
  }

  /**
   * Slow path (RRQ): recovers jobs listed by workers whose health key is gone. The SCAN for
   * their active sets walks the whole keyspace, so it is paced (`ORPHAN_SCAN`): with a million
   * keys a back-to-back pass took about 0.8 s of Redis CPU and 0.5 s of ours at RRQ's COUNT 100,
   * inside the first second and a half of every start (bench/RESULTS.md). `signal` ends the
   * pass between two SCAN calls (shutdown).
   */
  async recoverDeadWorkers(signal?: AbortSignal): Promise<number> {
    let recovered = 0;
    const dead: string[] = [];
    const seen = new Set<string>();
    scan: for await (const { holders, more } of this.store.activeSetHolders(ORPHAN_SCAN.count)) {
      for (const holder of holders) {
        // SCAN may return a key twice (when Redis resizes its table during the pass).
        if (holder === this.workerId || seen.has(holder)) continue;
        seen.add(holder);
        const healthMs = await this.store.redis.pttl(healthKey(holder));
        if (healthMs > 0) {
          // Alive, or dead with a health key that outlives its last job's lock (a job timeout
          // under 10 s): look again when the key would expire, not a whole interval later. A
          // live worker refreshes the key meanwhile, and the follow-up then does nothing.
          if (healthMs <= this.scanIntervalMs) this.scheduleFollowUp(holder, healthMs);
          continue;
        }
        dead.push(holder);
        recovered += await this.recoverHolder(holder, RECOVERY_LIMIT_PER_PASS - recovered);
        if (recovered >= RECOVERY_LIMIT_PER_PASS) break scan;
      }
      if (more && !(await pause(ORPHAN_SCAN.pauseMs, signal))) break;
    }
    if (recovered > 0 || dead.length > 0)
      this.events.emit("recovery:done", { recovered, deadWorkers: dead });
    return recovered;
  }

  /**
   * Recovers up to `limit` jobs of one dead worker. Jobs whose lock is still live are left
   * alone (RRQ's writes are unfenced: a paused-not-dead RRQ worker could still write their
   * result), but instead of waiting for the next orphan scan (up to a heartbeat interval, 60 s,
   * after the lock expired), a follow-up pass for this worker is scheduled for when the
   * earliest of those locks expires.
   */
  private async recoverHolder(holder: string, limit: number): Promise<number> {
    let recovered = 0;
    let nextExpiryMs: number | undefined;
    for (const jobId of await this.store.activeJobs(holder, limit)) {
      const verdict = await this.recover(jobId, holder);
      if (verdict === "recovered" || verdict === "poison") recovered++;
      if (verdict !== "locked") continue;
      const ttl = await this.store.redis.pttl(jobLockKey(jobId));
      if (ttl > 0) nextExpiryMs = Math.min(nextExpiryMs ?? Infinity, ttl);
    }
    if (nextExpiryMs !== undefined) this.scheduleFollowUp(holder, nextExpiryMs);
    return recovered;
  }

  /**
   * Runs {@link recoverHolder} for `holder` after `delayMs` (plus a little slack), if its health
   * key is gone then. One timer per worker: the earliest wins (a follow-up that still finds
   * locked jobs schedules the next).
   */
  private scheduleFollowUp(holder: string, delayMs: number): void {
    if (this.stopped || this.followUps.has(holder)) return;
    const timer = setTimeout(() => {
      this.followUps.delete(holder);
      void this.followUp(holder);
    }, delayMs + FOLLOW_UP_SLACK_MS);
    timer.unref();
    this.followUps.set(holder, timer);
  }

  private async followUp(holder: string): Promise<void> {
    if (this.stopped) return;
    try {
      if ((await this.store.healthTtl(holder)) > 0) return; // it came back
      const recovered = await this.recoverHolder(holder, RECOVERY_LIMIT_PER_PASS);
      if (recovered > 0) this.events.emit("recovery:done", { recovered, deadWorkers: [holder] });
    } catch (error) {
      this.events.emit("worker:error", { context: "orphan follow-up", error: error as Error });
    }
  }

  /** The heartbeat's interval: how long until the next orphan scan. */
  private get scanIntervalMs(): number {
    return Math.min(this.config.workerHealthCheckIntervalSeconds, 60) * 1000;
  }

  /** Cancels scheduled follow-up passes (shutdown). */
  stop(): void {
    this.stopped = true;
    for (const timer of this.followUps.values()) clearTimeout(timer);
    this.followUps.clear();
  }
}

/** Slack after a lock's expiry before its follow-up pass (Redis expires keys lazily or in ~100 ms). */
const FOLLOW_UP_SLACK_MS = 250;

/** Waits `ms`; false when `signal` aborted (before or during the wait). */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return false;
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
