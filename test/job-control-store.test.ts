/**
 * The job-control store writes at the script level: snooze-job-5.lua (fenced, attempt not
 * counted, safe to run twice), expiry through move-to-dlq-6.lua's "expire" mode (FAILED, no
 * DLQ, safe to run twice) and enqueue-fields-1.lua (writes only onto the job its enqueue wrote).
 */
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import type { AttemptRef } from "../src/store/job-store.js";
import { useStoreFixture } from "./support/store-fixture.js";

const WORKER = "rrq_worker_1_jobcontrol";
const QUEUE = "rrq:queue:jc";
const fx = useStoreFixture();

/** Every key's content: what a write changes. */
async function snapshot(client: Redis): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of (await client.keys("*")).sort()) {
    const type = await client.type(key);
    if (type === "hash") out[key] = await client.hgetall(key);
    else if (type === "zset") out[key] = await client.zrange(key, 0, -1, "WITHSCORES");
    else if (type === "list") out[key] = await client.lrange(key, 0, -1);
    else if (type === "stream") out[key] = await client.xlen(key);
    else if (type === "set") out[key] = (await client.smembers(key)).sort();
    else out[key] = await client.get(key);
  }
  return out;
}

async function claimedAttempt(): Promise<AttemptRef> {
  const id = await fx.producer.enqueue("echo", { x: 1 }, { queueName: QUEUE });
  const { claimed } = await fx.store.claim(QUEUE, WORKER, 1, 30_000);
  expect(claimed.map((j) => j.id)).toEqual([id]);
  return { jobId: id, workerId: WORKER, fence: claimed[0]!.hash.lease_fence! };
}

describe("snooze-job-5.lua", () => {
  it("reschedules PENDING without counting an attempt; counts snoozes; run outcome snoozed", async () => {
    const attempt = await claimedAttempt();
    const score = Date.now() + 30_000;
    expect(await fx.store.snooze(attempt, QUEUE, score)).toBe("written");
    const hash = await fx.redis.client.hgetall(`rrq:job:${attempt.jobId}`);
    expect(hash).toMatchObject({
      status: "PENDING",
      current_retries: "0",
      snoozes: "1",
      run_1_outcome: "snoozed",
    });
    expect(Number(await fx.redis.client.zscore(QUEUE, attempt.jobId))).toBe(score);
    expect(await fx.redis.client.exists(`rrq:lock:job:${attempt.jobId}`)).toBe(0);
    expect(await fx.redis.client.zscore("rrq:leases", attempt.jobId)).toBeNull();
    // a second claim and snooze counts on
    await fx.redis.client.zadd(QUEUE, Date.now() - 1, attempt.jobId);
    const { claimed } = await fx.store.claim(QUEUE, WORKER, 1, 30_000);
    const again = { ...attempt, fence: claimed[0]!.hash.lease_fence! };
    expect(await fx.store.snooze(again, QUEUE, score)).toBe("written");
    expect(await fx.redis.client.hget(`rrq:job:${attempt.jobId}`, "snoozes")).toBe("2");
  });

  it("run twice: the second run reports written and changes nothing", async () => {
    const attempt = await claimedAttempt();
    expect(await fx.store.snooze(attempt, QUEUE, Date.now() + 1000)).toBe("written");
    const after = await snapshot(fx.redis.client);
    expect(await fx.store.snooze(attempt, QUEUE, Date.now() + 1000)).toBe("written");
    expect(await snapshot(fx.redis.client)).toEqual(after);
  });

  it("is fenced: another attempt's fence writes nothing", async () => {
    const attempt = await claimedAttempt();
    const before = await snapshot(fx.redis.client);
    expect(await fx.store.snooze({ ...attempt, fence: "999999" }, QUEUE, Date.now())).toBe(
      "not_owner",
    );
    expect(await snapshot(fx.redis.client)).toEqual(before);
  });
});

describe("expire (move-to-dlq-6.lua, expire mode)", () => {
  it("FAILED with type expired, no DLQ entry, no attempt, counted as expired; run twice is a no-op", async () => {
    const attempt = await claimedAttempt();
    expect(await fx.store.expire(attempt, "Job expired before it started (expires_at x)")).toBe(
      "written",
    );
    const hash = await fx.redis.client.hgetall(`rrq:job:${attempt.jobId}`);
    expect(hash).toMatchObject({
      status: "FAILED",
      current_retries: "0",
      last_error: "Job expired before it started (expires_at x)",
      last_error_type: "expired",
    });
    expect(await fx.redis.client.keys("rrq:dlq:*")).toEqual([]);
    expect(await fx.redis.client.hget("rrq:stats:queue:jc", "expired")).toBe("1");
    expect(await fx.redis.client.hget("rrq:stats:queue:jc", "failed")).toBeNull();
    const after = await snapshot(fx.redis.client);
    expect(await fx.store.expire(attempt, "Job expired before it started (expires_at x)")).toBe(
      "written",
    );
    expect(await snapshot(fx.redis.client)).toEqual(after);
  });
});

describe("enqueue-fields-1.lua", () => {
  it("an idempotent hit or a duplicate id gets no fields", async () => {
    const first = await fx.producer.enqueue("echo", { a: 1 }, { uniqueKey: "u1" });
    const hit = await fx.producer.enqueue(
      "echo",
      { a: 1 },
      { uniqueKey: "u1", retry: { max_attempts: 9 }, expiresIn: 60 },
    );
    expect(hit).toBe(first);
    const hash = await fx.redis.client.hgetall(`rrq:job:${first}`);
    expect(hash.retry_policy).toBeUndefined();
    expect(hash.expires_at).toBeUndefined();
    await expect(
      fx.producer.enqueue("other", {}, { jobId: first, retry: { max_attempts: 2 } }),
    ).rejects.toMatchObject({ code: "duplicate_job_id" });
    expect(await fx.redis.client.hget(`rrq:job:${first}`, "retry_policy")).toBeNull();
  });

  it("writes onto the job a debounced enqueue created or updated", async () => {
    const options = { debounceKey: "d1", debounceSeconds: 5 };
    const id = await fx.producer.enqueueWithDebounce("echo", { v: 1 }, options);
    const same = await fx.producer.enqueueWithDebounce(
      "echo",
      { v: 2 },
      { ...options, retry: { max_attempts: 2 } },
    );
    expect(same).toBe(id);
    expect(await fx.redis.client.hget(`rrq:job:${id}`, "retry_policy")).toBe('{"max_attempts":2}');
  });

  it("bulk enqueue writes each job's own fields in the same transaction", async () => {
    const ids = await fx.producer.enqueueMany([
      { functionName: "echo", options: { retry: { max_attempts: 2 } } },
      { functionName: "echo" },
      { functionName: "echo", options: { expiresIn: 30 } },
    ]);
    const fields = await Promise.all(
      ids.map((id) => fx.redis.client.hmget(`rrq:job:${id}`, "retry_policy", "expires_at")),
    );
    expect(fields[0]![0]).toBe('{"max_attempts":2}');
    expect(fields[1]).toEqual([null, null]);
    expect(fields[2]![0]).toBeNull();
    expect(fields[2]![1]).toMatch(/\+00:00$/);
  });
});
