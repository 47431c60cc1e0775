/**
 * The TypeScript producer against a real redis-server: what it writes (protocol/PRODUCER.md),
 * its guards, and that bad input is refused with nothing written.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ProducerError } from "../src/errors.js";
import { Producer } from "../src/producer/producer.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

let redis: TestRedis;
let producer: Producer;

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({
    redisDsn: redis.url,
    correlationMappings: {
      tenant: "params.tenant.id",
      order: "order_id",
      flag: "params.flag",
      num: "params.n",
    },
  });
});
afterAll(async () => {
  await producer.close();
  await redis.stop();
});
beforeEach(async () => redis.flush());

/** Timestamps as chrono writes them: +00:00 offset, 0/3/6/9 fraction digits. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00$/;

describe("the job hash", () => {
  it("has RRQ's field set and encodings", async () => {
    const id = await producer.enqueue(
      "runner#do_work",
      {
        z: 1,
        a: { y: 2, b: [3, { d: 1, c: 2 }] },
        tenant: { id: "t-1" },
        order_id: 99,
        flag: true,
        n: 1.5,
        s: "naïve ✓\n\u0001/",
      },
      { traceContext: { traceparent: "00-aaa-bbb-01", order: "from-trace", b: "2" } },
    );
    const hash = await redis.client.hgetall(`rrq:job:${id}`);
    expect(Object.keys(hash).sort()).toEqual(
      [
        "id",
        "function_name",
        "job_params",
        "enqueue_time",
        "status",
        "current_retries",
        "next_scheduled_run_time",
        "max_retries",
        "job_timeout_seconds",
        "result_ttl_seconds",
        "queue_name",
        "result",
        "trace_context",
        "correlation_context",
      ].sort(),
    );
    // These bytes are what RRQ 0.11.1's own producer wrote for the same call.
    expect(hash.job_params).toBe(
      '{"a":{"b":[3,{"c":2,"d":1}],"y":2},"flag":true,"n":1.5,"order_id":99,"s":"naïve ✓\\n\\u0001/","tenant":{"id":"t-1"},"z":1}',
    );
    expect(JSON.parse(hash.correlation_context!)).toEqual({
      tenant: "t-1",
      order: "from-trace",
      flag: "true",
      num: "1.5",
    });
    expect(hash.trace_context).toBe('{"b":"2","order":"from-trace","traceparent":"00-aaa-bbb-01"}');
    expect(hash).toMatchObject({
      id,
      function_name: "runner#do_work",
      status: "PENDING",
      current_retries: "0",
      max_retries: "5",
      job_timeout_seconds: "300",
      result_ttl_seconds: "86400",
      queue_name: "rrq:queue:default",
      result: "null",
    });
    expect(hash.enqueue_time).toMatch(TIMESTAMP);
    expect(hash.next_scheduled_run_time).toBe(hash.enqueue_time);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const score = await redis.client.zscore("rrq:queue:default", id);
    expect(Number(score)).toBe(Date.parse(hash.enqueue_time!));
  });

  it("omits trace_context and correlation_context when empty", async () => {
    const plain = new Producer({ redisDsn: redis.url });
    const id = await plain.enqueue("f", {});
    const hash = await redis.client.hgetall(`rrq:job:${id}`);
    expect(hash.trace_context).toBeUndefined();
    expect(hash.correlation_context).toBeUndefined();
    expect(hash.job_params).toBe("{}");
    await plain.close();
  });

  it("honours queue_name, job_id, max_retries, job_timeout_seconds and result_ttl_seconds", async () => {
    await producer.enqueue(
      "f",
      {},
      {
        queueName: "custom",
        jobId: "my-id",
        maxRetries: 2,
        jobTimeoutSeconds: 7,
        resultTtlSeconds: -5,
      },
    );
    expect(await redis.client.hgetall("rrq:job:my-id")).toMatchObject({
      queue_name: "rrq:queue:custom",
      max_retries: "2",
      job_timeout_seconds: "7",
      result_ttl_seconds: "-5",
    });
    expect(await redis.client.zscore("rrq:queue:custom", "my-id")).not.toBeNull();
    await producer.enqueue("f", {}, { queueName: "rrq:queue:already" });
    expect(await redis.client.zcard("rrq:queue:already")).toBe(1);
  });

  it("keeps parsed timestamps to the microsecond (as RRQ) and converts offsets to UTC", async () => {
    const a = await producer.enqueue("f", {}, { deferUntil: "2030-01-01T00:00:00.123456789Z" });
    expect(await redis.client.hget(`rrq:job:${a}`, "next_scheduled_run_time")).toBe(
      "2030-01-01T00:00:00.123456+00:00",
    );
    expect(await redis.client.zscore("rrq:queue:default", a)).toBe("1893456000123");
    const b = await producer.enqueue(
      "f",
      {},
      { deferUntil: "2030-01-01T00:00:00.5+02:00", enqueueTime: "2029-12-31T20:00:00" },
    );
    const hash = await redis.client.hgetall(`rrq:job:${b}`);
    expect(hash.next_scheduled_run_time).toBe("2029-12-31T22:00:00.500+00:00");
    expect(hash.enqueue_time).toBe("2029-12-31T20:00:00+00:00");
  });

  it("schedules defer_by_seconds and defer_until", async () => {
    const a = await producer.enqueue("f", {}, { deferBySeconds: 1.5 });
    const ha = await redis.client.hgetall(`rrq:job:${a}`);
    expect(Date.parse(ha.next_scheduled_run_time!) - Date.parse(ha.enqueue_time!)).toBe(1500);
    expect(Number(await redis.client.zscore("rrq:queue:default", a))).toBe(
      Date.parse(ha.next_scheduled_run_time!),
    );
    const b = await producer.enqueue("f", {}, { deferUntil: "2030-01-01T00:00:00Z" });
    expect(await redis.client.hget(`rrq:job:${b}`, "next_scheduled_run_time")).toBe(
      "2030-01-01T00:00:00+00:00",
    );
    expect(Number(await redis.client.zscore("rrq:queue:default", b))).toBe(
      Date.parse("2030-01-01T00:00:00Z"),
    );
  });
});

describe("guards", () => {
  it("makes unique_key idempotent and stretches its TTL over a deferral", async () => {
    const first = await producer.enqueue("f", {}, { uniqueKey: "u1" });
    const second = await producer.enqueue("f", { other: 1 }, { uniqueKey: "u1" });
    expect(second).toBe(first);
    expect(await redis.client.get("rrq:idempotency:u1")).toBe(first);
    expect(await redis.client.ttl("rrq:idempotency:u1")).toBe(21600);
    await producer.enqueue("f", {}, { uniqueKey: "u2", deferBySeconds: 30000 });
    expect(await redis.client.ttl("rrq:idempotency:u2")).toBeGreaterThanOrEqual(29999);
    await producer.enqueue("f", {}, { uniqueKey: "u3", uniqueTtlSeconds: 60 });
    expect(await redis.client.ttl("rrq:idempotency:u3")).toBe(60);
  });

  it("replaces a stale idempotency key whose job is gone", async () => {
    await redis.client.set("rrq:idempotency:stale", "gone-job");
    const id = await producer.enqueue("f", {}, { uniqueKey: "stale" });
    expect(id).not.toBe("gone-job");
    expect(await redis.client.get("rrq:idempotency:stale")).toBe(id);
  });

  it("lets the first rate-limited call through and drops the rest of the window", async () => {
    const first = await producer.enqueueWithRateLimit(
      "f",
      {},
      { rateLimitKey: "rk", rateLimitSeconds: 2.5 },
    );
    expect(first).toEqual(expect.any(String));
    expect(
      await producer.enqueueWithRateLimit("f", {}, { rateLimitKey: "rk", rateLimitSeconds: 2.5 }),
    ).toBeNull();
    expect(await redis.client.ttl("rrq:rate_limit:rk")).toBe(3);
    await expect(
      producer.enqueue("f", {}, { rateLimitKey: "rk", rateLimitSeconds: 2.5 }),
    ).rejects.toMatchObject({ code: "rate_limited" });
    expect(await redis.client.zcard("rrq:queue:default")).toBe(1);
  });

  it("debounces: updates the pending job, moves it between queues, and clears stale correlation", async () => {
    const a = await producer.enqueueWithDebounce(
      "f",
      { tenant: { id: "x" } },
      { debounceKey: "dk", debounceSeconds: 3 },
    );
    const b = await producer.enqueueWithDebounce(
      "g",
      { v: 2 },
      { debounceKey: "dk", debounceSeconds: 3, queueName: "other" },
    );
    expect(b).toBe(a);
    const hash = await redis.client.hgetall(`rrq:job:${a}`);
    expect(hash).toMatchObject({
      function_name: "g",
      job_params: '{"v":2}',
      queue_name: "rrq:queue:other",
    });
    expect(hash.correlation_context).toBeUndefined();
    expect(
      Date.parse(hash.next_scheduled_run_time!) - Date.parse(hash.enqueue_time!),
    ).toBeGreaterThanOrEqual(3000);
    expect(await redis.client.zcard("rrq:queue:default")).toBe(0);
    expect(await redis.client.zcard("rrq:queue:other")).toBe(1);
    expect(await redis.client.ttl("rrq:debounce:dk")).toBe(3);
    await redis.client.hset(`rrq:job:${a}`, "status", "ACTIVE");
    const c = await producer.enqueueWithDebounce(
      "g",
      {},
      { debounceKey: "dk", debounceSeconds: 3 },
    );
    expect(c).not.toBe(a);
  });

  it("refuses a job_id that exists", async () => {
    await producer.enqueue("f", {}, { jobId: "dup" });
    await expect(producer.enqueue("f", {}, { jobId: "dup" })).rejects.toMatchObject({
      code: "duplicate_job_id",
      message: "job_id already exists",
    });
    await expect(
      producer.enqueueWithRateLimit(
        "f",
        {},
        { jobId: "dup", rateLimitKey: "r2", rateLimitSeconds: 5 },
      ),
    ).rejects.toMatchObject({ code: "duplicate_job_id" });
    expect(await redis.client.exists("rrq:rate_limit:r2")).toBe(0);
  });
});

describe("bad input is refused and nothing is written", () => {
  const cases: Array<[string, () => Promise<unknown>, string]> = [
    ["blank function name", () => producer.enqueue("  ", {}), "invalid_argument"],
    [
      "params not an object",
      () => producer.enqueue("f", [1, 2] as unknown as Record<string, unknown>),
      "invalid_params",
    ],
    ["NaN in params", () => producer.enqueue("f", { a: { b: [NaN] } }), "invalid_params"],
    ["Infinity in params", () => producer.enqueue("f", { x: Infinity }), "invalid_params"],
    ["BigInt in params", () => producer.enqueue("f", { x: 1n }), "invalid_params"],
    ["a Map in params", () => producer.enqueue("f", { x: new Map() }), "invalid_params"],
    [
      "params over the frame cap",
      () => producer.enqueue("f", { x: "x".repeat(16 * 1024 * 1024) }),
      "payload_too_large",
    ],
    ["timeout 0", () => producer.enqueue("f", {}, { jobTimeoutSeconds: 0 }), "invalid_argument"],
    [
      "negative timeout",
      () => producer.enqueue("f", {}, { jobTimeoutSeconds: -3 }),
      "invalid_argument",
    ],
    [
      "fractional max_retries",
      () => producer.enqueue("f", {}, { maxRetries: 1.5 }),
      "invalid_argument",
    ],
    [
      "negative max_retries",
      () => producer.enqueue("f", {}, { maxRetries: -1 }),
      "invalid_argument",
    ],
    ["blank queue", () => producer.enqueue("f", {}, { queueName: " " }), "invalid_argument"],
    ["blank job id", () => producer.enqueue("f", {}, { jobId: "" }), "invalid_argument"],
    ["negative defer", () => producer.enqueue("f", {}, { deferBySeconds: -1 }), "invalid_argument"],
    ["NaN defer", () => producer.enqueue("f", {}, { deferBySeconds: NaN }), "invalid_argument"],
    [
      "bad defer_until",
      () => producer.enqueue("f", {}, { deferUntil: "tomorrow" }),
      "invalid_argument",
    ],
    [
      "unique ttl 0",
      () => producer.enqueue("f", {}, { uniqueKey: "k", uniqueTtlSeconds: 0 }),
      "invalid_argument",
    ],
    [
      "rate limit and debounce",
      () =>
        producer.enqueue(
          "f",
          {},
          { rateLimitKey: "a", rateLimitSeconds: 1, debounceKey: "b", debounceSeconds: 1 },
        ),
      "conflicting_options",
    ],
    [
      "unique key with debounce",
      () => producer.enqueue("f", {}, { uniqueKey: "u", debounceKey: "b", debounceSeconds: 1 }),
      "conflicting_options",
    ],
    [
      "rate key without window",
      () => producer.enqueue("f", {}, { rateLimitKey: "a" }),
      "invalid_argument",
    ],
    [
      "zero window",
      () => producer.enqueueWithRateLimit("f", {}, { rateLimitKey: "a", rateLimitSeconds: 0 }),
      "invalid_argument",
    ],
    [
      "trace context with a number",
      () =>
        producer.enqueue("f", {}, { traceContext: { a: 1 } as unknown as Record<string, string> }),
      "invalid_argument",
    ],
    [
      "unknown option",
      () => producer.enqueue("f", {}, { retries: 3 } as never),
      "invalid_argument",
    ],
    [
      "bulk with one bad item",
      () => producer.enqueueMany([{ functionName: "ok" }, { functionName: "" }]),
      "invalid_argument",
    ],
    // One params rule in every producer (PRODUCER.md §6): JSON values only.
    ["a Date in params", () => producer.enqueue("f", { at: new Date() }), "invalid_params"],
    ["undefined in params", () => producer.enqueue("f", { a: undefined }), "invalid_params"],
    ["undefined in an array", () => producer.enqueue("f", { a: [1, undefined] }), "invalid_params"],
    ["a function in params", () => producer.enqueue("f", { f: () => 1 }), "invalid_params"],
    [
      "a class instance",
      () => producer.enqueue("f", { x: new (class Money {})() }),
      "invalid_params",
    ],
    [
      "an object with toJSON",
      () => producer.enqueue("f", { x: { toJSON: () => "x" } }),
      "invalid_params",
    ],
    [
      "defer_until with defer_by_seconds",
      () => producer.enqueue("f", {}, { deferUntil: "2030-01-01T00:00:00Z", deferBySeconds: 5 }),
      "conflicting_options",
    ],
  ];
  it.each(cases)("%s", async (_name, call, code) => {
    const error = await call().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ProducerError);
    expect(error).toMatchObject({ code });
    expect((error as Error).message).not.toBe("");
    expect(await redis.client.dbsize()).toBe(0);
  });

  it("names the option in the message", async () => {
    await expect(producer.enqueue("f", {}, { jobTimeoutSeconds: 0 })).rejects.toThrow(
      "job_timeout_seconds must be a positive integer",
    );
    await expect(producer.enqueue("f", { a: NaN })).rejects.toThrow(
      "params contains a non-finite number at params.a",
    );
    await expect(producer.enqueue("f", { when: { at: new Date(0) } })).rejects.toThrow(
      /a Date .*at params\.when\.at/,
    );
  });

  it("refuses a malformed redis_dsn when constructed, suggesting the fix", () => {
    const build = () => new Producer({ redisDsn: "localhost:6391" });
    expect(build).toThrow(ProducerError);
    expect(build).toThrow(/redis_dsn .*redis:\/\/localhost:6391\/0/);
    expect(() => new Producer({ redisDsn: "redis://:secret@h:1/x" })).toThrow(/database 'x'/);
    expect(() => new Producer({ redisDsn: "redis://:secret@h:1/x" })).not.toThrow(/secret/);
    expect(() => new Producer({ redisConnectTimeoutSeconds: 0 })).toThrow(
      /redis_connect_timeout_seconds must be a finite number > 0/,
    );
  });
});

describe("bulk, status and waiting", () => {
  it("enqueues many in order", async () => {
    const ids = await producer.enqueueMany([
      { functionName: "a", params: { i: 1 } },
      { functionName: "b", params: { i: 2 }, options: { queueName: "bulk", jobId: "fixed" } },
    ]);
    expect(ids[1]).toBe("fixed");
    expect(await redis.client.zcard("rrq:queue:default")).toBe(1);
    expect(await redis.client.hget("rrq:job:fixed", "job_params")).toBe('{"i":2}');
  });

  it("reports status, result and last_error; null for a missing job", async () => {
    expect(await producer.getJobStatus("nope")).toBeNull();
    await redis.client.hset("rrq:job:hand", { status: "COMPLETED", result: '{"ok":1}' });
    expect(await producer.getJobStatus("hand")).toEqual({
      status: "COMPLETED",
      result: { ok: 1 },
      lastError: null,
    });
    await redis.client.hset("rrq:job:odd", { status: "WEIRD", result: "NULL", last_error: "boom" });
    expect(await producer.getJobStatus("odd")).toEqual({
      status: "UNKNOWN",
      result: null,
      lastError: "boom",
    });
  });

  it("waits for completion through the events stream, and times out with null", async () => {
    const id = await producer.enqueue("f", {});
    setTimeout(() => {
      void redis.client
        .multi()
        .hset(`rrq:job:${id}`, { status: "COMPLETED", result: "42" })
        .xadd(
          `rrq:events:job:${id}`,
          "*",
          "event",
          "completed",
          "job_id",
          id,
          "status",
          "COMPLETED",
        )
        .exec();
    }, 100);
    expect(
      await producer.waitForCompletion(id, { timeoutSeconds: 5, blockIntervalSeconds: 10 }),
    ).toMatchObject({ status: "COMPLETED", result: 42 });
    const other = await producer.enqueue("f", {});
    expect(await producer.waitForCompletion(other, { timeoutSeconds: 0.2 })).toBeNull();
  });
});

describe("config from rrq.toml", () => {
  it("uses RRQ_CONFIG and the [rrq] table", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rrq-cfg-"));
    const path = join(dir, "custom.toml");
    writeFileSync(
      path,
      `[rrq]\nredis_dsn = "${redis.url}"\ndefault_queue_name = "fromtoml"\ndefault_max_retries = 9\n`,
    );
    const p = Producer.fromConfigFile(undefined, { RRQ_CONFIG: path });
    expect(p.config).toMatchObject({
      queueName: "rrq:queue:fromtoml",
      maxRetries: 9,
      redisDsn: redis.url,
      idempotencyTtlSeconds: 21600,
    });
    const id = await p.enqueue("f", {});
    expect(await redis.client.hget(`rrq:job:${id}`, "max_retries")).toBe("9");
    await p.close();
  });

  it("new Producer({ redisDsn }) keeps RRQ's defaults; fromConfigFile takes overrides on rrq.toml's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rrq-cfg-"));
    const path = join(dir, "rrq.toml");
    writeFileSync(
      path,
      `[rrq]\nredis_dsn = "redis://127.0.0.1:1/0"\ndefault_max_retries = 3\ndefault_job_timeout_seconds = 5\n`,
    );
    const plain = new Producer({ redisDsn: redis.url });
    expect(plain.config).toMatchObject({ maxRetries: 5, jobTimeoutSeconds: 300 });
    await plain.close();
    const p = Producer.fromConfigFile(path, {}, { redisDsn: redis.url });
    expect(p.config).toMatchObject({ maxRetries: 3, jobTimeoutSeconds: 5, redisDsn: redis.url });
    const id = await p.enqueue("f", {});
    expect(await redis.client.hget(`rrq:job:${id}`, "job_timeout_seconds")).toBe("5");
    await p.close();
  });
});
