import { ProducerError, type ErrorCode } from "../errors.js";
import type { EnqueueReply, ProducerStore } from "../store/producer-store.js";
import { runAfter, type PendingEnqueue, type ProducerMiddleware } from "./middleware.js";
import type { EnqueuePlan } from "./options.js";

/**
 * Jobs per enqueue-batch-n.lua call. One call is all-or-nothing; a bigger batch is split so
 * one script does not hold Redis for long (500 enqueues take a few milliseconds).
 */
export const BULK_CHUNK_SIZE = 500;

/**
 * A bulk enqueue that failed part-way: `writtenIds` are exactly the jobs that were written
 * (the whole chunks before the failing one, in order; empty for a batch of one chunk). The
 * failing chunk and every chunk after it wrote nothing — except that when the reply of the
 * failing call was lost (`redis_unavailable`), that chunk may have been written too.
 */
export class BulkEnqueueError extends ProducerError {
  override name = "BulkEnqueueError";
  constructor(
    code: ErrorCode,
    message: string,
    readonly writtenIds: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** Runs `plans` in chunks of {@link BULK_CHUNK_SIZE}, one script call each, stopping at a failure. */
export async function enqueueInChunks(
  store: ProducerStore,
  plans: readonly EnqueuePlan[],
  failure: (error: unknown) => ProducerError,
): Promise<string[]> {
  const written: string[] = [];
  for (let start = 0; start < plans.length; start += BULK_CHUNK_SIZE) {
    const chunk = plans.slice(start, start + BULK_CHUNK_SIZE);
    let replies: EnqueueReply[];
    try {
      replies = await store.enqueueBatch(chunk);
    } catch (error) {
      const cause = failure(error);
      throw new BulkEnqueueError(
        cause.code,
        describe(cause.message, written, plans.length),
        written,
        {
          cause: error,
        },
      );
    }
    const duplicates = replies.flatMap((r, i) => (r.code === -1 ? [chunk[i]!.jobId] : []));
    if (duplicates.length > 0) {
      const what = `job_id already exists: ${listIds(duplicates)}`;
      throw new BulkEnqueueError(
        "duplicate_job_id",
        describe(what, written, plans.length),
        written,
      );
    }
    written.push(...replies.map((r) => r.jobId));
  }
  return written;
}

/**
 * Waits for a bulk `write` of `jobs` and runs the after-hooks of each written job, in item
 * order. When the write failed part-way, the jobs it did write (`writtenIds`) still get their
 * after-hooks, then the {@link BulkEnqueueError} is thrown (an after-hook error is then dropped:
 * the caller must learn what was written).
 */
export async function runAfterEach(
  middlewares: readonly ProducerMiddleware[],
  jobs: readonly PendingEnqueue[],
  write: Promise<string[]>,
): Promise<string[]> {
  let ids: readonly string[];
  try {
    ids = await write;
  } catch (error) {
    if (!(error instanceof BulkEnqueueError)) throw error;
    try {
      for (const [i, id] of error.writtenIds.entries()) await runAfter(middlewares, jobs[i]!, id);
    } catch {
      // The bulk error says what was written; it wins over a hook's error.
    }
    throw error;
  }
  for (const [i, id] of ids.entries()) await runAfter(middlewares, jobs[i]!, id);
  return [...ids];
}

/** Up to 10 ids, then how many more (a message stays short; the ids are in Redis). */
function listIds(ids: readonly string[]): string {
  const more = ids.length > 10 ? ` and ${ids.length - 10} more` : "";
  return ids.slice(0, 10).join(", ") + more;
}

/** The error message: the reason, then exactly what was written. */
function describe(reason: string, written: readonly string[], total: number): string {
  const oom = /\bOOM\b/.test(reason)
    ? "Redis is out of memory (maxmemory reached, noeviction); "
    : "";
  if (written.length === 0) return `${oom}${reason}; none of the ${total} jobs was written`;
  return (
    `${oom}${reason}; ${written.length} of the ${total} jobs were written (the first ` +
    `${written.length / BULK_CHUNK_SIZE} chunk(s) of ${BULK_CHUNK_SIZE}; ids in writtenIds), ` +
    `the rest were not`
  );
}
