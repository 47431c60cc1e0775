import type { Redis } from "ioredis";
import { show } from "./matching.js";

/** One key as the producer left it. */
export interface KeyState {
  type: string;
  /** Seconds to live; -1 for none. */
  ttl: number;
  /** string: the value; hash: fields; zset: [member, score] pairs in order; list: items. */
  value: unknown;
}

/** Every key of one database. */
export type Snapshot = Record<string, KeyState>;

/**
 * Reads every key of the client's database with its type, value and TTL, except the
 * `rrq:enqueue:<token>` keys rrqkit's TypeScript producer leaves for a minute so a re-sent
 * enqueue is recognised (enqueue-3.lua): a per-call detail, not part of what a producer writes.
 */
export async function snapshot(redis: Redis): Promise<Snapshot> {
  const keys = (await redis.keys("*")).filter((key) => !key.startsWith("rrq:enqueue:")).sort();
  const out: Snapshot = {};
  for (const key of keys) {
    const type = await redis.type(key);
    const ttl = await redis.ttl(key);
    let value: unknown;
    if (type === "string") value = await redis.get(key);
    else if (type === "hash") value = await redis.hgetall(key);
    else if (type === "list") value = await redis.lrange(key, 0, -1);
    else if (type === "set") value = (await redis.smembers(key)).sort();
    else if (type === "zset") {
      const flat = await redis.zrange(key, 0, -1, "WITHSCORES");
      const pairs: Array<[string, number]> = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, Number(flat[i + 1])]);
      value = pairs;
    } else if (type === "stream") value = { entries: await redis.xlen(key) };
    out[key] = { type, ttl, value };
  }
  return out;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const TIMESTAMP = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00/g;

/** How to make two bindings' snapshots comparable. */
export interface Normalization {
  /** Job ids by alias, replaced by `{alias}`. */
  ids: Map<string, string>;
  /** Replace "now"-derived timestamps and queue scores (when the case does not fix the time). */
  times: boolean;
}

function text(value: string, n: Normalization): string {
  let out = value;
  for (const [alias, id] of n.ids) out = out.split(id).join(`{${alias}}`);
  out = out.replace(UUID, "<uuid>");
  return n.times ? out.replace(TIMESTAMP, "<time>") : out;
}

/** A snapshot with generated ids (and, if asked, clock-derived times) replaced by placeholders. */
export function normalize(s: Snapshot, n: Normalization): Snapshot {
  const out: Snapshot = {};
  for (const [key, state] of Object.entries(s)) {
    let value = state.value;
    if (typeof value === "string") value = text(value, n);
    else if (state.type === "zset")
      // Members of equal score are in member order, i.e. by generated job id: ordered by their
      // placeholder instead, so jobs enqueued within one millisecond compare equal
      value = (value as Array<[string, number]>)
        .map(([member, score]) => ({ member: text(member, n), score }))
        .sort(
          (a, b) => a.score - b.score || (a.member < b.member ? -1 : a.member > b.member ? 1 : 0),
        )
        .map(({ member, score }) => [member, n.times ? "<score>" : score]);
    else if (Array.isArray(value))
      value = value.map((item) =>
        Array.isArray(item)
          ? [text(String(item[0]), n), n.times ? "<score>" : item[1]]
          : text(String(item), n),
      );
    else if (state.type === "hash")
      value = Object.fromEntries(
        Object.entries(value as Record<string, string>).map(([k, v]) => [k, text(v, n)]),
      );
    out[text(key, n)] = { ...state, value };
  }
  return out;
}

/** TTLs are read a moment apart; two TTLs within this many seconds are equal. */
const TTL_SLACK = 2;

/**
 * Field-by-field differences between a reference snapshot and another one (both normalized):
 * one message per key or field that differs, naming both values.
 */
export function diffSnapshots(
  reference: Snapshot,
  other: Snapshot,
  refName: string,
  otherName: string,
): string[] {
  const problems: string[] = [];
  for (const key of new Set([...Object.keys(reference), ...Object.keys(other)])) {
    const a = reference[key];
    const b = other[key];
    if (!a || !b) {
      problems.push(`${key}: exists for ${a ? refName : otherName} only`);
      continue;
    }
    if (a.type !== b.type)
      problems.push(`${key}: type ${a.type} (${refName}) vs ${b.type} (${otherName})`);
    else if (Math.abs(a.ttl - b.ttl) > TTL_SLACK || a.ttl < 0 !== b.ttl < 0)
      problems.push(`${key}: TTL ${a.ttl} (${refName}) vs ${b.ttl} (${otherName})`);
    if (a.type === "hash" && b.type === "hash") {
      const fa = a.value as Record<string, string>;
      const fb = b.value as Record<string, string>;
      for (const field of new Set([...Object.keys(fa), ...Object.keys(fb)]))
        if (fa[field] !== fb[field])
          problems.push(
            `${key}.${field}: ${show(fa[field])} (${refName}) vs ${show(fb[field])} (${otherName})`,
          );
    } else if (JSON.stringify(a.value) !== JSON.stringify(b.value)) {
      problems.push(`${key}: ${show(a.value)} (${refName}) vs ${show(b.value)} (${otherName})`);
    }
  }
  return problems;
}
