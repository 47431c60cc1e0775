/**
 * The data API over jobs a real worker ran: the bookkeeping the worker scripts keep (queue
 * counters, day history, DLQ summary, per-run timeline), and the operator actions on it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RrqApi } from "../src/index.js"; // the package entry point exports the data API
import { apiSettingsFrom } from "../src/api/settings.js";
import { Producer } from "../src/producer/producer.js";
import { JobStore } from "../src/store/job-store.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { GOLDEN_SETTINGS, RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

let redis: TestRedis;
let worker: RunningWorker;
let api: RrqApi;
let producer: Producer;
const ids: Record<string, string> = {};

const status = (id: string) => redis.client.hget(`rrq:job:${id}`, "status");

beforeAll(async () => {
  redis = await startRedis();
  const config = testConfig(redis.url, { ...GOLDEN_SETTINGS, default_result_ttl_seconds: 600 });
  api = new RrqApi(redis.client.duplicate(), apiSettingsFrom(config), true);
  producer = new Producer({ redisDsn: redis.url, maxRetries: 3 });
  worker = await new RunningWorker(config, ["alpha", "beta"]).start();
  for (const n of [1, 2, 3])
    ids[`echo${n}`] = await producer.enqueue("echo", { n }, { queueName: "alpha" });
  ids.fail = await producer.enqueue(
    "fail",
    { message: "boom" },
    { queueName: "alpha", maxRetries: 2 },
  );
  ids.flaky = await producer.enqueue("flaky", { fail_until_attempt: 1 }, { queueName: "beta" });
  ids.later1 = await producer.enqueue("echo", {}, { queueName: "beta", deferBySeconds: 3600 });
  ids.later2 = await producer.enqueue("echo", {}, { queueName: "beta", deferBySeconds: 7200 });
  await waitFor(
    async () => {
      const done = await Promise.all(
        ["echo1", "echo2", "echo3", "fail", "flaky"].map((k) => status(ids[k]!)),
      );
      return done.every((s) => s === "COMPLETED" || s === "FAILED");
    },
    20_000,
    "jobs to finish",
  );
  await worker.stop();
});
afterAll(async () => {
  await producer?.close();
  await api?.close();
  await redis?.stop();
});

describe("bookkeeping written by the worker scripts", () => {
  it("queues: registry, sizes and counters by status", async () => {
    expect(await api.queues.names()).toEqual([
      "rrq:queue:alpha",
      "rrq:queue:beta",
      "rrq:queue:default",
    ]);
    const listed = await api.queues.list();
    expect(listed.map((q) => [q.name, q.pending, q.ready])).toEqual([["rrq:queue:beta", 2, 0]]);
    expect((await api.queues.list({ includeEmpty: true })).map((q) => q.name)).toContain(
      "rrq:queue:alpha",
    );
    const { rows, source } = await api.queues.stats({ mode: "counters" });
    expect(source).toEqual({ kind: "counters" });
    expect(
      rows.map((r) => [r.name, r.pending, r.active, r.completed, r.failed, r.retried, r.dlq]),
    ).toEqual([
      ["rrq:queue:alpha", 0, 0, 3, 1, 1, 1],
      ["rrq:queue:beta", 2, 0, 1, 0, 1, 0],
    ]);
    // RRQ's way (job hashes by status) agrees on a database only rrqkit wrote
    const scanned = await api.queues.stats({ maxScan: 0 });
    expect(scanned.rows.map((r) => [r.name, r.completed, r.failed])).toEqual([
      ["rrq:queue:alpha", 3, 1],
      ["rrq:queue:beta", 1, 0],
    ]);
  });

  it("stats: totals and today's history", async () => {
    const totals = await api.stats.totals();
    expect(totals).toMatchObject({
      completed: 4,
      retried: 2,
      failed: 1,
      processed: 7,
      failedAttempts: 3,
    });
    const [today] = await api.stats.history(2);
    expect(today).toMatchObject({
      date: new Date().toISOString().slice(0, 10),
      completed: 4,
      retried: 2,
      failed: 1,
    });
    expect(await redis.client.ttl(`rrq:stats:day:${today!.date}`)).toBeGreaterThan(300 * 86400);
  });

  it("a job's runs make its trace: start, end and outcome of every attempt", async () => {
    const events = (await api.jobs.trace(ids.flaky!))!;
    // the retry row sits at the retry's due time, just before run 2 starts
    expect(events.map((e) => e.event).filter((e) => e !== "Retry 1")).toEqual([
      "Enqueued",
      "Started",
      "Failed",
      "Started",
      "Completed",
      "Finished",
    ]);
    expect(events.map((e) => e.event)).toContain("Retry 1");
    expect(events.find((e) => e.event === "Failed")?.details).toBe(
      "Run 1 failed, will retry: flaky failure on attempt 1",
    );
    expect(events.find((e) => e.event === "Completed")?.details).toBe("Run 2 succeeded");
    const hash = await redis.client.hgetall(`rrq:job:${ids.flaky}`);
    expect(hash).toMatchObject({ runs: "2", run_1_outcome: "retry", run_2_outcome: "completed" });
    expect(hash.run_1_worker).toBe(worker.worker.workerId);
    // a retry's end is stamped in Lua from Redis TIME: the job-hash encoding, in order
    const ended = hash.run_1_ended_at!;
    expect(ended).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/);
    expect(Date.parse(ended)).toBeGreaterThanOrEqual(Date.parse(hash.run_1_started_at!));
    expect(Date.parse(ended)).toBeLessThanOrEqual(Date.parse(hash.run_2_started_at!));
    const failed = (await api.jobs.trace(ids.fail!))!.filter((e) => e.event === "Failed");
    expect(failed.map((e) => e.details)).toEqual([
      "Run 1 failed, will retry: boom",
      "Run 2 failed, moved to DLQ: boom",
    ]);
  });

  it("dlq stats come from the summary and match the list", async () => {
    const s = await api.dlq.stats();
    expect(s).toMatchObject({
      entries: 1,
      jobs: 1,
      avgRetries: 2,
      byQueue: [["rrq:queue:alpha", 1]],
      byFunction: [["fail", 1]],
      byError: [["boom", 1]],
      rebuilt: false,
    });
    expect(s.newest).toBeDefined();
  });

  it("jobs.list: the index and a full scan agree", async () => {
    for (const filter of [
      {},
      { status: "completed" },
      { status: "failed" },
      { queue: "beta" },
      { functionName: "echo" },
    ]) {
      const scan = await api.jobs.list({ ...filter, mode: "scan", limit: 50 });
      const index = await api.jobs.list({ ...filter, mode: "index", limit: 50 });
      expect(index.jobs.map((j) => j.id).sort()).toEqual(scan.jobs.map((j) => j.id).sort());
    }
  });
});

describe("operator actions", () => {
  it("requeue from the DLQ resets the attempt counter and clears the 7-day expiry", async () => {
    const key = `rrq:job:${ids.fail}`;
    expect(await redis.client.hget(key, "current_retries")).toBe("2");
    expect(await redis.client.ttl(key)).toBeGreaterThan(600_000);
    const result = await api.dlq.requeue({ functionName: "fail" }, { targetQueue: "parking" });
    expect(result).toMatchObject({ done: 1, missing: 0, skipped: 0, interrupted: false });
    expect(await redis.client.hgetall(key)).toMatchObject({
      status: "PENDING",
      current_retries: "0",
      queue_name: "rrq:queue:parking",
    });
    expect(await redis.client.ttl(key)).toBe(-1);
    expect(await redis.client.ttl(`rrq:events:job:${ids.fail}`)).toBe(-1);
    expect(await redis.client.zscore("rrq:queue:parking", ids.fail!)).not.toBeNull();
    expect(await redis.client.llen("rrq:dlq:default")).toBe(0);
    expect(await api.dlq.stats()).toMatchObject({ entries: 0, jobs: 0, rebuilt: false });
    expect((await api.jobs.trace(ids.fail!))!.map((e) => e.event)).toContain("Requeued");
  });

  it("--keep-attempts keeps the counter (RRQ's behaviour)", async () => {
    const id = "kept";
    await redis.client.hset(`rrq:job:${id}`, {
      id,
      function_name: "fail",
      status: "FAILED",
      current_retries: "4",
      enqueue_time: "2026-01-01T00:00:00+00:00",
      queue_name: "rrq:queue:alpha",
      last_error: "old",
    });
    await redis.client.lpush("rrq:dlq:default", id);
    const result = await api.dlq.requeue(
      { jobId: id },
      { keepAttempts: true, targetQueue: "parking" },
    );
    expect(result.done).toBe(1);
    expect(await redis.client.hget(`rrq:job:${id}`, "current_retries")).toBe("4");
  });

  it("cancel, reschedule and delete a waiting job", async () => {
    const when = Date.now() + 10 * 3600_000;
    expect(await api.jobs.reschedule(ids.later1!, when)).toEqual({
      ok: true,
      queue: "rrq:queue:beta",
    });
    expect(Number(await redis.client.zscore("rrq:queue:beta", ids.later1!))).toBe(when);
    expect(await api.jobs.cancel(ids.later1!)).toEqual({ ok: true });
    expect(await status(ids.later1!)).toBe("CANCELLED");
    expect(await redis.client.zscore("rrq:queue:beta", ids.later1!)).toBeNull();
    expect(await redis.client.ttl(`rrq:job:${ids.later1}`)).toBeGreaterThan(0);
    expect(await api.jobs.cancel(ids.later1!)).toEqual({
      ok: false,
      reason: "not_waiting",
      status: "CANCELLED",
    });
    expect(await api.jobs.cancel("nope")).toEqual({ ok: false, reason: "not_found" });
    expect(await api.jobs.delete(ids.later2!)).toEqual({ ok: true, status: "PENDING" });
    expect(await redis.client.exists(`rrq:job:${ids.later2}`)).toBe(0);
    expect(await redis.client.zscore("rrq:queue:beta", ids.later2!)).toBeNull();
    expect(
      (await api.queues.stats({ mode: "counters" })).rows.find((r) => r.name === "rrq:queue:beta")
        ?.cancelled,
    ).toBe(1);
  });

  it("a released claim records its run's end (Redis TIME) and reason", async () => {
    const id = await producer.enqueue("echo", {}, { queueName: "gamma", deferBySeconds: 3600 });
    await redis.client.hset(`rrq:job:${id}`, {
      status: "ACTIVE",
      worker_id: "w-release",
      lease_fence: "7",
      runs: "1",
      run_1_started_at: "2026-01-01T00:00:00+00:00",
    });
    await redis.client.zrem("rrq:queue:gamma", id);
    await redis.client.set(`rrq:lock:job:${id}`, "w-release");
    const store = new JobStore(redis.client);
    const before = Date.now();
    expect(
      await store.release({ jobId: id, workerId: "w-release", fence: "7" }, "gamma", "no runner"),
    ).toBe("written");
    const hash = await redis.client.hgetall(`rrq:job:${id}`);
    expect(hash).toMatchObject({
      status: "PENDING",
      run_1_outcome: "released",
      run_1_error: "no runner",
    });
    expect(hash.run_1_ended_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/);
    expect(Math.abs(Date.parse(hash.run_1_ended_at!) - before)).toBeLessThan(60_000);
  });

  it("replay enqueues a copy with a new id", async () => {
    const copy = await api.jobs.replay(ids.echo1!, { queue: "parking" });
    expect(copy).not.toBe(ids.echo1);
    expect(await redis.client.hgetall(`rrq:job:${copy}`)).toMatchObject({
      function_name: "echo",
      job_params: '{"n":1}',
      status: "PENDING",
      queue_name: "rrq:queue:parking",
      current_retries: "0",
    });
  });
});
