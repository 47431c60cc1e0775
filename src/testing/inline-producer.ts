/**
 * The inline producer of `rrqkit/testing` (docs/testing.md): every enqueue runs its job at once,
 * to its end, through the registry's handlers with the inline rules, and then returns its id.
 */
import type { AnyRegistry, JobTypes, Untyped } from "@rrqkit/runner";
import { ProducerError } from "../errors.js";
import { runToEnd } from "./inline-rules.js";
import { LocalProducer, type TestingProducerOptions } from "./local-producer.js";

/**
 * A producer whose `enqueue` awaits the job: when it returns, the job is COMPLETED or FAILED
 * (retries, snoozes and timeouts included; delays are recorded, not slept) and
 * `getJobStatus(id)` says which. Same API, options, validation and middleware as `Producer<C>`.
 * A job a handler enqueues runs inside that handler's call, before the enqueue returns to it.
 *
 * ```ts
 * const producer = new InlineProducer<Jobs>({ registry });
 * const id = await producer.enqueue("send_email", { to: "a@b.c", subject: "hi" });
 * expect((await producer.getJobStatus(id))!.status).toBe("COMPLETED");
 * ```
 */
export class InlineProducer<C extends JobTypes<C> = Untyped> extends LocalProducer<C> {
  constructor(options: TestingProducerOptions & { registry: AnyRegistry }) {
    if (!options?.registry)
      throw new ProducerError("invalid_argument", "InlineProducer needs a registry");
    super(options);
  }

  protected async written(jobId: string): Promise<void> {
    const state = this.states.get(jobId);
    // a unique key or a debounce may return a job that already ran or is running
    if (state?.job.status === "PENDING") await runToEnd(state, this.runContext());
  }
}
