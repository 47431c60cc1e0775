/**
 * RRQ's slow-path orphan recovery: the paced SCAN for dead workers' active sets (recovery.ts)
 * against a real redis-server whose keyspace spans several SCAN pages.
 */
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import { Heartbeat } from "../src/orchestrator/heartbeat.js";
import { ORPHAN_SCAN, Recovery } from "../src/orchestrator/recovery.js";
import { ORPHAN_SCAN_KEY } from "../src/store/keys.js";
import { EventBus } from "../src/telemetry/events.js";
import { useStoreFixture } from "./support/store-fixture.js";

const fx = useStoreFixture();
const DEAD = "rrq_worker_1_dead00";

/** Adds `n` unrelated string keys, so the SCAN needs several calls. */
async function fillKeyspace(n: number): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    const pairs = Array.from({ length: Math.min(1000, n - i) }, (_, j) => [`filler:${i + j}`, "x"]);
    await fx.redis.client.mset(pairs.flat());
  }
}

/** A job that a dead worker (no health key, no lock) had claimed. */
async function orphan(): Promise<string> {
  const id = await fx.producer.enqueue("echo", {}, { deferBySeconds: 3600 });
  await fx.redis.client.zrem("rrq:queue:default", id);
  await fx.redis.client.hset(`rrq:job:${id}`, { status: "ACTIVE", worker_id: DEAD });
  await fx.redis.client.zadd(`rrq:active:jobs:${DEAD}`, 1, id);
  return id;
}

async function scanCalls(): Promise<number> {
  const stats = await fx.redis.client.info("commandstats");
  return Number(/cmdstat_scan:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

const recovery = (workerId = "rrq_worker_1_alive0") =>
  new Recovery(fx.store, resolveConfig({}), workerId, new EventBus());

/** A heartbeat of a live worker `workerId` (not started: the test calls its tick). */
const heartbeat = (workerId: string) =>
  new Heartbeat(
    fx.store,
    workerId,
    resolveConfig({}),
    () => ({ status: "running", activeJobs: 0, concurrencyLimit: 1, queues: [] }),
    new EventBus(),
    recovery(workerId),
  );

describe("orphan recovery scan", () => {
  it("finds a dead worker's active set in a keyspace of several SCAN pages", async () => {
    await fillKeyspace(5 * ORPHAN_SCAN.count);
    const id = await orphan();
    await fx.redis.client.config("RESETSTAT");

    expect(await recovery().recoverDeadWorkers()).toBe(1);
    expect(await fx.redis.client.hget(`rrq:job:${id}`, "status")).toBe("PENDING");
    expect(await fx.redis.client.zscore("rrq:queue:default", id)).not.toBeNull();
    expect(await fx.redis.client.exists(`rrq:active:jobs:${DEAD}`)).toBe(0);
    // COUNT 1000: a handful of calls where RRQ's COUNT 100 needs dozens.
    expect(await scanCalls()).toBeGreaterThan(1);
    expect(await scanCalls()).toBeLessThan(20);
  });

  it("ends the pass between SCAN calls once its signal is aborted (shutdown)", async () => {
    await fillKeyspace(5 * ORPHAN_SCAN.count);
    await fx.redis.client.config("RESETSTAT");
    const stop = new AbortController();
    stop.abort();

    await recovery().recoverDeadWorkers(stop.signal);
    expect(await scanCalls()).toBe(1);
  });

  it("runs once per interval across rrqkit workers: the first to ask takes the turn", async () => {
    const a = heartbeat("rrq_worker_1_aaaaaa");
    const b = heartbeat("rrq_worker_1_bbbbbb");
    await a.tick();
    expect(await fx.redis.client.get(ORPHAN_SCAN_KEY)).toBe("rrq_worker_1_aaaaaa");
    const ttl = await fx.redis.client.pttl(ORPHAN_SCAN_KEY);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);

    // B's pass is skipped while A holds the turn: the orphan stays where it is.
    const id = await orphan();
    await b.tick();
    expect(await fx.redis.client.hget(`rrq:job:${id}`, "status")).toBe("ACTIVE");
    // The holder may run again; once the turn lapses, anyone takes it.
    await a.tick();
    expect(await fx.redis.client.hget(`rrq:job:${id}`, "status")).toBe("PENDING");
    await fx.redis.client.del(ORPHAN_SCAN_KEY);
    await b.tick();
    expect(await fx.redis.client.get(ORPHAN_SCAN_KEY)).toBe("rrq_worker_1_bbbbbb");
  });
});
