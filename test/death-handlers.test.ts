/**
 * Death handlers (README "Death handlers"): one handler job per DLQ entry however many
 * orchestrators run, redelivery of a dead consumer's entries, filters, and idempotence.
 */
import { describe, expect, it } from "vitest";
import { dlqSummary } from "../src/api/dlq-summary.js";
import type { ResolvedConfig } from "../src/config/config.js";
import { DeathHandlers } from "../src/deaths/death-handlers.js";
import { DEATHS_GROUP, DEATHS_KEY } from "../src/deaths/death-record.js";
import { EventBus, type OrchestratorEvents } from "../src/telemetry/events.js";
import { RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";
import { useProducerFixture } from "./support/producer-fixture.js";

const fx = useProducerFixture();

/** A death as move-to-dlq-6.lua records it. */
const death = (jobId: string, extra: Record<string, string> = {}) => {
  const fields = {
    j: jobId,
    d: "rrq:dlq:default",
    r: "2",
    f: "charge_card",
    q: "rrq:queue:default",
    e: "card declined",
    t: "CardError",
    c: "2026-12-06T10:00:00.000+00:00",
    ...extra,
  };
  return fx.redis.client.xadd(DEATHS_KEY, "*", ...Object.entries(fields).flat());
};

/** A consumer outside any worker, with its death:handled events recorded. */
function consumer(config: ResolvedConfig, workerId: string, minIdleMs = 30_000) {
  const events = new EventBus();
  const handled: OrchestratorEvents["death:handled"][] = [];
  const errors: Error[] = [];
  events.on("death:handled", (e) => handled.push(e));
  events.on("worker:error", (e) => errors.push(e.error));
  const handlers = new DeathHandlers(fx.redis.client, config, workerId, events, { minIdleMs });
  return { handlers, handled, errors };
}

describe("death handlers with two orchestrators", () => {
  it("run one handler job per DLQ entry, each once, with the documented params", async () => {
    const config = testConfig(fx.redis.url, {
      default_max_retries: 1,
      death_handlers: [
        { function: "echo", queue: "deaths" },
        { function: "echo", queue: "deaths", functions: ["something_else"] },
      ],
    });
    const queues = ["default", "deaths"];
    const workers = [new RunningWorker(config, queues), new RunningWorker(config, queues)];
    const handled: OrchestratorEvents["death:handled"][] = [];
    for (const w of workers) w.events.on("death:handled", (e) => handled.push(e));
    await Promise.all(workers.map((w) => w.start()));
    try {
      const N = 20;
      const ids: string[] = [];
      for (let i = 0; i < N; i++)
        ids.push(await fx.producer.enqueue("fail", { message: `boom ${i}` }, { maxRetries: 1 }));
      const handlerIds = ids.map((id) => `death:${id}:1:0`);
      await waitFor(
        async () => {
          const statuses = await Promise.all(
            handlerIds.map((id) => fx.redis.client.hget(`rrq:job:${id}`, "status")),
          );
          return statuses.every((s) => s === "COMPLETED");
        },
        30_000,
        "handler jobs to complete",
      );
      for (const [i, id] of ids.entries()) {
        const dead = await fx.redis.client.hgetall(`rrq:job:${id}`);
        const hash = await fx.redis.client.hgetall(`rrq:job:${handlerIds[i]}`);
        expect(hash).toMatchObject({ function_name: "echo", queue_name: "rrq:queue:deaths" });
        expect(JSON.parse(hash.result!)).toEqual({
          job_id: id,
          function_name: "fail",
          queue_name: "rrq:queue:default",
          dlq_name: "rrq:dlq:default",
          error: dead.last_error,
          error_type: null,
          runs: 1,
          failed_at: dead.completion_time,
        });
        expect(hash.runs).toBe("1"); // the handler ran once
      }
      // the filtered handler matched nothing; nothing else was enqueued
      const keys = await fx.redis.client.keys("rrq:job:death:*");
      expect(keys.sort()).toEqual(handlerIds.map((id) => `rrq:job:${id}`).sort());
      expect(handled.map((e) => e.handlerJobId).sort()).toEqual([...handlerIds].sort());
      const [count] = (await fx.redis.client.xpending(DEATHS_KEY, DEATHS_GROUP)) as [number];
      expect(count).toBe(0);
      expect(workers.flatMap((w) => w.of("worker:error"))).toEqual([]);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
    // clean exits leave no consumer behind
    expect(await fx.redis.client.xinfo("CONSUMERS", DEATHS_KEY, DEATHS_GROUP)).toEqual([]);
  }, 60_000);
});

describe("death handlers and the DLQ cap through an orchestrator", () => {
  it("a capped DLQ keeps its newest entries; every death still gets its handler job", async () => {
    const config = testConfig(fx.redis.url, {
      dlq_max_jobs: 3,
      death_handlers: [{ function: "echo" }],
    });
    const worker = await new RunningWorker(config).start();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push(await fx.producer.enqueue("fail_permanently", { message: `perm ${i}` }));
        ids.push(await fx.producer.enqueue("fail", { message: `boom ${i}` }, { maxRetries: 1 }));
      }
      const handlerIds = ids.map((id) => `death:${id}:1:0`);
      await waitFor(
        async () => {
          const statuses = await Promise.all(
            handlerIds.map((id) => fx.redis.client.hget(`rrq:job:${id}`, "status")),
          );
          return statuses.every((s) => s === "COMPLETED");
        },
        30_000,
        "handler jobs to complete",
      );
      const kept = await fx.redis.client.lrange("rrq:dlq:default", 0, -1);
      expect(kept.length).toBe(3);
      for (const id of ids) {
        const exists = await fx.redis.client.exists(`rrq:job:${id}`);
        expect(exists).toBe(kept.includes(id) ? 1 : 0); // trimmed jobs are deleted
      }
      const results = await Promise.all(
        handlerIds.map(
          async (id) =>
            JSON.parse((await fx.redis.client.hget(`rrq:job:${id}`, "result"))!) as unknown,
        ),
      );
      expect(
        results.filter((r) => (r as { error_type: unknown }).error_type === "non_retryable"),
      ).toHaveLength(3);
      expect(await fx.redis.client.hget("rrq:stats:dlq:default", "trimmed")).toBe("3");
      const summary = await dlqSummary(fx.redis.client, "rrq:dlq:default");
      expect(summary).toMatchObject({ entries: 3, jobs: 3, trimmed: 3, rebuilt: false });
      expect(worker.of("worker:error")).toEqual([]);
    } finally {
      await worker.stop();
    }
  }, 60_000);
});

describe("death-handler consumer", () => {
  const config = () =>
    testConfig(fx.redis.url, {
      death_handlers: [
        { function: "notify", queue: "ops", queues: ["default"] },
        { function: "audit", functions: ["charge_card"] },
        { function: "never", functions: ["other"] },
      ],
    });

  it("takes over the entries of a consumer that died before acknowledging them", async () => {
    const cfg = config();
    const a = consumer(cfg, "w-a", 200);
    await a.handlers.tick(); // creates the group at $
    await death("j1");
    await death("j2");
    // a consumer reads both and dies: one handler job written for j1, nothing for j2, no XACK
    await fx.redis.client.xreadgroup(
      "GROUP",
      DEATHS_GROUP,
      "w-dead",
      "COUNT",
      10,
      "STREAMS",
      DEATHS_KEY,
      ">",
    );
    await fx.producer.enqueue(
      "notify",
      { planted: true },
      { jobId: "death:j1:2:0", queueName: "ops" },
    );
    await a.handlers.tick();
    expect(a.handled).toEqual([]); // not idle long enough yet
    await new Promise((r) => setTimeout(r, 250));
    await a.handlers.tick();
    expect(a.handled.map((e) => e.handlerJobId)).toEqual([
      "death:j1:2:1",
      "death:j2:2:0",
      "death:j2:2:1",
    ]);
    // the job the dead consumer wrote is left as it was
    expect(await fx.redis.client.hget("rrq:job:death:j1:2:0", "job_params")).toBe(
      '{"planted":true}',
    );
    const j2 = await fx.redis.client.hgetall("rrq:job:death:j2:2:0");
    expect(j2).toMatchObject({ function_name: "notify", queue_name: "rrq:queue:ops" });
    expect(JSON.parse(j2.job_params!)).toMatchObject({
      job_id: "j2",
      error_type: "CardError",
      runs: 2,
    });
    expect(await fx.redis.client.hget("rrq:job:death:j2:2:1", "queue_name")).toBe(
      "rrq:queue:default",
    );
    const [count] = (await fx.redis.client.xpending(DEATHS_KEY, DEATHS_GROUP)) as [number];
    expect(count).toBe(0);
    expect(a.errors).toEqual([]);
  });

  it("applies the filters, skips handler jobs' own deaths and delivers each entry once", async () => {
    const cfg = config();
    const a = consumer(cfg, "w-a");
    const b = consumer(cfg, "w-b");
    await a.handlers.tick();
    await death("x", { q: "rrq:queue:other", f: "other" });
    await death("death:y:1:0", { f: "notify" });
    await death("z", { t: "" });
    await Promise.all([a.handlers.tick(), b.handlers.tick()]);
    const all = [...a.handled, ...b.handled].map((e) => e.handlerJobId).sort();
    expect(all).toEqual(["death:x:2:2", "death:z:2:0", "death:z:2:1"]);
    const z = (await fx.redis.client.hget("rrq:job:death:z:2:0", "job_params"))!;
    expect(JSON.parse(z)).toMatchObject({ error_type: null });
    await a.handlers.stop();
    await b.handlers.stop();
    expect(await fx.redis.client.xinfo("CONSUMERS", DEATHS_KEY, DEATHS_GROUP)).toEqual([]);
  });

  it("recreates the group when the stream is deleted", async () => {
    const a = consumer(config(), "w-a");
    await a.handlers.tick();
    await fx.redis.client.del(DEATHS_KEY);
    await a.handlers.tick(); // NOGROUP: reported, recreated on the next poll
    expect(a.errors.length).toBe(1);
    await a.handlers.tick();
    await death("k");
    await a.handlers.tick();
    expect(a.handled.map((e) => e.handlerJobId)).toEqual(["death:k:2:0", "death:k:2:1"]);
  });
});
