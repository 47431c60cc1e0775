import { within } from "./bounded.js";
import type { JobRef } from "../telemetry/events.js";

/**
 * Shutdown timings. After the grace period and the runners' stop, results still unwritten get
 * FINAL_WRITES_MS while Redis is unreachable (it may never come back), and up to
 * FINAL_WRITES_MAX_MS while it answers but is slow. A claim pass in progress gets LOOP_STOP_MS
 * (a claim waits for Redis without bound), background tasks TASK_STOP_MS each.
 */
export const ShutdownTimings = {
  FINAL_WRITES_MS: 5_000,
  FINAL_WRITES_MAX_MS: 30_000,
  LOOP_STOP_MS: 2_000,
  TASK_STOP_MS: 2_000,
} as const;

/** How a worker's run ended. */
export interface ShutdownReport {
  /**
   * Jobs whose result (or re-queue) could not be written before shutdown gave up on Redis.
   * Their leases expire and any live worker puts them back in their queues.
   */
  readonly unwritten: readonly JobRef[];
}

/**
 * Waits for the writes in `pending()` (it shrinks as they finish): while Redis answers, up to
 * FINAL_WRITES_MAX_MS; once it has been unreachable (`redisDown()`) past FINAL_WRITES_MS, no
 * longer. Resolves true when every write finished, false when it gave up.
 */
export async function finalWritesSettled(
  pending: () => ReadonlySet<Promise<void>>,
  redisDown: () => boolean,
): Promise<boolean> {
  const started = Date.now();
  for (;;) {
    if (pending().size === 0) return true;
    const waited = Date.now() - started;
    if (waited >= ShutdownTimings.FINAL_WRITES_MAX_MS) return false;
    if (waited >= ShutdownTimings.FINAL_WRITES_MS && redisDown()) return false;
    await within(Promise.all([...pending()]), 100);
  }
}
