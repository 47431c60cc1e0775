/**
 * rrqkit/testing's fake and inline producers beyond the shared scenarios: the producer API
 * (middleware, bulk, unique keys, rate limits, debounces, status), the orchestrator settings
 * they follow, drain's runaway stop, their types, and that they open no network connection.
 */
import net from "node:net";
import { Registry } from "@rrqkit/runner";
import { describe, expect, it } from "vitest";
import { EnqueueVetoedError, ProducerError } from "../src/errors.js";
import { FakeProducer, InlineProducer, MAX_EXECUTIONS } from "../src/testing/index.js";

const registry = () =>
  new Registry()
    .register("echo", (request) => request.params)
    .register("boom", () => {
      throw new Error("boom");
    });

describe("producer middleware", () => {
  it("runs before-hooks in order, after-hooks in reverse, on the final job", async () => {
    const seen: string[] = [];
    const producer = new FakeProducer({ registry: registry() })
      .use({
        beforeEnqueue: () => void seen.push("before 1"),
        afterEnqueue: () => void seen.push("after 1"),
      })
      .use({
        beforeEnqueue: (job) => {
          seen.push("before 2");
          job.params.tenant = "t1";
          job.options.queueName = "mail";
        },
        afterEnqueue: (_job, id) => void seen.push(`after 2 ${id}`),
      });
    const id = await producer.enqueue("echo", { a: 1 });
    expect(seen).toEqual(["before 1", "before 2", `after 2 ${id}`, "after 1"]);
    expect(producer.jobs[0]).toMatchObject({
      params: { a: 1, tenant: "t1" },
      queueName: "rrq:queue:mail",
    });
  });

  it("a veto records nothing and names the function", async () => {
    const producer = new InlineProducer({ registry: registry() }).use({
      beforeEnqueue: () => {
        throw new EnqueueVetoedError("no tenant");
      },
    });
    const error = await producer.enqueue("echo", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnqueueVetoedError);
    expect(error).toMatchObject({
      code: "enqueue_vetoed",
      message: "enqueue of echo vetoed: no tenant",
    });
    expect(producer.jobs).toEqual([]);
  });

  it("bulk: hooks per item; one bad item records nothing", async () => {
    const producer = new FakeProducer();
    const ids = await producer.enqueueMany([
      { functionName: "echo", params: { n: 1 } },
      { functionName: "echo", params: { n: 2 }, options: { jobId: "two" } },
    ]);
    expect(ids[1]).toBe("two");
    await expect(
      producer.enqueueMany([
        { functionName: "echo", params: { n: 3 } },
        { functionName: "echo", options: { rateLimitKey: "k", rateLimitSeconds: 1 } },
      ]),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    expect(producer.jobs.map((j) => j.params)).toEqual([{ n: 1 }, { n: 2 }]);
  });
});

describe("guards and status", () => {
  it("a unique key returns the first job's id", async () => {
    const producer = new FakeProducer();
    const first = await producer.enqueue("echo", {}, { uniqueKey: "u" });
    expect(await producer.enqueue("echo", {}, { uniqueKey: "u" })).toBe(first);
    expect(producer.jobs).toHaveLength(1);
  });

  it("a rate-limited call is dropped without after-hooks", async () => {
    let after = 0;
    const producer = new FakeProducer().use({ afterEnqueue: () => void after++ });
    const options = { rateLimitKey: "r", rateLimitSeconds: 60 };
    expect(await producer.enqueueWithRateLimit("echo", {}, options)).not.toBeNull();
    expect(await producer.enqueueWithRateLimit("echo", {}, options)).toBeNull();
    await expect(producer.enqueue("echo", {}, options)).rejects.toMatchObject({
      code: "rate_limited",
    });
    expect(after).toBe(1);
  });

  it("a debounce updates the pending job, whose id the after-hook gets", async () => {
    const afterIds: string[] = [];
    const producer = new FakeProducer({ registry: registry() }).use({
      afterEnqueue: (_job, id) => void afterIds.push(id),
    });
    const options = { debounceKey: "d", debounceSeconds: 30 };
    const id = await producer.enqueueWithDebounce("echo", { v: 1 }, options);
    expect(await producer.enqueueWithDebounce("echo", { v: 2 }, options)).toBe(id);
    expect(afterIds).toEqual([id, id]);
    expect(producer.jobs).toHaveLength(1);
    await producer.drain();
    expect(producer.jobs[0]).toMatchObject({ result: { v: 2 }, deferredSeconds: 30 });
  });

  it("status: null for no job, pending until drained, then final", async () => {
    const producer = new FakeProducer({ registry: registry() });
    expect(await producer.getJobStatus("nope")).toBeNull();
    const id = await producer.enqueue("boom", {}, { maxRetries: 2 });
    expect(await producer.getJobStatus(id)).toMatchObject({ status: "PENDING" });
    expect(await producer.waitForCompletion(id)).toBeNull();
    await producer.drain();
    expect(await producer.waitForCompletion(id)).toEqual({
      status: "FAILED",
      result: null,
      lastError: "boom",
    });
    producer.clear();
    expect(producer.jobs).toEqual([]);
  });
});

describe("rules", () => {
  it("follow the orchestrator settings given as config", async () => {
    const producer = new InlineProducer({
      registry: registry(),
      config: { default_max_retries: 2, functions: { echo: { max_attempts: 4 } } },
    });
    const id = await producer.enqueue("boom", {});
    expect(producer.jobs[0]).toMatchObject({ id, attempts: 2, retryDelays: [5] });
  });

  it("the job's clock moves by recorded delays: expiry and the retry budget", async () => {
    const producer = new InlineProducer({ registry: registry() });
    await producer.enqueue("echo", {}, { deferBySeconds: 100, expiresIn: 10 });
    expect(producer.jobs[0]).toMatchObject({ status: "FAILED", attempts: 0 });
    expect(producer.jobs[0]!.lastError).toMatch(/^Job expired before it started/);
    const retry = { backoff: "fixed", delay_seconds: 40, retry_for_seconds: 100 };
    await producer.enqueue("boom", {}, { maxRetries: 10, retry });
    expect(producer.jobs[1]).toMatchObject({
      status: "FAILED",
      attempts: 3,
      retryDelays: [40, 40],
    });
    expect(producer.jobs[1]!.lastError).toMatch(/retry budget of 100s exhausted/);
  });

  it("runner middleware runs around the handler, as in a runner", async () => {
    const reg = registry().use(async (request, next) => {
      request.params!.seen = true;
      return { wrapped: await next() };
    });
    const producer = new InlineProducer({ registry: reg });
    await producer.enqueue("echo", { a: 1 });
    expect(producer.jobs[0]!.result).toEqual({ wrapped: { a: 1, seen: true } });
  });

  it("a function without a handler fails at once as handler_not_found", async () => {
    const producer = new InlineProducer({ registry: registry() });
    await producer.enqueue("missing", {});
    expect(producer.jobs[0]).toMatchObject({
      status: "FAILED",
      attempts: 1,
      errorType: "handler_not_found",
    });
  });

  it("drain stops a job that keeps enqueuing itself", async () => {
    const reg = new Registry();
    const producer = new FakeProducer({ registry: reg });
    reg.register("again", async () => producer.enqueue("again", {}));
    await producer.enqueue("again", {});
    await expect(producer.drain()).rejects.toThrow(`stopped after ${MAX_EXECUTIONS} executions`);
  });

  it("inline: jobs enqueued by handlers run nested, deeper than a connection's in-flight cap", async () => {
    const reg = new Registry();
    const producer = new InlineProducer({ registry: reg });
    reg.register("chain", async (request) => {
      const n = request.params!.n as number;
      if (n > 0) await producer.enqueue("chain", { n: n - 1 });
      return n;
    });
    await producer.enqueue("chain", { n: 100 });
    expect(producer.jobs).toHaveLength(101);
    expect(producer.jobs.every((j) => j.status === "COMPLETED" && j.attempts === 1)).toBe(true);
  });

  it("needs a registry to run anything", async () => {
    await expect(new FakeProducer().drain()).rejects.toBeInstanceOf(ProducerError);
    expect(() => new InlineProducer({} as never)).toThrow(/needs a registry/);
  });
});

interface Jobs {
  send_email: { params: { to: string }; result: { ok: boolean } };
}

it("typed like Producer<Jobs>", async () => {
  const reg = new Registry<Jobs>().register("send_email", () => ({ ok: true }));
  const producer = new InlineProducer<Jobs>({ registry: reg });
  await producer.enqueue("send_email", { to: "a@b.c" });
  // @ts-expect-error -- `to` must be a string
  await producer.enqueue("send_email", { to: 1 }).catch(() => undefined);
  await producer.enqueue("anything_else", { free: true });
  expect(producer.jobsFor("send_email")[0]!.result).toEqual({ ok: true });
});

it("no network connection at all, in fake and inline mode", async () => {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- kept only to be put back
  const connect = net.Socket.prototype.connect;
  const netConnect = net.connect;
  let calls = 0;
  const refuse = () => {
    calls++;
    throw new Error("the testing producers must not open a connection");
  };
  net.Socket.prototype.connect = refuse;
  net.connect = refuse;
  try {
    // the stub is in force (a socket's connect goes through it)
    expect(() => new net.Socket().connect(9)).toThrow(/must not open/);
    calls = 0;
    const fake = new FakeProducer({ registry: registry() });
    await fake.enqueue("echo", { a: 1 });
    await fake.enqueue("boom", {}, { maxRetries: 2 });
    await fake.drain();
    const inline = new InlineProducer({ registry: registry() });
    await inline.enqueue("echo", { b: 2 });
    expect(fake.jobs.map((j) => j.status)).toEqual(["COMPLETED", "FAILED"]);
    expect(inline.jobs[0]!.status).toBe("COMPLETED");
    await Promise.all([fake.close(), inline.close()]);
  } finally {
    net.Socket.prototype.connect = connect;
    net.connect = netConnect;
  }
  expect(calls).toBe(0);
});
