/**
 * Bulk enqueue under memory pressure (issue 19, item 4): with Redis at `maxmemory` and
 * `noeviction`, `enqueueMany` writes every job of a script call or none, and a failure says
 * OOM and exactly which ids were written. Before the fix a pipelined batch of 100 wrote some
 * jobs and threw without saying which.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BulkEnqueueError, BULK_CHUNK_SIZE } from "../src/producer/bulk.js";
import { Producer, type BulkItem } from "../src/producer/producer.js";
import type { ProducerStore } from "../src/store/producer-store.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

let redis: TestRedis;
let producer: Producer;

beforeAll(async () => {
  redis = await startRedis(["--maxmemory-policy", "noeviction"]);
  producer = new Producer({ redisDsn: redis.url });
});
afterAll(async () => {
  await producer.close();
  await redis.stop();
});
beforeEach(async () => {
  await redis.client.config("SET", "maxmemory", "0");
  await redis.flush();
});

/** Sets maxmemory to `headroom` bytes above what Redis uses now (negative: already over). */
async function limitMemory(headroom: number): Promise<void> {
  const info = await redis.client.info("memory");
  const used = Number(/used_memory:(\d+)/.exec(info)![1]);
  await redis.client.config("SET", "maxmemory", String(Math.max(1, used + headroom)));
}

function items(count: number, prefix: string, bytes: number): BulkItem[] {
  return Array.from({ length: count }, (_, i) => ({
    functionName: "work",
    params: { secret: "x".repeat(bytes) },
    options: { jobId: `${prefix}-${i}` },
  }));
}

async function existing(ids: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const id of ids) if ((await redis.client.exists(`rrq:job:${id}`)) === 1) found.push(id);
  return found;
}

describe("enqueueMany under maxmemory (noeviction)", () => {
  it("a batch that meets OOM part-way writes all of its jobs or none", async () => {
    const batch = items(100, "mid", 4000);
    const ids = batch.map((b) => b.options!.jobId!);
    await limitMemory(100_000); // room for about 20 of the 100 jobs
    const outcome = await producer.enqueueMany(batch).catch((e: unknown) => e);
    await redis.client.config("SET", "maxmemory", "0");
    const written = await existing(ids);
    if (outcome instanceof Error) {
      expect(outcome).toBeInstanceOf(BulkEnqueueError);
      expect(outcome.message).toMatch(/out of memory/);
      expect(written).toEqual([]);
      expect((outcome as BulkEnqueueError).writtenIds).toEqual([]);
    } else {
      expect(outcome).toEqual(ids);
      expect(written).toEqual(ids);
    }
  });

  it("over maxmemory at the start: nothing written, the error says OOM", async () => {
    await redis.client.set("filler", "f".repeat(200_000));
    await limitMemory(-50_000);
    const error = (await producer
      .enqueueMany(items(100, "over", 100))
      .catch((e: unknown) => e)) as Error;
    await redis.client.config("SET", "maxmemory", "0");
    expect(error).toBeInstanceOf(BulkEnqueueError);
    const bulk = error as BulkEnqueueError;
    expect(bulk.code).toBe("redis_error");
    expect(bulk.message).toMatch(/^Redis is out of memory .*OOM.*none of the 100 jobs was written/);
    expect(bulk.writtenIds).toEqual([]);
    expect(await redis.client.dbsize()).toBe(1); // the filler only
  });

  it("a batch split into chunks reports exactly the chunks it wrote", async () => {
    const batch = items(BULK_CHUNK_SIZE * 2 + 10, "chunk", 1000);
    const ids = batch.map((b) => b.options!.jobId!);
    // Redis runs out of memory once the first chunk is written (set right after its call, so
    // the test does not depend on how much memory a request takes)
    const store = (producer as unknown as { store: ProducerStore }).store;
    const realBatch = store.enqueueBatch.bind(store);
    let calls = 0;
    store.enqueueBatch = async (plans) => {
      const replies = await realBatch(plans);
      if (++calls === 1) await limitMemory(-1);
      return replies;
    };
    const error = (await producer.enqueueMany(batch).catch((e: unknown) => e)) as BulkEnqueueError;
    await redis.client.config("SET", "maxmemory", "0");
    expect(error).toBeInstanceOf(BulkEnqueueError);
    expect(error.message).toMatch(/out of memory/);
    expect(error.writtenIds).toEqual(ids.slice(0, BULK_CHUNK_SIZE));
    expect(await existing(ids)).toEqual(ids.slice(0, BULK_CHUNK_SIZE));
    expect(await redis.client.zcard("rrq:queue:default")).toBe(BULK_CHUNK_SIZE);
    store.enqueueBatch = realBatch;
  });
});

describe("enqueueMany is all-or-nothing for duplicates too", () => {
  it("an existing job_id leaves the whole batch unwritten and is named", async () => {
    await producer.enqueue("work", {}, { jobId: "taken" });
    const error = (await producer
      .enqueueMany([
        { functionName: "a", options: { jobId: "fresh-1" } },
        { functionName: "b", options: { jobId: "taken" } },
        { functionName: "c", options: { jobId: "fresh-2" } },
      ])
      .catch((e: unknown) => e)) as BulkEnqueueError;
    expect(error.code).toBe("duplicate_job_id");
    expect(error.message).toContain("taken");
    expect(await existing(["fresh-1", "fresh-2"])).toEqual([]);
    expect(await redis.client.zcard("rrq:queue:default")).toBe(1);
  });

  it("the same call run twice (a re-send after a lost reply) is a no-op, not a duplicate", async () => {
    const store = (producer as unknown as { store: ProducerStore }).store;
    const realBatch = store.enqueueBatch.bind(store);
    let sent: Parameters<ProducerStore["enqueueBatch"]>[0] = [];
    store.enqueueBatch = async (plans) => {
      sent = plans;
      return realBatch(plans);
    };
    const ids = await producer.enqueueMany([
      { functionName: "a", params: { n: 1 }, options: { jobId: "again-1" } },
      { functionName: "b", options: { jobId: "again-2", uniqueKey: "again" } },
    ]);
    store.enqueueBatch = realBatch;
    // the exact script call again, as ioredis re-sends an unanswered command after a reconnect
    const replies = await store.enqueueBatch(sent);
    expect(replies).toEqual([
      { code: 0, jobId: "again-1" },
      { code: 0, jobId: "again-2" },
    ]);
    expect(ids).toEqual(["again-1", "again-2"]);
    expect(await redis.client.zcard("rrq:queue:default")).toBe(2);
    // another call with the same id but other content is still a duplicate
    const error = (await producer
      .enqueueMany([{ functionName: "a", params: { n: 2 }, options: { jobId: "again-1" } }])
      .catch((e: unknown) => e)) as BulkEnqueueError;
    expect(error.code).toBe("duplicate_job_id");
  });

  it("a job_id repeated in the batch is refused before any write", async () => {
    const error = (await producer
      .enqueueMany([
        { functionName: "a", options: { jobId: "twice" } },
        { functionName: "b", options: { jobId: "twice" } },
      ])
      .catch((e: unknown) => e)) as BulkEnqueueError;
    expect(error.code).toBe("duplicate_job_id");
    expect(await redis.client.dbsize()).toBe(0);
  });

  it("a unique_key shared inside the batch resolves to the first job", async () => {
    const ids = await producer.enqueueMany([
      { functionName: "a", options: { uniqueKey: "u" } },
      { functionName: "b", options: { uniqueKey: "u" } },
      { functionName: "c" },
    ]);
    expect(ids[1]).toBe(ids[0]);
    expect(await redis.client.zcard("rrq:queue:default")).toBe(2);
  });
});
