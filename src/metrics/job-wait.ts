import { parseTimestamp } from "../store/encoding.js";

const at = (text: string | undefined): number | undefined =>
  text ? parseTimestamp(text) : undefined;

/**
 * How long a claimed job had been due when it started, in ms (rrq_job_wait_seconds): its
 * `start_time` minus the later of `enqueue_time` and `next_scheduled_run_time` (a deferred job
 * or a retry is due at its scheduled time, not when it was enqueued). Undefined when the hash
 * lacks the times; never negative.
 */
export function queueWaitMs(hash: Readonly<Record<string, string>>): number | undefined {
  const started = at(hash.start_time);
  const enqueued = at(hash.enqueue_time);
  if (started === undefined || enqueued === undefined) return undefined;
  const scheduled = at(hash.next_scheduled_run_time);
  const due = scheduled === undefined ? enqueued : Math.max(enqueued, scheduled);
  return Math.max(0, started - due);
}
