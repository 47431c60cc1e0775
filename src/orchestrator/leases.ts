import type { ResolvedConfig } from "../config/config.js";
import type { JobStore } from "../store/job-store.js";
import type { EventBus } from "../telemetry/events.js";
import { PeriodicTask } from "./periodic.js";
import type { Recovery } from "./recovery.js";

/** A running attempt as the lease keeper sees it. */
export interface LeasedAttempt {
  readonly jobId: string;
  readonly fence: string;
  /** Called when the job turns out to be held by someone else: stop working on it. */
  leaseLost(): void;
}

/**
 * Keeps this worker's leases alive and finds other workers' expired ones: every
 * `lease_renew_interval_seconds` it renews every running attempt's lease in one Lua call
 * (attempts whose job was reclaimed are told to stop), then recovers expired leases.
 */
export class LeaseKeeper {
  private loop: PeriodicTask | undefined;

  constructor(
    private readonly store: JobStore,
    private readonly config: ResolvedConfig,
    private readonly workerId: string,
    private readonly running: () => Iterable<LeasedAttempt>,
    private readonly recovery: Recovery,
    private readonly events: EventBus,
  ) {}

  /** Starts the renew-and-recover loop. */
  start(): void {
    this.loop = new PeriodicTask(this.config.leaseRenewIntervalSeconds * 1000, () => this.tick());
    this.loop.start(false);
  }

  /** Stops and waits for a pass in progress. */
  async stop(): Promise<void> {
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

  /** Renews every running attempt's lease; attempts that lost their job are told so. */
  async renew(): Promise<void> {
    const attempts = [...this.running()];
    if (attempts.length === 0) return;
    const lost = new Set(
      await this.store.renewLeases(this.workerId, this.config.leaseSeconds * 1000, attempts),
    );
    for (const attempt of attempts) if (lost.has(attempt.fence)) attempt.leaseLost();
  }
}
