/**
 * Handler middleware (rrqkit docs/middleware.md): functions around every handler call, an onion
 * whose first registered middleware is the outermost. The runtime runs the chain after it found
 * the handler and checked the params contract, inside the request's deadline.
 */
import type { ExecutionRequest } from "../protocol/generated/wire.js";
import type { JobContext } from "./live.js";
import type { Handler } from "./registry.js";

/** Runs the rest of the chain: resolves to what the handler returned, rejects with what it threw. */
export type Next = () => Promise<unknown>;

/** What a middleware gets besides the request: the request's cancel signal and job context. */
export interface MiddlewareContext {
  /** Fires when the request is cancelled, its deadline passes or its connection closes. */
  readonly signal: AbortSignal;
  /** Progress and output of the job (the handler's third argument). */
  readonly job: JobContext;
}

/**
 * A handler middleware. It may work around `next()` (time, log), change `request.params` before
 * it, map errors (catch and throw a `NonRetryableError`, or return an `Outcome`), or
 * short-circuit by returning without calling `next`. What it returns (or throws) becomes the
 * request's outcome, as a handler's would. Calling `next` twice is an error.
 *
 * ```ts
 * registry.use(async (request, next) => {
 *   const started = Date.now();
 *   try {
 *     return await next();
 *   } finally {
 *     console.error(`${request.function_name} took ${Date.now() - started} ms`);
 *   }
 * });
 * ```
 */
export type Middleware = (request: ExecutionRequest, next: Next, ctx: MiddlewareContext) => unknown;

/** The message of the error a middleware gets (and its request's outcome) for a second `next()`. */
export const NEXT_TWICE = "middleware called next twice";

/** The error of a second `next()` call: type `MiddlewareError` in the outcome. */
export class MiddlewareError extends Error {
  override name = "MiddlewareError";
}

/** Calls `fn` so that a synchronous throw becomes a rejection (the Promise executor does that). */
function call(fn: () => unknown): Promise<unknown> {
  return new Promise((resolve) => resolve(fn()));
}

/**
 * Runs `handler` for `request` through `middlewares` (first = outermost). Resolves to the
 * outermost middleware's return value; when any middleware called `next` twice, rejects with a
 * {@link MiddlewareError} even if that middleware caught the error itself.
 */
export async function runMiddleware(
  middlewares: readonly Middleware[],
  handler: Handler,
  request: ExecutionRequest,
  ctx: MiddlewareContext,
): Promise<unknown> {
  let calledTwice = false;
  const dispatch = (index: number): Promise<unknown> => {
    if (index === middlewares.length) return call(() => handler(request, ctx.signal, ctx.job));
    let called = false;
    const next: Next = () => {
      if (called) {
        calledTwice = true;
        throw new MiddlewareError(NEXT_TWICE);
      }
      called = true;
      return dispatch(index + 1);
    };
    return call(() => middlewares[index]!(request, next, ctx));
  };
  const value = await dispatch(0);
  if (calledTwice) throw new MiddlewareError(NEXT_TWICE);
  return value;
}
