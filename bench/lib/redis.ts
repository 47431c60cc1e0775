/** The bench's redis-server: one fresh server per scenario, and INFO deltas between contenders. */
import type { Redis } from "ioredis";
import { startRedis, type TestRedis } from "../../test/support/redis-server.js";

/**
 * A fresh `redis-server` with persistence off (RDB and AOF), no memory limit, DEBUG allowed from
 * local clients (for `settleKeyspace`), and default everything else: every contender of a
 * scenario runs against this one server.
 */
export function freshRedis(): Promise<TestRedis> {
  return startRedis([
    "--maxmemory",
    "0",
    "--protected-mode",
    "no",
    "--enable-debug-command",
    "local",
  ]);
}

/**
 * Waits until database 0's key table is not being rehashed (`DEBUG HTSTATS 0` lists no
 * "rehashing target"), at most `timeoutMs`. A fill that takes the key count past a power of two
 * makes Redis double its table and move every key over, a little per command and 1 ms per
 * server tick: with a million keys that takes seconds and, when it overlaps a measured drain,
 * slowed that drain by about a tenth to a quarter (bench/RESULTS.md). A deep queue in steady
 * state does not resize, so measurements start from a settled table. Returns false when the
 * server refuses DEBUG (nothing to wait on) or the table is still rehashing at the deadline.
 */
export async function settleKeyspace(redis: Redis, timeoutMs = 60_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    let stats: string;
    try {
      stats = String(await redis.call("DEBUG", "HTSTATS", "0"));
    } catch {
      return false;
    }
    if (!stats.includes("rehashing target")) return true;
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0 && !line.startsWith("#")) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

/** Redis-side counters read before and after a measured window. */
export interface RedisCounters {
  /** calls per command name (INFO commandstats; commands inside Lua scripts count too). */
  calls: Map<string, number>;
  /** used_cpu_user + used_cpu_sys, seconds. */
  cpuSeconds: number;
  usedMemory: number;
}

export async function readCounters(redis: Redis): Promise<RedisCounters> {
  const [stats, cpu, memory] = await Promise.all([
    redis.info("commandstats"),
    redis.info("cpu"),
    redis.info("memory"),
  ]);
  const calls = new Map<string, number>();
  for (const [key, value] of parseInfo(stats)) {
    const m = /calls=(\d+)/.exec(value);
    if (key.startsWith("cmdstat_") && m) calls.set(key.slice(8), Number(m[1]));
  }
  const c = parseInfo(cpu);
  return {
    calls,
    cpuSeconds: Number(c.get("used_cpu_user") ?? 0) + Number(c.get("used_cpu_sys") ?? 0),
    usedMemory: Number(parseInfo(memory).get("used_memory") ?? 0),
  };
}

/** Commands issued between two counter snapshots, minus the bench's own (INFO, probes). */
export function commandDelta(
  before: RedisCounters,
  after: RedisCounters,
  own: ReadonlyMap<string, number>,
): { total: number; scripts: number; byCommand: Record<string, number> } {
  const byCommand: Record<string, number> = {};
  let total = 0;
  let scripts = 0;
  for (const [name, calls] of after.calls) {
    if (name === "info" || name.startsWith("config")) continue;
    const n = calls - (before.calls.get(name) ?? 0) - (own.get(name) ?? 0);
    if (n <= 0) continue;
    byCommand[name] = n;
    total += n;
    if (name === "evalsha" || name === "eval" || name.startsWith("fcall")) scripts += n;
  }
  return { total, scripts, byCommand };
}

/** Empties the server and its statistics between contenders. */
export async function resetServer(redis: Redis): Promise<void> {
  await redis.flushall();
  await redis.config("RESETSTAT");
}
