import type { ExecutionOutcome, ExecutionRequest } from "../protocol/generated/wire.js";
import type { JobTypes, ParamsOf, ResultOf, Untyped } from "./job-types.js";
import type { JobContext } from "./live.js";
import type { Middleware } from "./middleware.js";
import type { HandlerOutcome } from "./outcome.js";

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

/** An {@link ExecutionRequest} whose params have the job's contract type. */
export type TypedRequest<P> = Omit<ExecutionRequest, "params"> & { params: P };

/** What a typed handler may return: its result type or an outcome, maybe in a promise. */
export type HandlerReturn<R> =
  R | HandlerOutcome | ExecutionOutcome | Promise<R | HandlerOutcome | ExecutionOutcome>;

/** A handler of a typed job: typed params in, the contract's result (or an outcome) out. */
export type TypedHandler<P, R> = (
  request: TypedRequest<P>,
  signal: AbortSignal,
  ctx: JobContext,
) => HandlerReturn<R>;

/** The handler type `register(name, …)` takes: typed for a name of `C`, else {@link Handler}. */
export type HandlerFor<C, N extends string> = N extends keyof C
  ? TypedHandler<ParamsOf<C, N>, ResultOf<C, N>>
  : Handler;

/**
 * Maps handler names to handlers. A later registration under the same name replaces it.
 *
 * `C` (default: untyped) is the generated `Jobs` interface of `rrq jobs types --lang ts`: with
 * `new Registry<Jobs>()`, a catalogued handler gets `request.params` typed and must return the
 * contract's result (or an {@link Outcome}); other names take any {@link Handler}. Types only:
 * the params are checked at run time when the runtime has a catalog (`RRQ_JOB_CATALOG`).
 */
export class Registry<C extends JobTypes<C> = Untyped> {
  private readonly handlers = new Map<string, Handler>();
  private readonly chain: Middleware[] = [];

  /** Registers `handler` under `name`; returns this for chaining. */
  register<N extends string>(name: N, handler: HandlerFor<C, N>): this {
    if (typeof name !== "string" || name.trim() === "") {
      throw new TypeError("handler name must be a non-empty string");
    }
    if (typeof handler !== "function") throw new TypeError(`handler '${name}' must be a function`);
    // Typed handlers differ only in the declared params/result types: the same function at run time.
    this.handlers.set(name, handler as Handler);
    return this;
  }

  /**
   * Adds a middleware around every handler of this registry (rrqkit docs/middleware.md): an
   * onion, the first registered outermost. It runs after the params contract check; a request
   * for a missing handler never reaches it. Returns this for chaining.
   */
  use(middleware: Middleware): this {
    if (typeof middleware !== "function") throw new TypeError("a middleware must be a function");
    this.chain.push(middleware);
    return this;
  }

  /** The middlewares, in registration order. */
  get middlewares(): readonly Middleware[] {
    return this.chain;
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

/**
 * A registry of any job types: what the runtime and the launcher take, so a `Registry<Jobs>`
 * is accepted (the type parameter only shapes `register`, which they never call).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any C: see above
export type AnyRegistry = Registry<any>;
