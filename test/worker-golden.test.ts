/**
 * RRQ's cross-language golden outcomes (rrq-0.11-facts §9.1), reproduced by the real worker
 * with the real Node runner process, against a real redis-server.
 */
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Producer } from "../src/producer/producer.js";
import { ORPHAN_SCAN_KEY } from "../src/store/keys.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import {
  GOLDEN_SETTINGS,
  NODE_RUNNER,
  RunningWorker,
  testConfig,
  waitFor,
} from "./support/worker-harness.js";

let redis: TestRedis;
let producer: Producer;
let worker: RunningWorker;
const logDir = mkdtempSync(join(tmpdir(), "rrq-exec-"));

const TERMINAL = ["COMPLETED", "FAILED"];
async function settled(id: string) {
  return waitFor(
    async () => {
      const hash = await redis.client.hgetall(`rrq:job:${id}`);
      return TERMINAL.includes(hash.status ?? "") ? hash : undefined;
    },
    20_000,
    `job ${id} to finish`,
  );
}
const inDlq = async (id: string) =>
  (await redis.client.lrange("rrq:dlq:default", 0, -1)).includes(id);

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({
    redisDsn: redis.url,
    maxRetries: GOLDEN_SETTINGS.default_max_retries,
    jobTimeoutSeconds: 1,
    resultTtlSeconds: 10,
  });
  const config = testConfig(
    redis.url,
    { ...GOLDEN_SETTINGS, runner_routes: { alt: "alt" } },
    {
      node: {
        cmd: [process.execPath, NODE_RUNNER],
        pool_size: 1,
        max_in_flight: 8,
        env: { RRQ_TEST_EXEC_LOG: join(logDir, "node.log") },
      },
      alt: {
        cmd: [process.execPath, NODE_RUNNER],
        pool_size: 1,
        max_in_flight: 4,
        transport: "stdio",
        encoding: "msgpack",
        env: { RRQ_TEST_EXEC_LOG: join(logDir, "alt.log") },
      },
    },
  );
  worker = await new RunningWorker(config, ["default", "custom", "alt"]).start();
});
afterAll(async () => {
  await worker?.stop();
  await producer?.close();
  await redis?.stop();
});

describe("golden outcomes", () => {
  it("success → COMPLETED with 0 retries, result stored with the result TTL and an events entry", async () => {
    const id = await producer.enqueue("echo", { v: "alpha" });
    const hash = await settled(id);
    expect(hash).toMatchObject({
      status: "COMPLETED",
      current_retries: "0",
      result: '{"v":"alpha"}',
    });
    expect(hash.completion_time).toMatch(/\+00:00$/);
    const ttl = await redis.client.ttl(`rrq:job:${id}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10);
    const events = await redis.client.xrange(`rrq:events:job:${id}`, "-", "+");
    expect(events.map(([, fields]) => fields)).toEqual([
      ["event", "completed", "job_id", id, "status", "COMPLETED"],
    ]);
    expect(await redis.client.exists(`rrq:lock:job:${id}`)).toBe(0);
    expect(await redis.client.zscore(`rrq:active:jobs:${worker.worker.workerId}`, id)).toBeNull();
  });

  it("retry on the first attempt, then success → COMPLETED with 1 retry", async () => {
    const id = await producer.enqueue("flaky", { fail_until_attempt: 1, mode: "retry" });
    expect(await settled(id)).toMatchObject({
      status: "COMPLETED",
      current_retries: "1",
      result: '{"attempt":2}',
    });
  });

  it("always failing with max_retries 2 → FAILED, 2 retries, in the DLQ, last_error as raised", async () => {
    const id = await producer.enqueue("fail", { message: "boom: gamma" }, { maxRetries: 2 });
    const hash = await settled(id);
    expect(hash).toMatchObject({
      status: "FAILED",
      current_retries: "2",
      last_error: "boom: gamma",
    });
    expect(await inDlq(id)).toBe(true);
    expect(await redis.client.ttl(`rrq:job:${id}`)).toBeGreaterThan(600_000);
    const events = await redis.client.xrange(`rrq:events:job:${id}`, "-", "+");
    expect(events.map(([, f]) => f)).toEqual([
      ["event", "failed", "job_id", id, "status", "FAILED"],
    ]);
  });

  it("sleeping past the 1 s timeout → FAILED, 1 retry, DLQ, 'Job timed out after 1s.'", async () => {
    const id = await producer.enqueue("sleep", { ms: 3000 });
    expect(await settled(id)).toMatchObject({
      status: "FAILED",
      current_retries: "1",
      last_error: "Job timed out after 1s.",
    });
    expect(await inDlq(id)).toBe(true);
  });

  it("handler not found → FAILED, 1 retry, DLQ", async () => {
    const id = await producer.enqueue("missing_handler", {});
    expect(await settled(id)).toMatchObject({
      status: "FAILED",
      current_retries: "1",
      last_error: "No handler registered for function 'missing_handler'",
    });
    expect(await inDlq(id)).toBe(true);
  });

  it("max_retries 3 with a failure → FAILED with 3 retries (three attempts, backoff between)", async () => {
    const id = await producer.enqueue("throw", { message: "nope" });
    expect(await settled(id)).toMatchObject({
      status: "FAILED",
      current_retries: "3",
      last_error: "nope",
    });
    const attempts = worker
      .of("job:retry")
      .filter((e) => e.jobId === id)
      .map((e) => e.delaySeconds);
    expect(attempts).toEqual([0.01, 0.02]);
  });

  it("max_retries 1 with a failure → FAILED, 1 retry, DLQ", async () => {
    const id = await producer.enqueue("throw", {}, { maxRetries: 1 });
    expect(await settled(id)).toMatchObject({ status: "FAILED", current_retries: "1" });
    expect(await inDlq(id)).toBe(true);
  });

  it("defer_by keeps the job deferred until its time", async () => {
    const id = await producer.enqueue("echo", {}, { deferBySeconds: 30 });
    await new Promise((r) => setTimeout(r, 300));
    expect(await redis.client.hget(`rrq:job:${id}`, "status")).toBe("PENDING");
    expect(Number(await redis.client.zscore("rrq:queue:default", id))).toBeGreaterThan(
      Date.now() + 20_000,
    );
    await redis.client.zadd("rrq:queue:default", Date.now(), id);
    expect(await settled(id)).toMatchObject({ status: "COMPLETED" });
  });

  it("a custom queue is stored as rrq:queue:custom and served", async () => {
    const id = await producer.enqueue("echo", { q: 1 }, { queueName: "custom" });
    expect(await settled(id)).toMatchObject({
      status: "COMPLETED",
      queue_name: "rrq:queue:custom",
    });
  });

  it("routes by queue and by runner#handler prefix to the alternate runner", async () => {
    const byQueue = await producer.enqueue("echo", {}, { queueName: "alt" });
    const byPrefix = await producer.enqueue("alt#echo", {});
    const byDefault = await producer.enqueue("echo", {});
    for (const id of [byQueue, byPrefix, byDefault])
      expect(await settled(id)).toMatchObject({ status: "COMPLETED" });
    const ran = (file: string) =>
      existsSync(join(logDir, file)) ? readFileSync(join(logDir, file), "utf8") : "";
    expect(ran("alt.log")).toContain(byQueue);
    expect(ran("alt.log")).toContain(byPrefix);
    expect(ran("node.log")).toContain(byDefault);
    expect(ran("node.log")).not.toContain(byPrefix);
  });

  it("a unique key makes the second enqueue return the first job (current RRQ producer)", async () => {
    const a = await producer.enqueue("echo", { n: 1 }, { uniqueKey: "golden-u" });
    const b = await producer.enqueue("echo", { n: 2 }, { uniqueKey: "golden-u" });
    expect(b).toBe(a);
    expect(await settled(a)).toMatchObject({ status: "COMPLETED", result: '{"n":1}' });
  });
});

describe("jobs written the way RRQ writes them", () => {
  it("runs a hash with RRQ's 9-digit timestamps, sorted JSON and trace context", async () => {
    const id = "rrq-written-1";
    const now = new Date();
    const iso = now.toISOString().replace("Z", "");
    await redis.client.hset(`rrq:job:${id}`, {
      id,
      function_name: "inspect",
      job_params: '{"a":{"b":1},"z":"ü"}',
      enqueue_time: `${iso}123456+00:00`,
      status: "PENDING",
      current_retries: "0",
      next_scheduled_run_time: `${iso}123456+00:00`,
      max_retries: "5",
      job_timeout_seconds: "300",
      result_ttl_seconds: "86400",
      queue_name: "rrq:queue:default",
      result: "null",
      trace_context: '{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}',
      correlation_context: '{"tenant":"acme"}',
    });
    await redis.client.zadd("rrq:queue:default", now.getTime(), id);
    const hash = await settled(id);
    expect(hash.status).toBe("COMPLETED");
    const seen = JSON.parse(hash.result!) as { params: unknown; context: Record<string, unknown> };
    expect(seen.params).toEqual({ a: { b: 1 }, z: "ü" });
    expect(seen.context).toMatchObject({
      attempt: 1,
      enqueue_time: `${iso}123456Z`,
      queue_name: "rrq:queue:default",
      trace_context: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
      correlation_context: { tenant: "acme" },
      worker_id: worker.worker.workerId,
    });
    expect(seen.context.deadline).toMatch(/Z$/);
  });

  it("quarantines a malformed hash to the DLQ with the reason", async () => {
    await redis.client.hset("rrq:job:bad-1", {
      id: "bad-1",
      function_name: "echo",
      status: "PENDING",
      job_params: "{}",
    });
    await redis.client.zadd("rrq:queue:default", Date.now(), "bad-1");
    const hash = await settled("bad-1");
    expect(hash.status).toBe("FAILED");
    expect(hash.last_error).toMatch(
      /^Failed to parse claimed job definition\. Moved to DLQ\. \(enqueue_time/,
    );
    expect(await inDlq("bad-1")).toBe(true);
  });

  it("removes a stale queue entry whose hash is gone without creating a hash", async () => {
    await redis.client.zadd("rrq:queue:default", Date.now(), "ghost");
    await waitFor(
      async () => (await redis.client.zscore("rrq:queue:default", "ghost")) === null,
      5000,
      "stale entry removal",
    );
    expect(await redis.client.exists("rrq:job:ghost")).toBe(0);
  });
});

describe("failure handling", () => {
  it("a runner killed with SIGKILL mid-job loses no job: it is retried and the pool respawns", async () => {
    const id = await producer.enqueue(
      "sleep",
      { ms: 600 },
      { jobTimeoutSeconds: 10, maxRetries: 3 },
    );
    const dispatched = await waitFor(
      () => worker.of("job:dispatched").find((e) => e.jobId === id),
      10_000,
      "dispatch",
    );
    const ready = worker
      .of("runner:ready")
      .filter((e) => e.runner === dispatched.runner)
      .at(-1)!;
    process.kill(ready.pid!, "SIGKILL");
    const hash = await settled(id);
    expect(hash).toMatchObject({ status: "COMPLETED", current_retries: "1" });
    expect(hash.last_error).toMatch(/^Runner transport error: /);
    expect(worker.of("runner:respawn").some((e) => e.runner === dispatched.runner)).toBe(true);
  });

  it("recovers the jobs of a dead worker (no health key, no lock)", async () => {
    const dead = "rrq_worker_1_dead00";
    const id = await producer.enqueue("echo", { orphan: true }, { deferBySeconds: 3600 });
    await redis.client.zrem("rrq:queue:default", id);
    await redis.client.hset(`rrq:job:${id}`, {
      status: "ACTIVE",
      worker_id: dead,
      start_time: "2026-01-01T00:00:00+00:00",
      next_scheduled_run_time: new Date().toISOString(),
    });
    await redis.client.zadd(`rrq:active:jobs:${dead}`, 1, id);
    // The heartbeat runs on its interval; run one tick now instead of waiting a minute, with
    // the fleet's scan turn free (another worker of this file may have taken it).
    await redis.client.del(ORPHAN_SCAN_KEY);
    await (worker.worker as unknown as { heartbeat: { tick(): Promise<void> } }).heartbeat.tick();
    expect(await settled(id)).toMatchObject({
      status: "COMPLETED",
      last_error: "Recovered after lock expiry or worker crash.",
      current_retries: "0",
    });
    expect(await redis.client.exists(`rrq:active:jobs:${dead}`)).toBe(0);
  });

  it("writes a health record with RRQ's payload", async () => {
    const raw = await redis.client.get(`rrq:health:worker:${worker.worker.workerId}`);
    const health = JSON.parse(raw!) as Record<string, unknown>;
    expect(health).toMatchObject({
      worker_id: worker.worker.workerId,
      concurrency_limit: 12,
      queues: ["rrq:queue:alt", "rrq:queue:custom", "rrq:queue:default"],
    });
    // RRQ's six keys, plus rrqkit's additive implementation, version, clock offset, link state,
    // quiet switch and runner pools
    expect(Object.keys(health).sort()).toEqual([
      "abandoned_attempts",
      "active_jobs",
      "clock_offset_ms",
      "concurrency_limit",
      "implementation",
      "queues",
      "quiet",
      "redis_link",
      "runners",
      "status",
      "timestamp",
      "version",
      "worker_id",
    ]);
    expect(health).toMatchObject({
      implementation: "rrqkit",
      version: expect.stringMatching(/^\d+\.\d+/),
    });
    expect(await redis.client.ttl(`rrq:health:worker:${worker.worker.workerId}`)).toBeGreaterThan(
      60,
    );
  });
});

describe("health record", () => {
  it("says running from the first heartbeat, once the runners are up", async () => {
    const fresh = await new RunningWorker(testConfig(redis.url)).start();
    try {
      const raw = await waitFor(
        () => redis.client.get(`rrq:health:worker:${fresh.worker.workerId}`),
        10_000,
        "first health record",
      );
      expect((JSON.parse(raw) as { status: string }).status).toBe("running");
    } finally {
      await fresh.stop();
    }
  });
});
