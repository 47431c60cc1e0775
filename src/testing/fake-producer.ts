/**
 * The fake producer of `rrqkit/testing` (docs/testing.md): enqueues are recorded in memory, no
 * Redis and no network connection at all; `drain()` runs them through the registry's handlers
 * with the inline rules.
 */
import type { JobTypes, Untyped } from "@rrqkit/runner";
import { runToEnd, type RecordedJob } from "./inline-rules.js";
import { LocalProducer, type TestingProducerOptions } from "./local-producer.js";

/**
 * A producer that records what it is asked to enqueue. Same API, options, validation (catalog
 * included) and middleware as `Producer<C>`; nothing runs until {@link drain}.
 *
 * ```ts
 * const producer = new FakeProducer<Jobs>({ registry });
 * await signup(producer, "a@b.c");          // the code under test enqueues
 * expect(producer.jobsFor("send_email")).toHaveLength(1);
 * await producer.drain();                     // runs them, and what they enqueue
 * expect(producer.jobs[0]!.status).toBe("COMPLETED");
 * ```
 */
export class FakeProducer<C extends JobTypes<C> = Untyped> extends LocalProducer<C> {
  constructor(options: TestingProducerOptions = {}) {
    super(options);
  }

  /**
   * Runs every PENDING job to its end (COMPLETED or FAILED), earliest run time first, including
   * jobs the handlers enqueue meanwhile; resolves with the jobs it ran. Needs a registry. Throws
   * after `MAX_EXECUTIONS` (10,000) executions (attempts and runs after a snooze) in this producer.
   */
  async drain(): Promise<RecordedJob[]> {
    const ctx = this.runContext();
    const ran: RecordedJob[] = [];
    for (;;) {
      const next = this.nextPending();
      if (!next) return ran;
      await runToEnd(next, ctx);
      ran.push(next.job);
    }
  }

  protected written(): Promise<void> {
    return Promise.resolve(); // recorded only: drain() runs it
  }

  /** The PENDING job due first (ties: enqueue order). */
  private nextPending() {
    let best;
    for (const state of this.states.values())
      if (state.job.status === "PENDING" && (!best || state.clockMs < best.clockMs)) best = state;
    return best;
  }
}
