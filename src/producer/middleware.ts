/**
 * Producer middleware (docs/middleware.md): hooks around every enqueue. The chain is plain
 * functions over a list of middlewares, so the producer and the testing producers
 * (`rrqkit/testing`) run exactly the same rules:
 *
 * - `beforeEnqueue` hooks run in registration order on a mutable {@link PendingEnqueue}; they may
 *   change its params and options. A hook that throws {@link EnqueueVetoedError} vetoes the
 *   enqueue (code `enqueue_vetoed`); any other error propagates unchanged. Either way nothing is
 *   written and later hooks do not run. Validation runs after the hooks, on the final job.
 * - `afterEnqueue` hooks run in reverse registration order (an onion) once the job was written,
 *   with its id; their errors propagate to the caller although the job IS written.
 */
import { EnqueueVetoedError, ProducerError } from "../errors.js";
import type { EnqueueOptions } from "./options.js";

/** One enqueue before it is validated and written; `beforeEnqueue` hooks may change it. */
export interface PendingEnqueue {
  /** The job's function name (fixed: a middleware changes what is enqueued, not which job). */
  readonly functionName: string;
  /** The job's params (a copy of the caller's object: changing it never touches the caller's). */
  params: Record<string, unknown>;
  /** The enqueue options (a copy too): set a queue, a job id, a trace context, ... */
  options: EnqueueOptions;
}

/**
 * A producer middleware: both hooks are optional and may be async.
 *
 * ```ts
 * producer.use({
 *   beforeEnqueue(job) {
 *     if (job.functionName === "send_email" && !job.params.to) throw new EnqueueVetoedError("no recipient");
 *     job.params.tenant ??= currentTenant();
 *   },
 *   afterEnqueue(job, jobId) {
 *     audit.info("enqueued", { fn: job.functionName, jobId });
 *   },
 * });
 * ```
 */
export interface ProducerMiddleware {
  /** Runs before validation and the write; may change `job` or veto it. */
  beforeEnqueue?(job: PendingEnqueue): void | Promise<void>;
  /**
   * Runs after the job was written, with its id (the existing job's id when a debounce updated
   * it). Not called when nothing was written (a rate-limited drop, a veto, an error).
   */
  afterEnqueue?(job: PendingEnqueue, jobId: string): void | Promise<void>;
}

/** Throws `invalid_argument` unless `middleware` is an object whose hooks are functions. */
export function checkMiddleware(middleware: unknown): asserts middleware is ProducerMiddleware {
  const ok =
    typeof middleware === "object" &&
    middleware !== null &&
    ["beforeEnqueue", "afterEnqueue"].every((hook) => {
      const fn = (middleware as Record<string, unknown>)[hook];
      return fn === undefined || typeof fn === "function";
    });
  if (!ok)
    throw new ProducerError(
      "invalid_argument",
      "a producer middleware must be an object with optional beforeEnqueue/afterEnqueue functions",
    );
}

/**
 * The mutable job the hooks see: shallow copies of `params` (when it is a plain object; anything
 * else is passed on for validation to reject) and of `options`.
 */
export function pendingEnqueue(
  functionName: string,
  params: unknown,
  options: EnqueueOptions | undefined,
): PendingEnqueue {
  const plain = typeof params === "object" && params !== null && !Array.isArray(params);
  return {
    functionName,
    params: plain
      ? { ...(params as Record<string, unknown>) }
      : (params as Record<string, unknown>),
    options: typeof options === "object" && options !== null ? { ...options } : options!,
  };
}

/**
 * Runs every `beforeEnqueue` hook in registration order. A veto is rethrown as an
 * {@link EnqueueVetoedError} naming the function (`enqueue of <fn> vetoed: <reason>`); other
 * errors propagate unchanged. The first error stops the chain.
 */
export async function runBefore(
  middlewares: readonly ProducerMiddleware[],
  job: PendingEnqueue,
): Promise<void> {
  for (const middleware of middlewares) {
    if (middleware.beforeEnqueue === undefined) continue;
    try {
      await middleware.beforeEnqueue(job);
    } catch (error) {
      if (error instanceof EnqueueVetoedError && error.functionName === undefined)
        throw new EnqueueVetoedError(error.reason, {
          functionName: job.functionName,
          cause: error,
        });
      throw error;
    }
  }
}

/**
 * Runs every `afterEnqueue` hook in reverse registration order, with the written job's id. The
 * first error stops the chain and propagates (the job stays written).
 */
export async function runAfter(
  middlewares: readonly ProducerMiddleware[],
  job: PendingEnqueue,
  jobId: string,
): Promise<void> {
  for (let i = middlewares.length - 1; i >= 0; i--) {
    const middleware = middlewares[i]!;
    if (middleware.afterEnqueue !== undefined) await middleware.afterEnqueue(job, jobId);
  }
}
