/**
 * Runs handlers of a `@rrqkit/runner` Registry inside the test's process for the fake and inline
 * producers: the real runner runtime over an in-memory frame channel (the pair the orchestrator's
 * `transport = "inprocess"` uses), so deadlines, the cancel signal, the contract check before the
 * handler, thrown errors and returned outcomes become the very outcomes a runner would send. No
 * socket is opened.
 */
import {
  RunnerRuntime,
  type AnyRegistry,
  type ExecutionOutcome,
  type ExecutionRequest,
} from "@rrqkit/runner";
import type { JobCatalog } from "@rrqkit/runner/contracts";
import { memoryChannelPair, requestFrame, type FrameChannel } from "@rrqkit/runner/protocol";

/** One runtime serving one registry to the testing producers; see the module comment. */
export class LocalRunner {
  private readonly runtime: RunnerRuntime;
  private channel: FrameChannel | undefined;
  private readonly waiting = new Map<
    string,
    { resolve: (o: ExecutionOutcome) => void; reject: (e: Error) => void }
  >();

  constructor(registry: AnyRegistry, catalog?: JobCatalog) {
    this.runtime = new RunnerRuntime(registry, { hello: false, catalog, tags: [] });
  }

  /** Sends `request` to the runtime and resolves with its single outcome. */
  run(request: ExecutionRequest): Promise<ExecutionOutcome> {
    const channel = this.open();
    return new Promise((resolve, reject) => {
      this.waiting.set(request.request_id, { resolve, reject });
      channel.send(requestFrame(request));
    });
  }

  /** Aborts what still runs (its callers get an error) and closes the channel. */
  close(): void {
    this.runtime.closeAll();
    this.channel = undefined;
  }

  /** The orchestrator's end of the channel, opened at the first request (again after close). */
  private open(): FrameChannel {
    if (this.channel && !this.channel.closed) return this.channel;
    const [runnerSide, ours] = memoryChannelPair();
    this.runtime.serve(runnerSide);
    ours.on({
      frame: (frame) => {
        if (frame.type !== "response") return;
        const id = frame.payload.request_id;
        const waiter = id === null ? undefined : this.waiting.get(id);
        if (!waiter || id === null) return;
        this.waiting.delete(id);
        waiter.resolve(frame.payload);
      },
      close: () => {
        const pending = [...this.waiting.values()];
        this.waiting.clear();
        for (const w of pending) w.reject(new Error("the testing producer was closed"));
      },
    });
    this.channel = ours;
    return ours;
  }
}
