import type { Redis } from "ioredis";
import { jobKey } from "../store/keys.js";
import { jobViewFromFields, VIEW_FIELDS, type JobView } from "./records.js";

/**
 * Cursor-based reads that never block Redis: every call touches a bounded number of entries,
 * so a read over a million jobs is many short commands, never one long one.
 */

/** Keys matching `pattern`, in SCAN batches of about `count` (SCAN's cursor contract: a key
 * present for the whole iteration is returned at least once; duplicates are possible). */
export async function* scanKeys(
  redis: Redis,
  pattern: string,
  options: { count?: number; signal?: AbortSignal } = {},
): AsyncGenerator<string[]> {
  let cursor = "0";
  do {
    if (options.signal?.aborted) return;
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", options.count ?? 1000);
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== "0");
}

/** Views of many jobs in one pipelined round trip (missing jobs are left out). */
export async function jobViews(redis: Redis, ids: readonly string[]): Promise<JobView[]> {
  if (ids.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hmget(jobKey(id), ...VIEW_FIELDS);
  const replies = (await pipeline.exec()) ?? [];
  const views: JobView[] = [];
  replies.forEach(([error, values], i) => {
    if (error) throw error;
    const view = jobViewFromFields(ids[i]!, values as Array<string | null>);
    if (view) views.push(view);
  });
  return views;
}

/** Views of many jobs, in order, with `undefined` where the hash is gone. */
export async function jobViewsInOrder(
  redis: Redis,
  ids: readonly string[],
): Promise<Array<JobView | undefined>> {
  if (ids.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hmget(jobKey(id), ...VIEW_FIELDS);
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([error, values], i) => {
    if (error) throw error;
    return jobViewFromFields(ids[i]!, values as Array<string | null>);
  });
}

/** One page of a list read from the head; entry i sits at tail index `tailStart + i` (-1 = last). */
export interface ListPage {
  ids: string[];
  tailStart: number;
}

/**
 * A list read head to tail in pages of `pageSize` entries (LRANGE; each page is O(page)).
 * Positions are counted from the tail of the list as it was when the walk began, so entries
 * LPUSHed meanwhile (new DLQ failures) neither shift the walk nor get visited.
 */
export async function* listPages(
  redis: Redis,
  key: string,
  options: { pageSize?: number; signal?: AbortSignal } = {},
): AsyncGenerator<ListPage> {
  const size = Math.max(1, options.pageSize ?? 500);
  const length = await redis.llen(key);
  for (let from = -length; from <= -1; from += size) {
    if (options.signal?.aborted) return;
    const ids = await redis.lrange(key, from, Math.min(from + size - 1, -1));
    if (ids.length === 0) return;
    yield { ids, tailStart: from };
  }
}

/** A sorted set read by rank in pages (ZRANGE; each page is O(log n + page)). */
export async function* zsetPages(
  redis: Redis,
  key: string,
  options: { pageSize?: number; signal?: AbortSignal } = {},
): AsyncGenerator<Array<{ id: string; score: number }>> {
  const size = Math.max(1, options.pageSize ?? 500);
  for (let start = 0; ; start += size) {
    if (options.signal?.aborted) return;
    const flat = await redis.zrange(key, start, start + size - 1, "WITHSCORES");
    if (flat.length === 0) return;
    const page: Array<{ id: string; score: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2)
      page.push({ id: flat[i]!, score: Number(flat[i + 1]) });
    yield page;
    if (page.length < size) return;
  }
}
