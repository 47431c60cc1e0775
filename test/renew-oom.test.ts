/**
 * renew-leases-2.lua under memory pressure: with Redis at maxmemory (noeviction) the leases of
 * running jobs must still be renewed, or they lapse and the jobs run twice (found by the chaos
 * suite's maxmemory scenario). A real redis-server; the store's own script call.
 */
import { afterEach, describe, expect, it } from "vitest";
import { LEASES_KEY } from "../src/store/keys.js";
import { useStoreFixture } from "./support/store-fixture.js";

const WORKER = "rrq_worker_oom_1";
const QUEUE = "rrq:queue:oom";
const fx = useStoreFixture();

/** Sets maxmemory just under what Redis uses now, so every write that may grow memory fails. */
async function fillRedis(): Promise<void> {
  await fx.redis.client.config("SET", "maxmemory-policy", "noeviction");
  const info = await fx.redis.client.info("memory");
  const used = Number(/used_memory:(\d+)/.exec(info)![1]);
  await fx.redis.client.config("SET", "maxmemory", String(used - 4096));
}

afterEach(async () => {
  await fx.redis.client.config("SET", "maxmemory", "0");
});

describe("renew-leases-2.lua at maxmemory", () => {
  it("renews the locks and lease entries of running jobs while every other write is refused", async () => {
    const ids = [
      await fx.producer.enqueue("echo", { i: 1 }, { queueName: QUEUE }),
      await fx.producer.enqueue("echo", { i: 2 }, { queueName: QUEUE }),
    ];
    const { claimed } = await fx.store.claim(QUEUE, WORKER, 2, 1_000);
    expect(claimed.map((job) => job.id).sort()).toEqual([...ids].sort());
    const before = await Promise.all(ids.map((id) => fx.redis.client.zscore(LEASES_KEY, id)));
    await fillRedis();
    // Redis refuses ordinary writes now.
    await expect(fx.redis.client.set("probe", "x")).rejects.toThrow(/OOM/);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const attempts = claimed.map((job) => ({ jobId: job.id, fence: job.hash.lease_fence! }));
    expect(await fx.store.renewLeases(WORKER, 60_000, attempts)).toEqual([]);
    for (const [i, id] of ids.entries()) {
      expect(await fx.redis.client.pttl(`rrq:lock:job:${id}`)).toBeGreaterThan(30_000);
      expect(Number(await fx.redis.client.zscore(LEASES_KEY, id))).toBeGreaterThan(
        Number(before[i]),
      );
    }
  });
});
