/**
 * Flow control end to end (README "Flow control"): a real redis-server, real orchestrators and
 * real Node conformance runner processes. Handler starts are read from the runner's execution
 * log (RRQ_TEST_EXEC_LOG: one line per start, local clock); a `sleep` job of `ms` therefore
 * runs at least over [start, start + ms], which lies inside the time it holds its slot (taken at
 * the claim, freed after its result is written), so overlaps of those intervals bound how many
 * held a slot at once.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ResolvedConfig } from "../src/config/config.js";
import { FLOW_SWEEP_LEADER_KEY, FlowHooks, FlowSweeper } from "../src/flow/index.js";
import { Recovery } from "../src/orchestrator/recovery.js";
import type { EnqueueOptions } from "../src/producer/options.js";
import { FlowStore } from "../src/store/flow-store.js";
import { JobStore } from "../src/store/job-store.js";
import { registerScripts } from "../src/store/scripts.js";
import { EventBus, type OrchestratorEvents } from "../src/telemetry/events.js";
import { loggingNodeRunner, readExecLog, useExecLogFixture } from "./support/exec-log.js";
import { jobSettled, RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const fx = useExecLogFixture("flow");
let workers: RunningWorker[] = [];

afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  workers = [];
});

/** A config with `extra` rrq.toml keys whose runner logs every handler start. */
function config(extra: Record<string, unknown> = {}): ResolvedConfig {
  return testConfig(
    fx.redis.url,
    { default_job_timeout_seconds: 10, base_retry_delay_seconds: 0.01, ...extra },
    loggingNodeRunner(fx.logPath),
  );
}

/** Starts a worker; `before` may subscribe to its events first. */
async function start(
  c: ResolvedConfig,
  queues?: string[],
  before?: (w: RunningWorker) => void,
): Promise<RunningWorker> {
  const w = new RunningWorker(c, queues);
  before?.(w);
  workers.push(w);
  return w.start();
}

const executions = () => readExecLog(fx.logPath);

/** Most intervals [start, start + ms] covering one instant. */
function maxOverlap(starts: readonly number[], ms: number): number {
  const edges = starts.flatMap((t) => [
    [t, 1],
    [t + ms, -1],
  ]);
  // an end and a start at the same instant do not overlap
  edges.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
  let now = 0;
  let most = 0;
  for (const [, delta] of edges) most = Math.max(most, (now += delta!));
  return most;
}

const enqueue = (fn: string, params: Record<string, unknown>, options: EnqueueOptions = {}) =>
  fx.producer.enqueue(fn, params, options);

const settledAll = (ids: readonly string[]) =>
  Promise.all(ids.map((id) => jobSettled(fx.redis.client, id)));

describe("concurrency", () => {
  it("a limit's cap holds across two orchestrators", async () => {
    const c = config({ limits: { exports: { concurrency: 2 } } });
    await Promise.all([start(c), start(c)]);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++)
      ids.push(await enqueue("sleep", { ms: 150 }, { limit: "exports" }));
    const hashes = await settledAll(ids);
    expect(hashes.every((h) => h.status === "COMPLETED")).toBe(true);
    const starts = executions().map((e) => e.ts_ms);
    expect(starts).toHaveLength(10);
    expect(maxOverlap(starts, 150)).toBe(2);
    // every slot was given back
    await waitFor(async () => (await fx.redis.client.zcard("rrq:fc:run:limit:exports")) === 0);
  });

  it("a job's own concurrency key, and a limit this config lacks runs one at a time with one warning", async () => {
    const warnings: string[] = [];
    await start(config(), undefined, (w) =>
      w.events.on("worker:warning", (e) => warnings.push(e.message)),
    );
    const own: string[] = [];
    for (let i = 0; i < 4; i++)
      own.push(
        await enqueue("sleep", { ms: 100 }, { concurrencyKey: "tenant:1", concurrencyLimit: 3 }),
      );
    const unknown: string[] = [];
    for (let i = 0; i < 3; i++)
      unknown.push(await enqueue("sleep", { ms: 100 }, { limit: "nope" }));
    await settledAll([...own, ...unknown]);
    const byId = new Map(executions().map((e) => [e.job_id, e.ts_ms]));
    expect(
      maxOverlap(
        own.map((id) => byId.get(id)!),
        100,
      ),
    ).toBeLessThanOrEqual(3);
    expect(
      maxOverlap(
        unknown.map((id) => byId.get(id)!),
        100,
      ),
    ).toBe(1);
    expect(warnings.filter((m) => m.includes("limit 'nope'"))).toHaveLength(1);
  });
});

describe("start rate", () => {
  it("spaces starts by period / limit, the worker waking for re-scored jobs by itself", async () => {
    // no poll fallback within the test: the claim's next score must wake the worker
    await start(config({ default_poll_delay_seconds: 100 }));
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(
        await enqueue(
          "echo",
          { i },
          { concurrencyKey: "api", startRate: { limit: 5, periodSeconds: 0.5 } },
        ),
      );
    const hashes = await settledAll(ids);
    // start_time is the claim script's own "now": the k-th start is at or after its slot
    const starts = hashes.map((h) => Date.parse(h.start_time!)).sort((a, b) => a - b);
    for (let k = 1; k < starts.length; k++)
      expect(starts[k]!).toBeGreaterThanOrEqual(starts[0]! + k * 100 - 2);
  });
});

describe("keyless jobs", () => {
  it("cost no flow-control command after their attempt", async () => {
    // The sweeper kept out of the window: its round's EXISTS rrq:fc:waiting is a periodic cost
    // of its own, not of the jobs, and one falling inside the MONITOR window failed the test.
    await start(
      config({ limits: { exports: { concurrency: 2 } }, flow_sweep_interval_seconds: 100_000 }),
    );
    const monitor = await fx.redis.client.monitor();
    const commands: string[][] = [];
    monitor.on("monitor", (_time: string, args: string[]) => commands.push(args));
    const ids = [await enqueue("echo", { n: 1 }), await enqueue("fail", {}, { maxRetries: 2 })];
    await settledAll(ids);
    // a release's or breaker record's arguments would carry the session_on_dead or outcome word
    await waitFor(() => commands.some((c) => c.some((a) => a.includes(ids[1]!))));
    await new Promise((resolve) => setTimeout(resolve, 200));
    monitor.disconnect();
    const flow = commands.filter((c) => c.includes("skip") || c.includes("failure"));
    expect(flow).toEqual([]);
    expect(commands.some((c) => c.some((a) => a.startsWith("rrq:fc:")))).toBe(false);
  });
});

describe("sessions", () => {
  it("jobs of one ordering key run one at a time in enqueue order; sessions run side by side", async () => {
    await start(config());
    const sessions: Record<string, string[]> = { s1: [], s2: [] };
    // later jobs are shorter: without the session they would finish first
    for (let i = 0; i < 5; i++)
      for (const key of ["s1", "s2"])
        sessions[key]!.push(await enqueue("sleep", { ms: 100 - i * 15 }, { orderingKey: key }));
    await settledAll([...sessions.s1!, ...sessions.s2!]);
    const log = executions();
    const at = new Map(log.map((e) => [e.job_id, e.ts_ms]));
    for (const ids of Object.values(sessions)) {
      const starts = ids.map((id) => at.get(id)!);
      for (let i = 1; i < starts.length; i++)
        // the next job starts after the previous one's handler ended
        expect(starts[i]!).toBeGreaterThanOrEqual(starts[i - 1]! + (100 - (i - 1) * 15));
    }
    // every session job ran once, and the sessions are empty again
    expect(log).toHaveLength(10);
    // (the release follows the result write: wait for the last one)
    await waitFor(
      async () => (await fx.redis.client.exists("rrq:fc:order:s1", "rrq:fc:order:s2")) === 0,
    );
  });
});

describe("after an attempt (the sweeper kept out of the way)", () => {
  const noSweep = { flow_sweep_interval_seconds: 100_000 };

  it("a snoozed session head keeps its place; the next job waits for its success", async () => {
    await start(config(noSweep));
    const head = await enqueue("snooze", { seconds: 0.2, times: 1 }, { orderingKey: "s" });
    const next = await enqueue("echo", {}, { orderingKey: "s" });
    await settledAll([head, next]);
    const log = executions();
    const headStarts = log.filter((e) => e.job_id === head).map((e) => e.ts_ms);
    const nextStart = log.find((e) => e.job_id === next)!.ts_ms;
    expect(headStarts).toHaveLength(2);
    expect(nextStart).toBeGreaterThanOrEqual(headStarts[1]!);
  });

  it("cancelling a running session head lets the next job run", async () => {
    await start(config(noSweep));
    const head = await enqueue("sleep", { ms: 60_000 }, { orderingKey: "s" });
    const next = await enqueue("echo", {}, { orderingKey: "s" });
    await waitFor(() => executions().some((e) => e.job_id === head), 15_000, "head running");
    expect((await fx.producer.cancel(head)).cancelled).toBe(true);
    expect((await jobSettled(fx.redis.client, next)).status).toBe("COMPLETED");
  });

  it("a job given back at shutdown frees its slot", async () => {
    const w = await start(config(noSweep));
    const id = await enqueue("sleep", { ms: 60_000 }, { concurrencyKey: "k", concurrencyLimit: 1 });
    await waitFor(() => executions().some((e) => e.job_id === id), 15_000, "job running");
    expect(await fx.redis.client.zscore("rrq:fc:run:k", id)).not.toBeNull();
    await w.stop();
    workers = [];
    expect(await fx.redis.client.hget(`rrq:job:${id}`, "status")).toBe("PENDING");
    expect(await fx.redis.client.zcard("rrq:fc:run:k")).toBe(0);
    expect(await fx.redis.client.zscore("rrq:queue:default", id)).not.toBeNull();
  });
});

describe("pause", () => {
  it("a paused queue is not claimed from; resume wakes the worker at once", async () => {
    // a poll delay far beyond the wait below: only the resume's wake-up can start the jobs
    const w = await start(config({ default_poll_delay_seconds: 100 }));
    const flow = new FlowStore(fx.redis.client, registerScripts(fx.redis.client));
    await flow.pause("default", "maintenance");
    const ids = [await enqueue("echo", { n: 1 }), await enqueue("echo", { n: 2 })];
    // the enqueues' wake-ups made the worker ask (and find the queue paused)
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(w.of("job:claimed")).toHaveLength(0);
    expect(await fx.redis.client.zcard("rrq:queue:default")).toBe(2);
    await flow.resume("default");
    const hashes = await settledAll(ids);
    expect(hashes.map((h) => h.status)).toEqual(["COMPLETED", "COMPLETED"]);
  });
});

describe("circuit breaker", () => {
  it("opens after N failures, holds jobs without using attempts, then lets a probe run and closes", async () => {
    const changes: Array<OrchestratorEvents["flow:breaker"]> = [];
    await start(
      config({ runner_breakers: { node: { failures: 3, cooldown_seconds: 4 } } }),
      undefined,
      (w) => w.events.on("flow:breaker", (e) => changes.push(e)),
    );
    const failing = [];
    for (let i = 0; i < 3; i++)
      failing.push(await enqueue("fail", { message: "down" }, { maxRetries: 1 }));
    await settledAll(failing);
    await waitFor(
      async () => (await fx.redis.client.hget("rrq:breaker:runner:node", "state")) === "open",
    );
    const held: string[] = [];
    for (let i = 0; i < 5; i++) held.push(await enqueue("echo", { n: i }));
    // all five parked by the open breaker, none claimed
    await waitFor(async () => (await fx.redis.client.zcard("rrq:fc:bwait:runner:node")) === 5);
    for (const id of held) {
      const hash = await fx.redis.client.hgetall(`rrq:job:${id}`);
      expect(hash.status).toBe("PENDING");
      expect(Number(hash.runs ?? 0)).toBe(0);
    }
    // after the cool-down one probe runs; its success closes the breaker and frees the rest
    const hashes = await settledAll(held);
    for (const hash of hashes) {
      expect(hash.status).toBe("COMPLETED");
      expect(hash.runs).toBe("1");
      expect(Number(hash.current_retries ?? 0)).toBe(0);
    }
    const breaker = await fx.redis.client.hgetall("rrq:breaker:runner:node");
    expect(breaker).toMatchObject({ state: "closed", trips: "1" });
    expect(changes.map((c) => c.state)).toEqual(["opened", "closed"]);
    expect(changes[0]!.scope).toBe("runner:node");
  });
});

describe("function breaker", () => {
  it("holds only its function's jobs while open", async () => {
    await start(
      config({ functions: { fail: { breaker: { failures: 2, cooldown_seconds: 60 } } } }),
    );
    const failing = [];
    for (let i = 0; i < 2; i++) failing.push(await enqueue("fail", {}, { maxRetries: 1 }));
    await settledAll(failing);
    await waitFor(
      async () => (await fx.redis.client.hget("rrq:breaker:function:fail", "state")) === "open",
    );
    const held = await enqueue("fail", {}, { maxRetries: 1 });
    const other = await enqueue("echo", { ok: true });
    expect((await jobSettled(fx.redis.client, other)).status).toBe("COMPLETED");
    await waitFor(
      async () => (await fx.redis.client.zscore("rrq:fc:bwait:function:fail", held)) !== null,
    );
    const hash = await fx.redis.client.hgetall(`rrq:job:${held}`);
    expect(hash.status).toBe("PENDING");
    expect(Number(hash.runs ?? 0)).toBe(0);
  });
});

describe("orphan recovery", () => {
  it("frees a recovered job's slot and unparks the job waiting for it", async () => {
    const c = config();
    const store = new JobStore(fx.redis.client);
    const a = await enqueue("echo", {}, { concurrencyKey: "k", concurrencyLimit: 1 });
    // a worker that claimed it and died (its lease is short)
    const claimed = await store.claim("rrq:queue:default", "dead_worker", 1, 100);
    expect(claimed.claimed.map((j) => j.id)).toEqual([a]);
    const b = await enqueue("echo", {}, { concurrencyKey: "k", concurrencyLimit: 1 });
    const second = await store.claim("rrq:queue:default", "other_worker", 1, 10_000);
    expect(second).toMatchObject({ claimed: [], parked: 1 });
    expect(await fx.redis.client.zscore("rrq:fc:wait:k", b)).not.toBeNull();
    await waitFor(async () => (await fx.redis.client.exists(`rrq:lock:job:${a}`)) === 0);
    const events = new EventBus();
    const flow = new FlowHooks(
      new FlowStore(fx.redis.client, store.scripts),
      c,
      events,
      (_what, write) => write(),
    );
    const recovery = new Recovery(store, c, "rescuer", events, flow);
    expect(await recovery.recoverExpiredLeases()).toBe(1);
    expect(await fx.redis.client.zscore("rrq:fc:run:k", a)).toBeNull();
    expect(await fx.redis.client.zscore("rrq:queue:default", b)).not.toBeNull();
    expect(await fx.redis.client.zscore("rrq:queue:default", a)).not.toBeNull();
  });
});

describe("flow sweeper", () => {
  it("one orchestrator a round frees a dead holder's slot for the parked job", async () => {
    const c = config();
    const store = new JobStore(fx.redis.client);
    const flow = new FlowStore(fx.redis.client, store.scripts);
    const events = new EventBus();
    const sweepers = ["w1", "w2"].map(
      (id) => new FlowSweeper(fx.redis.client, flow, c, id, events),
    );
    // nothing parked: a round takes no lead
    await sweepers[0]!.round();
    expect(await fx.redis.client.exists(FLOW_SWEEP_LEADER_KEY)).toBe(0);
    const a = await enqueue("echo", {}, { concurrencyKey: "k", concurrencyLimit: 1 });
    await store.claim("rrq:queue:default", "dead_worker", 1, 100);
    const b = await enqueue("echo", {}, { concurrencyKey: "k", concurrencyLimit: 1 });
    expect(await store.claim("rrq:queue:default", "w", 1, 10_000)).toMatchObject({ parked: 1 });
    await waitFor(async () => (await fx.redis.client.exists(`rrq:lock:job:${a}`)) === 0);
    await Promise.all(sweepers.map((s) => s.round()));
    expect(["w1", "w2"]).toContain(await fx.redis.client.get(FLOW_SWEEP_LEADER_KEY));
    expect(await fx.redis.client.zscore("rrq:fc:run:k", a)).toBeNull();
    expect(await fx.redis.client.zscore("rrq:queue:default", b)).not.toBeNull();
  });
});

describe("queue order", () => {
  it("weights 3:1 give about 3:1 claims under backlog", async () => {
    const items = ["a", "b"].flatMap((queue) =>
      Array.from({ length: 300 }, (_, i) => ({
        functionName: "echo",
        params: { i },
        options: { queueName: queue },
      })),
    );
    await fx.producer.enqueueMany(items);
    const w = await start(config(), ["a:3", "b:1"]);
    await waitFor(() => w.of("job:claimed").length >= 200, 30_000, "200 claims");
    const first = w.of("job:claimed").slice(0, 200);
    const a = first.filter((e) => e.queue === "rrq:queue:a").length;
    const b = first.length - a;
    expect(a / b).toBeGreaterThanOrEqual(2.7);
    expect(a / b).toBeLessThanOrEqual(3.3);
  });

  it("strict order drains the first queue before the next", async () => {
    const items = ["low", "high"].flatMap((queue) =>
      Array.from({ length: 40 }, (_, i) => ({
        functionName: "echo",
        params: { i },
        options: { queueName: queue },
      })),
    );
    await fx.producer.enqueueMany(items);
    const w = await start(config({ strict_queues: true }), ["high", "low"]);
    await waitFor(() => w.of("job:claimed").length >= 80, 30_000, "80 claims");
    const order = w.of("job:claimed").map((e) => e.queue);
    expect(order.lastIndexOf("rrq:queue:high")).toBeLessThan(order.indexOf("rrq:queue:low"));
  });
});
