import type { ResolvedConfig } from "../config/config.js";
import type { JobStore } from "../store/job-store.js";
import type { EventBus } from "../telemetry/events.js";
import { PeriodicTask } from "./periodic.js";
import type { Recovery } from "./recovery.js";

/** A running attempt as the lease keeper sees it. */
export interface LeasedAttempt {
  readonly jobId: string;
  readonly fence: string;
  /** Set once the attempt stopped working on its job (lease lost or abandoned). */
  readonly lost: boolean;
  /** Local time (ms) the claim's reply arrived: the lease it set ends about this + the lease. */
  readonly claimedAtMs: number;
  /** Called when the job turns out to be held by someone else: stop working on it. */
  leaseLost(): void;
  /**
   * Called when the lease is expiring and renewal cannot reach Redis to keep it: stop
   * working on the job and write nothing. False when it is too late (its result is being
   * written: that write is fenced on its own).
   */
  abandon(): boolean;
}

/** What a worker's health record says about its link to Redis (rrqkit, additive). */
export interface PartitionState {
  /** "partitioned" while renewal cannot reach Redis past a lease, else "ok". */
  link: "ok" | "partitioned";
  /** Attempts abandoned because their leases expired while Redis was unreachable, ever. */
  abandonedTotal: number;
  /** The last partition that abandoned attempts, once over. */
  last?: { endedAtMs: number; downForMs: number; abandoned: number };
}

/** At most this many job ids are named in a partition log line. */
const IDS_SHOWN = 10;

/**
 * Keeps this worker's leases alive and finds other workers' expired ones: every
 * `lease_renew_interval_seconds` it renews every running attempt's lease in one Lua call
 * (attempts whose job was reclaimed are told to stop), then recovers expired leases.
 *
 * When renewal fails (Redis unreachable or silent) for longer than the lease, the attempts
 * whose leases run out (the last successful renewal's send time + the lease) are abandoned: cancelled
 * at their runners, their results dropped (another worker may be running them; any write would
 * be fenced anyway). One line says so, and one more when Redis answers again.
 */
export class LeaseKeeper {
  private loop: PeriodicTask | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  /** Local time the renewal in flight was sent (undefined when none is). */
  private renewSentAt: number | undefined;
  /** The last renewal failed (and none has succeeded since). */
  private renewFailed = false;
  /**
   * Local time the last successful renewal of each running fence was sent: the lease it set
   * ends no earlier than this + the lease, and cannot be renewed once renewal fails, so the
   * attempt stops then instead of running on beside the worker that recovers the job.
   */
  private renewedAt = new Map<string, number>();
  private abandoned: string[] = [];
  private outageStartMs: number | undefined;
  private unsubscribe: (() => void) | undefined;
  readonly partition: PartitionState = { link: "ok", abandonedTotal: 0 };

  constructor(
    private readonly store: JobStore,
    private readonly config: ResolvedConfig,
    private readonly workerId: string,
    private readonly running: () => Iterable<LeasedAttempt>,
    private readonly recovery: Recovery,
    private readonly events: EventBus,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts the renew-and-recover loop. */
  start(): void {
    this.unsubscribe = this.events.on("redis:up", (e) => this.reconnected(e.downForMs));
    this.loop = new PeriodicTask(this.config.leaseRenewIntervalSeconds * 1000, () => this.tick());
    this.loop.start(false);
    // A renewal waiting for a connection that does not come back (its commands wait in the
    // offline queue) never fails: this looks at the leases on its own clock.
    this.watchdog = setInterval(
      () => this.abandonExpired([...this.running()].filter((a) => !a.lost)),
      this.config.leaseRenewIntervalSeconds * 1000,
    );
    this.watchdog.unref();
  }

  /** Stops and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    clearInterval(this.watchdog);
    await this.loop?.stop();
  }

  /** One pass: renew, then recover. Never throws. */
  async tick(): Promise<void> {
    try {
      await this.renew();
    } catch (error) {
      this.events.emit("worker:error", { context: "lease renewal", error: error as Error });
    }
    try {
      await this.recovery.recoverExpiredLeases();
    } catch (error) {
      this.events.emit("worker:error", { context: "lease recovery", error: error as Error });
    }
  }

  /**
   * Renews every running attempt's lease; attempts that lost their job are told so. When the
   * renewal fails, attempts whose leases have expired meanwhile are abandoned (and it throws).
   */
  async renew(): Promise<void> {
    const attempts = [...this.running()].filter((a) => !a.lost);
    if (attempts.length === 0) return;
    let lost: Set<string>;
    const sentAt = this.now();
    this.renewSentAt = sentAt;
    try {
      lost = new Set(
        await this.store.renewLeases(this.workerId, this.config.leaseSeconds * 1000, attempts),
      );
    } catch (error) {
      this.renewFailed = true;
      this.abandonExpired(attempts);
      throw error;
    } finally {
      this.renewSentAt = undefined;
    }
    this.renewFailed = false;
    const renewed = new Map<string, number>();
    for (const attempt of attempts) {
      if (lost.has(attempt.fence)) attempt.leaseLost();
      else renewed.set(attempt.fence, sentAt);
    }
    this.renewedAt = renewed;
    if (this.events.has("lease:renewed"))
      this.events.emit("lease:renewed", { renewed: renewed.size, lost: lost.size });
    if (this.outageStartMs !== undefined) this.reconnected(this.now() - this.outageStartMs);
  }

  /**
   * True while renewal cannot reach Redis: the last one failed, or the one in flight has had no
   * reply for a command timeout. (A worker that merely could not run, a stopped process or a
   * blocked event loop, renews first and learns from Redis which jobs it lost.)
   */
  private get renewalFailing(): boolean {
    const stuckMs = this.config.redisCommandTimeoutSeconds * 1000;
    const sent = this.renewSentAt;
    return this.renewFailed || (sent !== undefined && this.now() - sent >= stuckMs);
  }

  /** Abandons the attempts whose leases have run out; one line when any were. */
  private abandonExpired(attempts: readonly LeasedAttempt[]): void {
    if (attempts.length === 0 || !this.renewalFailing) return;
    const now = this.now();
    const leaseMs = this.config.leaseSeconds * 1000;
    const expired = attempts.filter((a) => {
      const heldSince = this.renewedAt.get(a.fence) ?? a.claimedAtMs;
      return now >= heldSince + leaseMs && a.abandon();
    });
    if (expired.length === 0) return;
    const since = Math.min(
      ...expired.map((a) => this.renewedAt.get(a.fence) ?? a.claimedAtMs),
      this.outageStartMs ?? Infinity,
    );
    this.outageStartMs = since;
    this.partition.link = "partitioned";
    this.partition.abandonedTotal += expired.length;
    this.abandoned.push(...expired.map((a) => a.jobId));
    this.events.emit("worker:warning", {
      message:
        `lease renewal has not reached redis for ${seconds(now - since)}, longer than the ` +
        `${this.config.leaseSeconds}s lease: abandoning ${expired.length} running attempt(s) ` +
        "whose leases have expired (cancelled at their runners, results dropped: they run " +
        `elsewhere): ${idList(expired.map((a) => a.jobId))}`,
    });
  }

  /** Redis answers again: says how many attempts the outage cost, if any. */
  private reconnected(downForMs: number): void {
    if (this.abandoned.length === 0) {
      this.outageStartMs = undefined;
      return;
    }
    const ids = this.abandoned;
    // from the last renewal that got through, which the monitor's count (from the moment the
    // silence was noticed) understates
    downForMs = Math.max(downForMs, this.now() - (this.outageStartMs ?? this.now()));
    this.abandoned = [];
    this.outageStartMs = undefined;
    this.partition.link = "ok";
    this.partition.last = { endedAtMs: this.now(), downForMs, abandoned: ids.length };
    this.events.emit("worker:warning", {
      message:
        `redis reachable again after ${seconds(downForMs)}: ${ids.length} attempt(s) were ` +
        `abandoned while it was unreachable, their leases expired: ${idList(ids)}`,
    });
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function idList(ids: readonly string[]): string {
  const shown = ids.slice(0, IDS_SHOWN).join(", ");
  return ids.length > IDS_SHOWN ? `${shown} and ${ids.length - IDS_SHOWN} more` : shown;
}
