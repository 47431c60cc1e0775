import type { ExecutionRequest } from "../protocol/generated/wire.js";
import type { JobContext } from "./live.js";

/**
 * A job handler. It receives the request and an AbortSignal that fires when the request is
 * cancelled, its deadline passes, or its connection closes. It may return a plain value
 * (success), an {@link Outcome}, or throw (error; a `TimeoutError` means timeout).
 *
 * A function declared with exactly one parameter (`(request) => …`) is called without the
 * signal, which then is never created (about 3 µs per job in Node 20); declare the second
 * parameter, or rest parameters, to receive it. The third, `ctx` ({@link JobContext}), reports
 * progress and streams output (RUNNER_PROTOCOL.md §13); it comes with the signal.
 */
export type Handler = (request: ExecutionRequest, signal: AbortSignal, ctx: JobContext) => unknown;

/** Maps handler names to handlers. A later registration under the same name replaces it. */
export class Registry {
  private readonly handlers = new Map<string, Handler>();

  /** Registers `handler` under `name`; returns this for chaining. */
  register(name: string, handler: Handler): this {
    if (typeof name !== "string" || name.trim() === "") {
      throw new TypeError("handler name must be a non-empty string");
    }
    if (typeof handler !== "function") throw new TypeError(`handler '${name}' must be a function`);
    this.handlers.set(name, handler);
    return this;
  }

  /** Removes a handler; returns whether it existed. */
  unregister(name: string): boolean {
    return this.handlers.delete(name);
  }

  /** The handler for `name`, if any. */
  get(name: string): Handler | undefined {
    return this.handlers.get(name);
  }

  /** Registered names, in registration order. */
  names(): string[] {
    return [...this.handlers.keys()];
  }
}
