/**
 * Producer middleware (docs/middleware.md): before-hooks in registration order, after-hooks in
 * reverse; a veto (code enqueue_vetoed) or any other before-hook error writes nothing and stops
 * the chain; validation (options, catalog) runs on the job the hooks leave; bulk is all or
 * nothing; a rate-limited drop skips the after-hooks; a debounce update passes the existing id.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { JobCatalog } from "@rrqkit/runner/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnqueueVetoedError, InvalidParamsError, ProducerError } from "../src/errors.js";
import type { PendingEnqueue, ProducerMiddleware } from "../src/producer/middleware.js";
import { Producer } from "../src/producer/producer.js";
import { useProducerFixture } from "./support/producer-fixture.js";

const CATALOG_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "conformance",
  "fixtures",
  "catalog",
);

const fixture = useProducerFixture();
const opened: Producer[] = [];
let catalog: JobCatalog;
beforeAll(() => {
  catalog = JobCatalog.load(CATALOG_DIR);
});
afterAll(async () => {
  for (const producer of opened) await producer.close();
});

/** A producer on the fixture's Redis with `middlewares` registered in order. */
function producerWith(...middlewares: ProducerMiddleware[]): Producer {
  const producer = new Producer({ redisDsn: fixture.redis.url, catalog });
  opened.push(producer);
  for (const middleware of middlewares) producer.use(middleware);
  return producer;
}

/** A middleware that records `<name>:before` / `<name>:after:<id>` into `log`. */
function recorder(name: string, log: string[]): ProducerMiddleware {
  return {
    async beforeEnqueue(job) {
      await Promise.resolve(); // async hooks are awaited in order
      log.push(`${name}:before:${job.functionName}`);
    },
    afterEnqueue(_job, jobId) {
      log.push(`${name}:after:${jobId}`);
    },
  };
}

async function rejection(call: () => Promise<unknown>): Promise<unknown> {
  return call().then(
    () => expect.fail("expected the call to fail"),
    (e: unknown) => e,
  );
}

const keys = () => fixture.redis.client.keys("*");
const paramsOf = async (id: string) =>
  JSON.parse((await fixture.redis.client.hget(`rrq:job:${id}`, "job_params"))!) as unknown;

describe("producer middleware", () => {
  it("runs before-hooks in registration order and after-hooks in reverse", async () => {
    const log: string[] = [];
    const producer = producerWith(recorder("a", log), recorder("b", log), recorder("c", log));
    const id = await producer.enqueue("work", { n: 1 });
    expect(log).toEqual([
      "a:before:work",
      "b:before:work",
      "c:before:work",
      `c:after:${id}`,
      `b:after:${id}`,
      `a:after:${id}`,
    ]);
  });

  it("lets a before-hook change params and options; the caller's objects stay untouched", async () => {
    const params = { n: 1 };
    const options = { maxRetries: 2 };
    const producer = producerWith({
      beforeEnqueue(job) {
        job.params.tenant = "acme";
        job.options.queueName = "audit";
        job.options.traceContext = { traceparent: "00-abc" };
      },
    });
    const id = await producer.enqueue("work", params, options);
    expect(await paramsOf(id)).toEqual({ n: 1, tenant: "acme" });
    expect(await fixture.redis.client.zcard("rrq:queue:audit")).toBe(1);
    expect(params).toEqual({ n: 1 });
    expect(options).toEqual({ maxRetries: 2 });
  });

  it("a veto is enqueue_vetoed naming the function, writes nothing, stops later hooks", async () => {
    const log: string[] = [];
    const producer = producerWith(
      recorder("a", log),
      {
        beforeEnqueue(job) {
          if (job.params.blocked) throw new EnqueueVetoedError("tenant is blocked");
        },
      },
      recorder("c", log),
    );
    const error = await rejection(() => producer.enqueue("work", { blocked: true }));
    expect(error).toBeInstanceOf(EnqueueVetoedError);
    expect(error).toBeInstanceOf(ProducerError);
    const vetoed = error as EnqueueVetoedError;
    expect(vetoed.code).toBe("enqueue_vetoed");
    expect(vetoed.message).toBe("enqueue of work vetoed: tenant is blocked");
    expect(vetoed.functionName).toBe("work");
    expect(vetoed.reason).toBe("tenant is blocked");
    expect(log).toEqual(["a:before:work"]); // c's before and every after-hook did not run
    expect(await keys()).toEqual([]);
  });

  it("passes any other before-hook error on unchanged, writing nothing", async () => {
    const boom = new TypeError("hook bug");
    const log: string[] = [];
    const producer = producerWith(
      {
        beforeEnqueue() {
          throw boom;
        },
      },
      recorder("b", log),
    );
    expect(await rejection(() => producer.enqueue("work", {}))).toBe(boom);
    expect(log).toEqual([]);
    expect(await keys()).toEqual([]);
  });

  it("validates the job the hooks leave: a hook can break or repair catalog params", async () => {
    const breaks = producerWith({
      beforeEnqueue(job) {
        job.params.to = 42;
      },
    });
    const error = await rejection(() =>
      breaks.enqueue("send_email", { to: "a@b.c", subject: "hi" }),
    );
    expect(error).toBeInstanceOf(InvalidParamsError);
    expect((error as InvalidParamsError).field).toBe("/to");
    expect(await keys()).toEqual([]);

    const repairs = producerWith({
      beforeEnqueue(job) {
        job.params.subject ??= "(no subject)";
      },
    });
    const id = await repairs.enqueue("send_email", { to: "a@b.c" });
    expect(await paramsOf(id)).toEqual({ to: "a@b.c", subject: "(no subject)" });
  });

  it("validates options after the hooks too", async () => {
    const producer = producerWith({
      beforeEnqueue(job) {
        job.options.maxRetries = -1;
      },
    });
    const error = (await rejection(() => producer.enqueue("work", {}))) as ProducerError;
    expect(error.code).toBe("invalid_argument");
    expect(await keys()).toEqual([]);
  });

  it("an after-hook error reaches the caller although the job is written", async () => {
    const producer = producerWith({
      afterEnqueue() {
        throw new Error("audit down");
      },
    });
    const error = (await rejection(() => producer.enqueue("work", {}, { jobId: "j1" }))) as Error;
    expect(error.message).toBe("audit down");
    expect(await fixture.redis.client.exists("rrq:job:j1")).toBe(1);
  });

  it("bulk: before-hooks per item in order, a veto of any item writes nothing", async () => {
    const log: string[] = [];
    const producer = producerWith(recorder("a", log), {
      beforeEnqueue(job) {
        if (job.params.i === 2) throw new EnqueueVetoedError("no twos");
      },
    });
    const items = [0, 1, 2, 3].map((i) => ({ functionName: `f${i}`, params: { i } }));
    const error = (await rejection(() => producer.enqueueMany(items))) as EnqueueVetoedError;
    expect(error.code).toBe("enqueue_vetoed");
    expect(error.message).toBe("enqueue of f2 vetoed: no twos");
    expect(log).toEqual(["a:before:f0", "a:before:f1", "a:before:f2"]);
    expect(await keys()).toEqual([]);
  });

  it("bulk: a hook change that breaks validation fails the whole call; success runs after-hooks per item", async () => {
    const broken = producerWith({
      beforeEnqueue(job) {
        if (job.params.i === 1) job.params.to = 1;
      },
    });
    const mail = (i: number) => ({
      functionName: "send_email",
      params: { to: "a@b.c", subject: `s${i}`, ...{ i } },
    });
    // `i` is not in the contract, so strip it in a hook that runs last.
    const strip: ProducerMiddleware = {
      beforeEnqueue(job) {
        delete job.params.i;
      },
    };
    broken.use(strip);
    const error = (await rejection(() =>
      broken.enqueueMany([mail(0), mail(1)]),
    )) as InvalidParamsError;
    expect(error.message).toMatch(/^items\[1\]: send_email: params\/to/);
    expect(await keys()).toEqual([]);

    const seen: [string, string][] = [];
    const ok = producerWith(
      {
        afterEnqueue(job, id) {
          seen.push([job.params.subject as string, id]);
        },
      },
      strip,
    );
    const ids = await ok.enqueueMany([mail(0), mail(1), mail(2)]);
    expect(seen).toEqual([
      ["s0", ids[0]],
      ["s1", ids[1]],
      ["s2", ids[2]],
    ]);
  });

  it("a rate-limited drop skips the after-hooks; a debounce update passes the existing id", async () => {
    const after: string[] = [];
    const before: PendingEnqueue[] = [];
    const producer = producerWith({
      beforeEnqueue(job) {
        before.push(job);
      },
      afterEnqueue(_job, id) {
        after.push(id);
      },
    });
    const limit = { rateLimitKey: "rk", rateLimitSeconds: 60 };
    const first = await producer.enqueueWithRateLimit("work", {}, limit);
    expect(first).not.toBeNull();
    expect(await producer.enqueueWithRateLimit("work", {}, limit)).toBeNull();
    const dropped = (await rejection(() => producer.enqueue("work", {}, limit))) as ProducerError;
    expect(dropped.code).toBe("rate_limited");
    expect(before).toHaveLength(3);
    expect(after).toEqual([first]);

    const debounce = { debounceKey: "dk", debounceSeconds: 60 };
    const a = await producer.enqueueWithDebounce("work", { v: 1 }, debounce);
    const b = await producer.enqueueWithDebounce("work", { v: 2 }, debounce);
    expect(b).toBe(a);
    expect(after).toEqual([first, a, a]);
  });

  it("use() refuses what is not a middleware", () => {
    const producer = producerWith();
    expect(() => producer.use({ beforeEnqueue: 1 } as never)).toThrow(/producer middleware/);
    expect(() => producer.use(null as never)).toThrow(ProducerError);
  });
});
