import type { Redis } from "ioredis";
import { hashFromPairs } from "../store/job.js";
import { dlqStatsKey, jobKey } from "../store/keys.js";
import { parseTimestamp } from "../store/encoding.js";
import { registerScripts } from "../store/scripts.js";
import { listPages } from "./scan.js";

/**
 * The DLQ summary: `rrq:stats:dlq:<name>`, a HASH kept by rrqkit's scripts so `rrq dlq stats`
 * answers without reading every DLQ job.
 *
 * Fields: `len` (list entries counted), `tombstones` (entries marked for removal by an
 * interrupted or running requeue/purge), `jobs` (entries whose job hash existed when counted),
 * `retries` (their current_retries summed), `errors` (distinct error texts, at most 200),
 * `q:<queue key>`, `f:<function>`, `e:<error, truncated to 100 chars as RRQ does>` counts.
 *
 * move-to-dlq-6.lua adds, dlq-take-3.lua subtracts. The summary is trusted while
 * `len + tombstones == LLEN`; any other writer (RRQ's orchestrator LPUSHes, RRQ's requeue
 * LREMs) breaks that equality and the next read rebuilds it with one walk of the list. Job hashes
 * that expire (7 days after they failed) stay counted until the next rebuild (`--rebuild`);
 * RRQ skips them at once.
 */
export interface DlqSummary {
  /** The DLQ list key. */
  readonly dlq: string;
  /** DLQ entries (LLEN without tombstones), including ids whose job hash has expired. */
  readonly entries: number;
  /** Entries with a job hash when counted: RRQ's "Total jobs". */
  readonly jobs: number;
  readonly avgRetries: number | undefined;
  /** Failure time of the newest and oldest entries (epoch ms), from the ends of the list. */
  readonly newest: number | undefined;
  readonly oldest: number | undefined;
  /** Counts, highest first (ties by name). */
  readonly byQueue: ReadonlyArray<[string, number]>;
  readonly byFunction: ReadonlyArray<[string, number]>;
  readonly byError: ReadonlyArray<[string, number]>;
  /** Oldest entries removed by the `dlq_max_jobs` / `dlq_max_age_seconds` caps (rrqkit). */
  readonly trimmed: number;
  /** True when this read had to rebuild the summary from the list. */
  readonly rebuilt: boolean;
}

/** Progress of a rebuild walk. */
export type WalkProgress = (done: number, total: number) => void;

const MAX_ERRORS = 200;
const OTHER_ERRORS = "(other errors)";

const truncateError = (text: string) => (text.length > 100 ? `${text.slice(0, 97)}...` : text);

const ranked = (hash: Record<string, string>, prefix: string): Array<[string, number]> =>
  Object.entries(hash)
    .filter(([field, count]) => field.startsWith(prefix) && Number(count) > 0)
    .map(([field, count]): [string, number] => [field.slice(prefix.length), Number(count)])
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

/** Recounts a DLQ list into its summary (one walk; the list is read in pages). */
export async function rebuildDlqSummary(
  redis: Redis,
  dlq: string,
  onProgress?: WalkProgress,
): Promise<Record<string, string>> {
  const fields = new Map<string, number>();
  const add = (field: string, by: number | undefined = 1) =>
    fields.set(field, (fields.get(field) ?? 0) + (by ?? 0));
  let len = 0;
  let walked = 0;
  const total = await redis.llen(dlq);
  for await (const page of listPages(redis, dlq, { pageSize: 1000 })) {
    const ids = page.ids.filter((id) => id !== TOMBSTONE);
    len += ids.length;
    const pipeline = redis.pipeline();
    for (const id of ids)
      pipeline.hmget(jobKey(id), "queue_name", "function_name", "last_error", "current_retries");
    const replies = (await pipeline.exec()) ?? [];
    for (const [error, reply] of replies) {
      if (error) throw error;
      const [queue, fn, lastError, retries] = reply as Array<string | null>;
      if (queue === null && fn === null && lastError === null && retries === null) continue;
      add("jobs");
      add("retries", Number(retries) || 0);
      add(`q:${queue || "Unknown"}`);
      add(`f:${fn || "Unknown"}`);
      add(`e:${truncateError(lastError ?? "")}`);
    }
    walked += page.ids.length;
    onProgress?.(walked, total);
  }
  const errors = [...fields.keys()].filter((f) => f.startsWith("e:"));
  if (errors.length > MAX_ERRORS) {
    errors.sort((a, b) => fields.get(b)! - fields.get(a)!);
    for (const field of errors.slice(MAX_ERRORS)) {
      add(`e:${OTHER_ERRORS}`, fields.get(field));
      fields.delete(field);
    }
  }
  fields.set("errors", Math.min(errors.length, MAX_ERRORS));
  fields.set("len", len);
  // `trimmed` is history (entries the caps removed), not a count of what is listed: it survives
  // the recount (a trim landing between this read and the write below is lost from it).
  const trimmed = Number(await redis.hget(dlqStatsKey(dlq), "trimmed")) || 0;
  if (trimmed > 0) fields.set("trimmed", trimmed);
  const hash = Object.fromEntries([...fields].map(([k, v]) => [k, String(v)]));
  await redis.multi().del(dlqStatsKey(dlq)).hset(dlqStatsKey(dlq), hash).exec();
  return hash;
}

/** The tombstone dlq-take-3.lua writes in place of removed entries. */
export const TOMBSTONE = "__rrqkit_removed__";

/** Removes leftover tombstones (an interrupted requeue or purge); returns how many. */
export async function compactDlq(redis: Redis, dlq: string): Promise<number> {
  const scripts = registerScripts(redis);
  return scripts.run<number>(redis, "dlq-compact", [dlq, dlqStatsKey(dlq)], []);
}

/** Makes sure the summary matches the list (compacting and rebuilding as needed). */
export async function currentDlqSummary(
  redis: Redis,
  dlq: string,
  options: { rebuild?: boolean; onProgress?: WalkProgress } = {},
): Promise<{ hash: Record<string, string>; rebuilt: boolean }> {
  for (let attempt = 0; ; attempt++) {
    const [[, pairs], [, length]] = (await redis
      .multi()
      .hgetall(dlqStatsKey(dlq))
      .llen(dlq)
      .exec()) as [[unknown, Record<string, string>], [unknown, number]];
    const hash = Array.isArray(pairs) ? hashFromPairs(pairs as string[]) : pairs;
    const tombstones = Number(hash.tombstones ?? 0);
    if (tombstones > 0 && attempt === 0) {
      await compactDlq(redis, dlq);
      continue;
    }
    const valid =
      Object.keys(hash).length > 0 && Number(hash.len ?? 0) + tombstones === Number(length);
    if (valid && !options.rebuild) return { hash, rebuilt: false };
    if (length === 0) {
      await redis.del(dlqStatsKey(dlq));
      return { hash: {}, rebuilt: Object.keys(hash).length > 0 };
    }
    return { hash: await rebuildDlqSummary(redis, dlq, options.onProgress), rebuilt: true };
  }
}

/** Failure times of the entries at both ends of the list (newest at the head). */
async function edgeTimes(redis: Redis, dlq: string): Promise<{ newest?: number; oldest?: number }> {
  const [[, head], [, tail]] = (await redis
    .multi()
    .lrange(dlq, 0, 9)
    .lrange(dlq, -10, -1)
    .exec()) as [[unknown, string[]], [unknown, string[]]];
  const times = async (ids: string[]) => {
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hget(jobKey(id), "completion_time");
    const replies = (await pipeline.exec()) ?? [];
    return replies
      .map(([, value]) => (typeof value === "string" ? parseTimestamp(value) : undefined))
      .filter((t): t is number => t !== undefined);
  };
  const [newest, oldest] = await Promise.all([times(head), times(tail)]);
  const all = [...newest, ...oldest];
  return all.length === 0 ? {} : { newest: Math.max(...all), oldest: Math.min(...all) };
}

/** The DLQ's summary, trusted when consistent and rebuilt when not. */
export async function dlqSummary(
  redis: Redis,
  dlq: string,
  options: { rebuild?: boolean; onProgress?: WalkProgress } = {},
): Promise<DlqSummary> {
  const { hash, rebuilt } = await currentDlqSummary(redis, dlq, options);
  const jobs = Number(hash.jobs ?? 0);
  const { newest, oldest } = jobs > 0 ? await edgeTimes(redis, dlq) : {};
  return {
    dlq,
    entries: Number(hash.len ?? 0),
    jobs,
    avgRetries: jobs > 0 ? Number(hash.retries ?? 0) / jobs : undefined,
    newest,
    oldest,
    byQueue: ranked(hash, "q:"),
    byFunction: ranked(hash, "f:"),
    byError: ranked(hash, "e:"),
    trimmed: Number(hash.trimmed ?? 0) || 0,
    rebuilt,
  };
}
