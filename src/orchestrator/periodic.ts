import type { Redis } from "ioredis";
import type { EventBus } from "../telemetry/events.js";

/**
 * Runs an async task repeatedly, `intervalMs` after the previous run finished (never two at
 * once), until stopped. The task must not throw; callers catch and report inside it.
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
  ) {}

  /** Starts the loop; the first run is now (`immediate`) or after one interval. */
  start(immediate: boolean): void {
    const loop = () => {
      this.running = this.task().finally(() => {
        if (!this.stopped) this.timer = setTimeout(loop, this.intervalMs);
      });
    };
    if (immediate) loop();
    else this.timer = setTimeout(loop, this.intervalMs);
  }

  /** Stops the loop and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}

/** What {@link LeaderRounds} needs: the leader key, the round's work, where errors go. */
export interface LeaderRoundsOptions {
  redis: Redis;
  /** The key whose holder runs this round (SET NX PX); it lapses just before the next round. */
  leaderKey: string;
  workerId: string;
  intervalMs: number;
  events: EventBus;
  /** Names the task in `worker:error` events. */
  context: string;
  /** The round's work, run only by the orchestrator that took the key. */
  pass(): Promise<unknown>;
  /** A cheap check first: false skips the round without contending for the key. */
  worthIt?(): Promise<boolean>;
}

/**
 * A cluster task: every `intervalMs` one orchestrator (whichever sets the leader key first; the
 * key lapses a little before the next round, so the role moves freely and a dead holder costs
 * one round) runs the pass. Rounds never throw; failures are reported as `worker:error`.
 */
export class LeaderRounds {
  private loop: PeriodicTask | undefined;

  constructor(private readonly options: LeaderRoundsOptions) {}

  /** Starts the rounds; the first is one interval after the start. */
  start(): void {
    this.loop = new PeriodicTask(this.options.intervalMs, () => this.round());
    this.loop.start(false);
  }

  /** Stops the rounds, letting a pass in progress finish. */
  async stop(): Promise<void> {
    await this.loop?.stop();
  }

  /** One round: the pass if worth it and this orchestrator takes the key. Never throws. */
  async round(): Promise<void> {
    const { redis, leaderKey, workerId, intervalMs, events, context } = this.options;
    try {
      if (this.options.worthIt && !(await this.options.worthIt())) return;
      const ttl = Math.max(1, Math.floor(intervalMs * 0.9));
      const won = await redis.set(leaderKey, workerId, "PX", ttl, "NX");
      if (won === "OK") await this.options.pass();
    } catch (error) {
      events.emit("worker:error", { context, error: error as Error });
    }
  }
}
