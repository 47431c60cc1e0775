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
import { memoryChannelPair, requestFrame } from "@rrqkit/runner/protocol";

/**
 * One runtime serving one registry to the testing producers; see the module comment. Each
 * execution gets a channel of its own, so nested runs (a handler enqueuing in inline mode) never
 * meet the runtime's in-flight cap of one connection.
 */
export class LocalRunner {
  private readonly runtime: RunnerRuntime;

  constructor(registry: AnyRegistry, catalog?: JobCatalog) {
    this.runtime = new RunnerRuntime(registry, { hello: false, catalog, tags: [] });
  }

  /** Sends `request` to the runtime and resolves with its single outcome. */
  run(request: ExecutionRequest): Promise<ExecutionOutcome> {
    const [runnerSide, ours] = memoryChannelPair();
    this.runtime.serve(runnerSide);
    return new Promise((resolve, reject) => {
      ours.on({
        frame: (frame) => {
          if (frame.type !== "response" || frame.payload.request_id !== request.request_id) return;
          resolve(frame.payload);
          ours.close();
        },
        // after an outcome this changes nothing; before one, the producer was closed
        close: () => reject(new Error("the testing producer was closed while a job ran")),
      });
      ours.send(requestFrame(request));
    });
  }

  /** Aborts what still runs (its callers get an error) and closes the channels. */
  close(): void {
    this.runtime.closeAll();
  }
}
