/**
 * claim-ready-4.lua, the orchestrator's batch claim: which queue entries it takes, skips and
 * drops, and the writes it batches (one ZREM, one INCRBY of the fence counter, one ZADD each
 * for the active set and the lease index) against a real redis-server.
 */
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { JobStore } from "../src/store/job-store.js";
import { activeKey, LEASES_KEY } from "../src/store/keys.js";
import { useStoreFixture } from "./support/store-fixture.js";

const WORKER = "rrq_worker_1_abcdef";
const QUEUE = "rrq:queue:claim";
const fx = useStoreFixture();

/** Enqueues jobs whose scores are 1 ms apart, oldest first; returns their ids. */
async function enqueue(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(await fx.producer.enqueue("echo", { i }, { queueName: QUEUE }));
    await new Promise((r) => setTimeout(r, 2));
  }
  return ids;
}

describe("claim-ready-4.lua", () => {
  it("claims the oldest jobs with consecutive fences, in order, and records them", async () => {
    const ids = await enqueue(5);
    const before = Number((await fx.redis.client.get("rrq:fence")) ?? 0);
    const { claimed, nextScore } = await fx.store.claim(QUEUE, WORKER, 3, 30_000);
    expect(claimed.map((j) => j.id)).toEqual(ids.slice(0, 3));
    expect(claimed.map((j) => Number(j.hash.lease_fence))).toEqual([
      before + 1,
      before + 2,
      before + 3,
    ]);
    expect(Number(await fx.redis.client.get("rrq:fence"))).toBe(before + 3);
    for (const job of claimed) {
      expect(job.hash).toMatchObject({ status: "ACTIVE", worker_id: WORKER, runs: "1" });
      expect(job.hash.run_1_worker).toBe(WORKER);
      expect(await fx.redis.client.get(`rrq:lock:job:${job.id}`)).toBe(WORKER);
      expect(await fx.redis.client.zscore(activeKey(WORKER), job.id)).not.toBeNull();
      const lease = Number(await fx.redis.client.zscore(LEASES_KEY, job.id));
      expect(lease).toBeGreaterThan(Date.now() + 25_000);
    }
    expect(await fx.redis.client.zrange(QUEUE, 0, -1)).toEqual(ids.slice(3));
    expect(nextScore).toBe(Number(await fx.redis.client.zscore(QUEUE, ids[3]!)));
    expect(await fx.redis.client.sismember("rrq:queues", QUEUE)).toBe(1);
  });

  it("drops stale entries, leaves keys of another type alone, and skips locked jobs", async () => {
    const [locked, free] = (await enqueue(2)) as [string, string];
    await fx.redis.client.zadd(QUEUE, 0, "no-hash", 1, "not-a-hash");
    await fx.redis.client.set("rrq:job:not-a-hash", "a string");
    await fx.redis.client.set(`rrq:lock:job:${locked}`, "another-worker");

    const { claimed } = await fx.store.claim(QUEUE, WORKER, 5, 30_000);
    expect(claimed.map((j) => j.id)).toEqual([free]);
    expect(await fx.redis.client.zrange(QUEUE, 0, -1)).toEqual([locked]);
    expect(await fx.redis.client.get("rrq:job:not-a-hash")).toBe("a string");
    expect(await fx.redis.client.get(`rrq:lock:job:${locked}`)).toBe("another-worker");
    expect(await fx.redis.client.zscore(activeKey(WORKER), locked)).toBeNull();
  });

  it("claims nothing and writes nothing from an empty or not-yet-due queue", async () => {
    await fx.producer.enqueue("echo", {}, { queueName: QUEUE, deferBySeconds: 60 });
    const fence = await fx.redis.client.get("rrq:fence");
    const { claimed, nextScore } = await fx.store.claim(QUEUE, WORKER, 4, 30_000);
    expect(claimed).toEqual([]);
    expect(nextScore).toBeGreaterThan(Date.now() + 50_000);
    expect(await fx.redis.client.get("rrq:fence")).toBe(fence);
    expect(await fx.redis.client.exists(activeKey(WORKER), LEASES_KEY)).toBe(0);
  });

  it("handles claims larger than one variadic chunk (over 1,000 arguments)", async () => {
    const many = 600;
    await fx.producer.enqueueMany(
      Array.from({ length: many }, (_, i) => ({
        functionName: "echo",
        params: { i },
        options: { queueName: QUEUE },
      })),
    );
    const { claimed } = await fx.store.claim(QUEUE, WORKER, many, 30_000);
    expect(claimed).toHaveLength(many);
    expect(new Set(claimed.map((j) => j.hash.lease_fence)).size).toBe(many);
    expect(await fx.redis.client.zcard(activeKey(WORKER))).toBe(many);
    expect(await fx.redis.client.zcard(LEASES_KEY)).toBe(many);
    expect(await fx.redis.client.zcard(QUEUE)).toBe(0);
  });

  it("keeps a growing active set and lease index in skiplist encoding, with no placeholder left", async () => {
    const client = fx.redis.client;
    const encodings = async () => [
      await client.object("ENCODING", activeKey(WORKER)),
      await client.object("ENCODING", LEASES_KEY),
    ];
    const ids = await fx.producer.enqueueMany(
      Array.from({ length: 40 }, (_, i) => ({
        functionName: "echo",
        params: { i },
        options: { queueName: QUEUE },
      })),
    );
    // Small sets stay listpacks (cheaper at that size).
    await fx.store.claim(QUEUE, WORKER, 8, 30_000);
    expect(await encodings()).toEqual(["listpack", "listpack"]);
    // Past 32 members both are converted, in place, keeping their members.
    await fx.store.claim(QUEUE, WORKER, 32, 30_000);
    expect(await encodings()).toEqual(["skiplist", "skiplist"]);
    const members = await client.zrange(activeKey(WORKER), 0, -1);
    expect(members.sort()).toEqual([...ids].sort());
    expect((await client.zrange(LEASES_KEY, 0, -1)).sort()).toEqual([...ids].sort());
    // Keyspace readers never see the placeholder: both sets hold job ids only.
    expect(await client.zcard(activeKey(WORKER))).toBe(40);
    expect(await client.zcard(LEASES_KEY)).toBe(40);
  });

  it("returns every field byte for byte through the JSON reply (quotes, escapes, non-ASCII)", async () => {
    const [id] = await enqueue(1);
    const awkward = {
      quotes: 'say "hi" \\ back/slash',
      control: "tab\tnew\nline\u0000nul\u001fend",
      unicode: "żółć 日本 🚀",
      empty: "",
      numberish: "1e400",
    };
    await fx.redis.client.hset(`rrq:job:${id}`, awkward);
    const { claimed } = await fx.store.claim(QUEUE, WORKER, 1, 30_000);
    expect(claimed).toHaveLength(1);
    expect(claimed[0]!.hash).toEqual(await fx.redis.client.hgetall(`rrq:job:${id}`));
    expect(claimed[0]!.hash).toMatchObject(awkward);
  });

  it("returns the hash as stored after the claim, for a job claimed before and at any run count", async () => {
    const ids = await enqueue(4);
    // Claimed before (run_1_* present), past the 100 recorded runs, and with counters a
    // foreign producer might have left (not a number, a fraction).
    await fx.redis.client.hset(`rrq:job:${ids[0]}`, {
      runs: "1",
      status: "PENDING",
      worker_id: "old-worker",
      run_1_worker: "old-worker",
    });
    await fx.redis.client.hset(`rrq:job:${ids[1]}`, { runs: "100" });
    await fx.redis.client.hset(`rrq:job:${ids[2]}`, { runs: "many" });
    await fx.redis.client.hset(`rrq:job:${ids[3]}`, { runs: "2.5" });
    const { claimed } = await fx.store.claim(QUEUE, WORKER, 4, 30_000);
    expect(claimed.map((j) => j.id)).toEqual(ids);
    for (const job of claimed)
      expect(job.hash).toEqual(await fx.redis.client.hgetall(`rrq:job:${job.id}`));
    expect(claimed.map((j) => j.hash.runs)).toEqual(["2", "101", "1", "3"]);
    expect(claimed[0]!.hash).toMatchObject({ run_1_worker: "old-worker", run_2_worker: WORKER });
    expect(claimed[1]!.hash.run_101_worker).toBeUndefined();
  });

  it("claims as usual for an ACL user denied OBJECT (the sets just stay listpacks)", async () => {
    const admin = fx.redis.client;
    await admin.call("ACL", "SETUSER", "no-object", "on", ">pw", "~*", "&*", "+@all", "-object");
    const restricted = new Redis(fx.redis.url, { username: "no-object", password: "pw" });
    try {
      const store = new JobStore(restricted);
      await enqueue(40);
      const { claimed } = await store.claim(QUEUE, WORKER, 40, 30_000);
      expect(claimed).toHaveLength(40);
      expect(await admin.zcard(activeKey(WORKER))).toBe(40);
      expect(await admin.object("ENCODING", activeKey(WORKER))).toBe("listpack");
    } finally {
      restricted.disconnect();
      await admin.call("ACL", "DELUSER", "no-object");
    }
  });
});
