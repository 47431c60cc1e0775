/**
 * complete-success-batch-2.lua (the orchestrator's batched success write) against
 * complete-success-5.lua (the one-job script): for every outcome (written, not ours, gone) the
 * two leave Redis in the same state, bookkeeping included, and each entry gets its own code.
 */
import { describe, expect, it } from "vitest";
import { recentIds } from "../src/api/jobs.js";
import type { AttemptRef } from "../src/store/job-store.js";
import { activeKey, LEASES_KEY } from "../src/store/keys.js";
import { useStoreFixture } from "./support/store-fixture.js";

const WORKER = "rrq_worker_1_abcdef";
const QUEUE = "rrq:queue:batch";
const fx = useStoreFixture();

/** Enqueues `n` jobs and claims them all; returns one attempt per job. */
async function claimed(n: number): Promise<AttemptRef[]> {
  for (let i = 0; i < n; i++) await fx.producer.enqueue("echo", { i }, { queueName: QUEUE });
  const { claimed: jobs } = await fx.store.claim(QUEUE, WORKER, n, 30_000);
  expect(jobs).toHaveLength(n);
  return jobs.map((j) => ({ jobId: j.id, workerId: WORKER, fence: j.hash.lease_fence! }));
}

/** Everything one completion can touch, with ids, times and stream ids blanked. */
async function snapshot(jobId: string) {
  const c = fx.redis.client;
  const hash = await c.hgetall(`rrq:job:${jobId}`);
  const blank = (v: string) => (v === jobId ? "<id>" : /^\d{4}-\d\d-\d\dT/.test(v) ? "<ts>" : v);
  const events = await c.xrange(`rrq:events:job:${jobId}`, "-", "+");
  return {
    hash: Object.fromEntries(
      Object.entries(hash)
        .filter(([k]) => !["id", "job_params", "lease_fence"].includes(k))
        .map(([k, v]) => [k, blank(v)]),
    ),
    hashTtl: Math.round((await c.ttl(`rrq:job:${jobId}`)) / 10),
    events: events.map(([, fields]) => fields.map(blank)),
    eventsTtl: Math.round((await c.ttl(`rrq:events:job:${jobId}`)) / 10),
    lock: await c.exists(`rrq:lock:job:${jobId}`),
    active: await c.zscore(activeKey(WORKER), jobId),
    lease: await c.zscore(LEASES_KEY, jobId),
  };
}

/** The rrq:recent entries' fields, oldest first. */
async function recent(): Promise<string[][]> {
  const entries = await fx.redis.client.xrange("rrq:recent", "-", "+");
  return entries.map(([, fields]) => fields);
}

describe("complete-success-batch-2.lua", () => {
  it("writes exactly what complete-success-5.lua writes, one code per entry", async () => {
    const [single, ...batch] = await claimed(4);
    expect(await fx.store.completeSuccessOne(single!, '{"r":1}', 60)).toBe("written");
    const codes = await Promise.all(batch.map((a) => fx.store.completeSuccess(a, '{"r":1}', 60)));
    expect(codes).toEqual(["written", "written", "written"]);
    const reference = await snapshot(single!.jobId);
    expect(reference.hash).toMatchObject({ status: "COMPLETED", run_1_outcome: "completed" });
    for (const a of batch) expect(await snapshot(a.jobId)).toEqual(reference);
    expect(await fx.redis.client.hgetall("rrq:stats:queue:batch")).toMatchObject({
      completed: "4",
    });
    const [day] = await fx.redis.client.keys("rrq:stats:day:*");
    expect(await fx.redis.client.hget(day!, "completed")).toBe("4");
    expect(await fx.redis.client.ttl(day!)).toBeGreaterThan(34_000_000);
    // rrq:recent: the one-job script writes one entry per job; the batch one entry for all
    // its successes. `rrq job list` reads both.
    const feed = await recent();
    expect(feed).toEqual([
      ["j", single!.jobId, "q", QUEUE, "f", "echo", "s", "COMPLETED"],
      ["js", JSON.stringify(batch.map((a) => a.jobId)), "s", "COMPLETED"],
    ]);
    expect(feed.map(recentIds)).toEqual([[single!.jobId], batch.map((a) => a.jobId)]);
  });

  it("keeps fencing per entry: a stale fence or a gone hash does not stop the others", async () => {
    const [good, stale, gone] = await claimed(3);
    await fx.redis.client.del(`rrq:job:${gone!.jobId}`);
    const codes = await Promise.all([
      fx.store.completeSuccess(good!, "null", 0),
      fx.store.completeSuccess({ ...stale!, fence: "999999" }, "null", 0),
      fx.store.completeSuccess(gone!, "null", 0),
    ]);
    expect(codes).toEqual(["written", "not_owner", "gone"]);
    expect((await snapshot(good!.jobId)).hash.status).toBe("COMPLETED");
    const staleState = await snapshot(stale!.jobId);
    expect(staleState.hash.status).toBe("ACTIVE");
    expect(staleState.lock).toBe(1);
    expect(staleState.active).not.toBeNull();
    const goneState = await snapshot(gone!.jobId);
    expect([goneState.lock, goneState.active, goneState.lease]).toEqual([0, null, null]);
    expect(await fx.redis.client.hget("rrq:stats:queue:batch", "completed")).toBe("1");
  });

  it("releases the unique lock and applies the hash's result TTL or the default", async () => {
    const [unique, persisted, defaulted] = await claimed(3);
    await fx.redis.client.hset(`rrq:job:${unique!.jobId}`, "job_unique_key", "u-1");
    await fx.redis.client.set("rrq:lock:unique:u-1", unique!.jobId);
    await fx.redis.client.hset(`rrq:job:${persisted!.jobId}`, "result_ttl_seconds", "0");
    await fx.redis.client.hdel(`rrq:job:${defaulted!.jobId}`, "result_ttl_seconds");
    const codes = await Promise.all(
      [unique, persisted, defaulted].map((a) => fx.store.completeSuccess(a!, "null", 120)),
    );
    expect(codes).toEqual(["written", "written", "written"]);
    expect(await fx.redis.client.exists("rrq:lock:unique:u-1")).toBe(0);
    expect(await fx.redis.client.ttl(`rrq:job:${persisted!.jobId}`)).toBe(-1);
    expect(await fx.redis.client.ttl(`rrq:events:job:${persisted!.jobId}`)).toBe(-1);
    expect(await fx.redis.client.ttl(`rrq:job:${defaulted!.jobId}`)).toBeGreaterThan(100);
    expect(await fx.redis.client.ttl(`rrq:job:${defaulted!.jobId}`)).toBeLessThanOrEqual(120);
  });

  it("sends a job key that is not a hash alone, so the rest of the batch is written", async () => {
    const [good, broken] = await claimed(2);
    await fx.redis.client.del(`rrq:job:${broken!.jobId}`);
    await fx.redis.client.set(`rrq:job:${broken!.jobId}`, "not a hash");
    const [ok, failed] = await Promise.allSettled([
      fx.store.completeSuccess(good!, "null", 60),
      fx.store.completeSuccess(broken!, "null", 60),
    ]);
    expect(ok).toEqual({ status: "fulfilled", value: "written" });
    expect(failed.status).toBe("rejected"); // as complete-success-5.lua does (WRONGTYPE)
    expect(await fx.redis.client.get(`rrq:job:${broken!.jobId}`)).toBe("not a hash");
  });
});

describe("rrq:recent entries", () => {
  it("recentIds reads one-job and batch entries and skips malformed ones", () => {
    expect(recentIds(["j", "a", "q", "rrq:queue:x", "f", "echo", "s", "COMPLETED"])).toEqual(["a"]);
    expect(recentIds(["js", '["a","b"]', "s", "COMPLETED"])).toEqual(["a", "b"]);
    expect(recentIds(["q", "j", "s", "COMPLETED"])).toEqual([]); // "j" as a value is no field
    expect(recentIds(["js", "not json"])).toEqual([]);
    expect(recentIds(["js", '{"a":1}'])).toEqual([]);
    expect(recentIds(["js", '["a",1,""]'])).toEqual(["a"]);
  });
});
