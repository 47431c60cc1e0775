import { parseTimestamp } from "../store/encoding.js";

/**
 * A job hash as the operator API reports it. Unlike the worker's `parseJob`, reading never fails:
 * operators must see malformed and legacy hashes too, so every field is optional and `raw` keeps
 * the hash exactly as stored. Times are epoch milliseconds.
 */
export interface JobView {
  readonly id: string;
  readonly functionName: string | undefined;
  /** The full queue key as stored (`rrq:queue:<name>`). */
  readonly queueName: string | undefined;
  /** One of RRQ's six statuses, or whatever the hash holds. */
  readonly status: string | undefined;
  readonly enqueueTime: number | undefined;
  readonly startTime: number | undefined;
  readonly completionTime: number | undefined;
  readonly nextScheduledRunTime: number | undefined;
  readonly currentRetries: number;
  readonly maxRetries: number | undefined;
  readonly lastError: string | undefined;
  /** The error type of the failure last_error describes (rrqkit: `last_error_type`). */
  readonly lastErrorType: string | undefined;
  /**
   * Its traceback, at most 8 KiB (rrqkit: `last_error_traceback`). Only views read from the
   * whole hash have it (`jobs.get`, `job show`); list views leave it undefined.
   */
  readonly lastErrorTraceback: string | undefined;
  readonly workerId: string | undefined;
  readonly raw: Readonly<Record<string, string>>;
}

/** The hash fields list views need (HMGET order); `job show` reads the whole hash instead. */
export const VIEW_FIELDS = [
  "id",
  "function_name",
  "queue_name",
  "status",
  "enqueue_time",
  "start_time",
  "completion_time",
  "next_scheduled_run_time",
  "current_retries",
  "max_retries",
  "last_error",
  "last_error_type",
  "worker_id",
  "retries",
  "error",
] as const;

const time = (value: string | undefined): number | undefined =>
  value === undefined || value === "" ? undefined : parseTimestamp(value);

const int = (value: string | undefined): number | undefined => {
  if (value === undefined || value.trim() === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? Math.trunc(n) : undefined;
};

/** A view of a hash (HGETALL result); `undefined` for an empty hash (no such job). */
export function jobView(id: string, hash: Record<string, string>): JobView | undefined {
  if (Object.keys(hash).length === 0) return undefined;
  return {
    id: hash.id || id,
    functionName: hash.function_name,
    queueName: hash.queue_name || undefined,
    status: hash.status,
    enqueueTime: time(hash.enqueue_time),
    startTime: time(hash.start_time),
    completionTime: time(hash.completion_time),
    nextScheduledRunTime: time(hash.next_scheduled_run_time),
    // RRQ's CLI falls back to the legacy `retries` field.
    currentRetries: int(hash.current_retries) ?? int(hash.retries) ?? 0,
    maxRetries: int(hash.max_retries),
    lastError: hash.last_error ?? hash.error,
    lastErrorType: hash.last_error_type || undefined,
    lastErrorTraceback: hash.last_error_traceback || undefined,
    workerId: hash.worker_id || undefined,
    raw: hash,
  };
}

/** A view from an HMGET of {@link VIEW_FIELDS}. */
export function jobViewFromFields(
  id: string,
  values: ReadonlyArray<string | null>,
): JobView | undefined {
  const hash: Record<string, string> = {};
  VIEW_FIELDS.forEach((field, i) => {
    const value = values[i];
    if (value !== null && value !== undefined) hash[field] = value;
  });
  return jobView(id, hash);
}

/**
 * The plain-data form of a view, for JSON output (times as RFC 3339 UTC). `lastErrorTraceback`
 * is null in list views, which do not read it.
 */
export function jobJson(view: JobView): Record<string, unknown> {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    id: view.id,
    functionName: view.functionName ?? null,
    queueName: view.queueName ?? null,
    status: view.status ?? null,
    enqueueTime: iso(view.enqueueTime),
    startTime: iso(view.startTime),
    completionTime: iso(view.completionTime),
    nextScheduledRunTime: iso(view.nextScheduledRunTime),
    currentRetries: view.currentRetries,
    maxRetries: view.maxRetries ?? null,
    lastError: view.lastError ?? null,
    lastErrorType: view.lastErrorType ?? null,
    lastErrorTraceback: view.lastErrorTraceback ?? null,
    workerId: view.workerId ?? null,
  };
}

/** RRQ's queue filter: names match with or without the `rrq:queue:` prefix. */
export function sameQueue(a: string, b: string): boolean {
  const bare = (name: string) =>
    name.startsWith("rrq:queue:") ? name.slice("rrq:queue:".length) : name;
  return bare(a) === bare(b);
}

/** Whether a view passes the list filters (status case-insensitive, as RRQ). */
export function matches(
  view: JobView,
  filter: { status?: string; queue?: string; functionName?: string },
): boolean {
  if (filter.status && view.status?.toUpperCase() !== filter.status.toUpperCase()) return false;
  if (filter.queue && !sameQueue(filter.queue, view.queueName ?? "")) return false;
  if (filter.functionName && view.functionName !== filter.functionName) return false;
  return true;
}
