/**
 * Filling queues, watching them drain and checking that every job is accounted for. rrqkit and
 * RRQ share one job format (rrqkit's producer writes exactly what RRQ's writes), so both are
 * filled with rrqkit's TypeScript producer; BullMQ with its own `addBulk`.
 */
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { EnqueueOptions } from "../../src/producer/options.js";
import { Producer } from "../../src/producer/producer.js";
import { BULL_QUEUE, probe, probeCommands, type System } from "./consumers.js";

const FILL_BATCH = 1000;
const FILL_PARALLEL = 4;

/** A queue filled by the bench; `ids` are the rrqkit/RRQ job ids (empty for BullMQ). */
export interface Filled {
  system: System;
  count: number;
  ids: string[];
}

/** Enqueues `count` no-op jobs (`name` with params {i}), pipelined in batches. */
export async function fill(
  redisUrl: string,
  system: System,
  count: number,
  options: {
    name?: string;
    params?: (i: number) => Record<string, unknown>;
    keepIds?: boolean;
    /** rrqkit/RRQ only: enqueue options of job i (e.g. a concurrency key). */
    enqueueOptions?: (i: number) => EnqueueOptions;
  } = {},
): Promise<Filled> {
  const name = options.name ?? "echo";
  const params = options.params ?? ((i: number) => ({ i }));
  const ids: string[] = [];
  let next = 0;
  if (system === "bullmq") {
    const { hostname, port } = new URL(redisUrl);
    const queue = new Queue(BULL_QUEUE, { connection: { host: hostname, port: Number(port) } });
    try {
      const worker = async () => {
        while (next < count) {
          const lo = next;
          const hi = Math.min(count, lo + FILL_BATCH);
          next = hi;
          const items = [];
          for (let i = lo; i < hi; i++) items.push({ name, data: params(i) });
          await queue.addBulk(items);
        }
      };
      await Promise.all(Array.from({ length: FILL_PARALLEL }, worker));
    } finally {
      await queue.close();
    }
  } else {
    const producer = new Producer({ redisDsn: redisUrl });
    try {
      const worker = async () => {
        while (next < count) {
          const lo = next;
          const hi = Math.min(count, lo + FILL_BATCH);
          next = hi;
          const items = [];
          for (let i = lo; i < hi; i++)
            items.push({
              functionName: name,
              params: params(i),
              ...(options.enqueueOptions ? { options: options.enqueueOptions(i) } : {}),
            });
          const got = await producer.enqueueMany(items);
          if (options.keepIds !== false) ids.push(...got);
        }
      };
      await Promise.all(Array.from({ length: FILL_PARALLEL }, worker));
    } finally {
      await producer.close();
    }
  }
  return { system, count, ids };
}

/** A measured window of a drain. */
export interface DrainWindow {
  /** performance.now() of the first probe that saw the depth below `from`. */
  startMs: number;
  /** performance.now() of the first probe that saw the end condition. */
  endMs: number;
  probes: number;
  /** Most jobs seen in flight by one probe. */
  maxInFlight: number;
}

/**
 * Polls depth and in-flight every ~2 ms. The window starts at the first probe that sees the
 * depth below `from` (the first claim) and ends at the first probe, once the consumer is ready
 * (`workerIds` returns its ids), that sees the depth at or below `to` and, when `to` is 0,
 * nothing in flight (every job finished). `onStart` runs at the window start (CPU baselines).
 */
export async function watchDrain(
  redis: Redis,
  system: System,
  options: {
    from: number;
    to: number;
    timeoutMs: number;
    onStart?: () => void;
    workerIds: () => readonly string[] | undefined;
  },
): Promise<DrainWindow> {
  const deadline = performance.now() + options.timeoutMs;
  let startMs: number | undefined;
  let probes = 0;
  let last = { pending: options.from, inFlight: 0 };
  let maxInFlight = 0;
  for (;;) {
    const ids = options.workerIds();
    last = await probe(redis, system, ids ?? []);
    probes++;
    maxInFlight = Math.max(maxInFlight, last.inFlight);
    const now = performance.now();
    if (startMs === undefined && last.pending < options.from) {
      startMs = now;
      options.onStart?.();
    }
    if (
      startMs !== undefined &&
      ids !== undefined &&
      last.pending <= options.to &&
      (options.to > 0 || last.inFlight === 0)
    )
      return { startMs, endMs: now, probes, maxInFlight };
    if (now > deadline)
      throw new Error(
        `drain timed out after ${options.timeoutMs} ms (pending ${last.pending}, in flight ${last.inFlight})`,
      );
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Commands issued by `probes` probes (to subtract from Redis command counts). */
export function ownCommands(system: System, workers: number, probes: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, n] of probeCommands(system, workers)) out.set(name, n * probes);
  return out;
}

/** Counts of final states; `ok` when exactly `expected` jobs completed and none failed. */
export async function accountFor(
  redis: Redis,
  filled: Filled,
  expected = filled.count,
): Promise<{ ok: boolean; completed: number; detail: string }> {
  if (filled.system === "bullmq") {
    const [completed, failed, wait, active] = await Promise.all([
      redis.zcard(`bull:${BULL_QUEUE}:completed`),
      redis.zcard(`bull:${BULL_QUEUE}:failed`),
      redis.llen(`bull:${BULL_QUEUE}:wait`),
      redis.llen(`bull:${BULL_QUEUE}:active`),
    ]);
    return {
      ok: completed === expected && failed === 0 && wait === 0 && active === 0,
      completed,
      detail: `completed ${completed}/${expected}, failed ${failed}, waiting ${wait}, active ${active}`,
    };
  }
  const counts = new Map<string, number>();
  for (let i = 0; i < filled.ids.length; i += 5000) {
    const pipeline = redis.pipeline();
    for (const id of filled.ids.slice(i, i + 5000)) pipeline.hget(`rrq:job:${id}`, "status");
    for (const [error, status] of (await pipeline.exec()) ?? []) {
      const key = error ? "error" : ((status as string | null) ?? "missing");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  const completed = counts.get("COMPLETED") ?? 0;
  const detail = [...counts].map(([k, v]) => `${k} ${v}`).join(", ");
  return { ok: completed === expected && filled.ids.length === expected, completed, detail };
}
