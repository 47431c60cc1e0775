import type { Redis } from "ioredis";
import { wakeChannel } from "../store/keys.js";
import { closeRedis } from "./bounded.js";

/**
 * Tells the idle worker loop when to look for work again, without a fixed poll sleep:
 *
 * - rrqkit producers PUBLISH on `rrq:wake:<queue>` in the same Lua script that queues a job,
 *   so an idle worker claims it within a round trip;
 * - the claim script reports the queue head's score, so a deferred job or a retry wakes the
 *   worker when it falls due;
 * - RRQ's own producers publish nothing, so the worker still polls every
 *   `default_poll_delay_seconds` (jittered to 50–150 %, RRQ's rule) as a fallback;
 * - local events (a slot freed, shutdown) wake it directly.
 */
export class Wakeup {
  private waiter: (() => void) | undefined;
  private pending = false;

  constructor(
    private readonly subscriber: Redis,
    private readonly queues: readonly string[],
  ) {}

  /** Subscribes to the queues' wake channels. */
  async start(): Promise<void> {
    this.subscriber.on("message", () => this.notify());
    // After a reconnect ioredis re-subscribes by itself; wake once in case something was missed.
    this.subscriber.on("ready", () => this.notify());
    await this.subscriber.subscribe(...this.queues.map(wakeChannel));
  }

  /** Wakes the loop now, or makes its next wait return at once. */
  notify(): void {
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter();
    } else {
      this.pending = true;
    }
  }

  /** Waits until notified or until `ms` elapse (Infinity: only a notification ends it). */
  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(() => done(), Math.max(0, ms)) : undefined;
      const done = () => {
        clearTimeout(timer);
        if (this.waiter === done) this.waiter = undefined;
        resolve();
      };
      this.waiter = done;
    });
  }

  /** Unsubscribes and closes the subscriber connection (at once when Redis is unreachable). */
  async close(): Promise<void> {
    this.notify();
    await closeRedis(this.subscriber);
  }
}

/** RRQ's jittered poll delay: uniform in [d·0.5, d·1.5] seconds, as milliseconds; 0 for d ≤ 0. */
export function jitteredPollDelayMs(delaySeconds: number, random = Math.random): number {
  if (delaySeconds <= 0) return 0;
  const factor = Math.min(Math.max(random(), 0), 0.99);
  return delaySeconds * (0.5 + factor) * 1000;
}
