/**
 * Quiet mode and lifecycle events (issue 20 item 6, design §E): `rrq worker quiet|resume`,
 * the quiet key re-read at heartbeat, SIGTSTP, the health record's `quiet`, `rrq check`, and the
 * worker's lifecycle events. Real redis-server, real runner processes.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { EventName, OrchestratorEvents } from "../src/telemetry/events.js";
import { Producer } from "../src/producer/producer.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const CANCEL_RUNNER = fileURLToPath(new URL("./fixtures/cancel-runner.mjs", import.meta.url));
const RRQ_BIN = fileURLToPath(new URL("../bin/rrq.js", import.meta.url));

let redis: TestRedis;
let producer: Producer;
let cliConfig: string;
const workers: RunningWorker[] = [];

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
  cliConfig = writeConfig(redis.url);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await redis.flush();
});
afterAll(async () => {
  await producer?.close();
  await redis?.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A worker with the cancel fixture runner, and a recorder for any events. */
function newWorker(extra: Record<string, unknown> = {}) {
  const config = testConfig(redis.url, extra, {
    node: { cmd: [process.execPath, CANCEL_RUNNER], pool_size: 1, max_in_flight: 8 },
  });
  const worker = new RunningWorker(config);
  workers.push(worker);
  const record = <E extends EventName>(name: E): OrchestratorEvents[E][] => {
    const seen: OrchestratorEvents[E][] = [];
    worker.events.on(name, (e) => seen.push(e));
    return seen;
  };
  return { worker, record, id: worker.worker.workerId };
}

const health = async (id: string) =>
  JSON.parse((await redis.client.get(`rrq:health:worker:${id}`)) ?? "{}") as Record<
    string,
    unknown
  >;

describe("rrq worker quiet / resume", () => {
  it("a quiet orchestrator claims nothing more, its in-flight job finishes; resume claims again", async () => {
    const { worker, record, id } = newWorker();
    const quiet = record("worker:quiet");
    const resumed = record("worker:resumed");
    await worker.start();
    const inflight = await producer.enqueue("wait_cancel", { ms: 800 });
    await waitFor(() => worker.of("job:dispatched").length === 1, 10_000, "dispatch");

    const said = await runCli(cliConfig, ["worker", "quiet", id]);
    expect(said).toMatchObject({ code: 0 });
    expect(said.out).toContain(`Worker '${id}' is quiet`);
    await waitFor(() => worker.worker.quiet, 5000, "quiet");
    expect(quiet).toEqual([{ workerId: id, source: "command" }]);
    expect(await redis.client.get(`rrq:quiet:worker:${id}`)).toMatch(/^\d{4}-\d\d-\d\dT/);

    // new jobs publish their wake-up: a quiet worker still claims none of them
    const waiting = await Promise.all([1, 2, 3].map((n) => producer.enqueue("echo", { n })));
    expect(await producer.waitForCompletion(inflight, { timeoutSeconds: 10 })).toMatchObject({
      status: "COMPLETED",
      result: { finished: true },
    });
    await sleep(1000);
    for (const job of waiting)
      expect(await redis.client.hget(`rrq:job:${job}`, "status")).toBe("PENDING");
    expect(worker.of("job:claimed").map((e) => e.jobId)).toEqual([inflight]);

    // the health record and rrq check say so
    await waitFor(async () => (await health(id)).quiet === true, 5000, "health record quiet");
    expect((await health(id)).status).toBe("quiet");
    const check = await runCli(cliConfig, ["check"]);
    expect(check.out).toMatch(new RegExp(`Worker ID: ${id}[\\s\\S]*Quiet: yes, since \\d{4}-`));
    const checkJson = JSON.parse((await runCli(cliConfig, ["check", "--json"])).out) as {
      workers: { id: string; quiet: boolean; quietSince: string | null }[];
    };
    expect(checkJson.workers.find((w) => w.id === id)).toMatchObject({ quiet: true });

    const back = await runCli(cliConfig, ["worker", "resume", id]);
    expect(back).toMatchObject({ code: 0, out: `Worker '${id}' resumed\n` });
    for (const job of waiting)
      expect(await producer.waitForCompletion(job, { timeoutSeconds: 10 })).toMatchObject({
        status: "COMPLETED",
      });
    expect(resumed).toEqual([{ workerId: id }]);
    expect(await redis.client.exists(`rrq:quiet:worker:${id}`)).toBe(0);
    await waitFor(async () => (await health(id)).quiet === false, 5000, "health record resumed");
    expect((await runCli(cliConfig, ["check"])).out).not.toContain("Quiet:");
  });

  it("the key is the truth: set or deleted without a message, the next heartbeat applies it", async () => {
    const { worker, id } = newWorker({ worker_health_check_interval_seconds: 0.5 });
    await worker.start();
    await redis.client.set(`rrq:quiet:worker:${id}`, "2026-01-01T00:00:00+00:00");
    await waitFor(() => worker.worker.quiet, 5000, "quiet from the key");
    const job = await producer.enqueue("echo", {});
    await sleep(800);
    expect(await redis.client.hget(`rrq:job:${job}`, "status")).toBe("PENDING");
    await redis.client.del(`rrq:quiet:worker:${id}`);
    await waitFor(() => !worker.worker.quiet, 5000, "resumed from the key");
    expect(await producer.waitForCompletion(job, { timeoutSeconds: 10 })).toMatchObject({
      status: "COMPLETED",
    });
  });

  it("SIGTSTP makes the worker quiet and writes its key; rrq worker resume undoes it", async () => {
    // if the worker did not catch it, SIGTSTP would stop this test process: keep it alive
    const keepRunning = () => {};
    process.on("SIGTSTP", keepRunning);
    try {
      const { worker, record, id } = newWorker();
      const quiet = record("worker:quiet");
      await worker.start();
      process.kill(process.pid, "SIGTSTP");
      await waitFor(() => worker.worker.quiet, 5000, "quiet after SIGTSTP");
      expect(quiet).toEqual([{ workerId: id, source: "signal" }]);
      await waitFor(() => redis.client.exists(`rrq:quiet:worker:${id}`), 5000, "quiet key written");
      await waitFor(async () => (await health(id)).quiet === true, 5000, "health record quiet");
      const job = await producer.enqueue("echo", {});
      await sleep(500);
      expect(await redis.client.hget(`rrq:job:${job}`, "status")).toBe("PENDING");
      expect((await runCli(cliConfig, ["worker", "resume", id])).code).toBe(0);
      expect(await producer.waitForCompletion(job, { timeoutSeconds: 10 })).toMatchObject({
        status: "COMPLETED",
      });
      expect(worker.worker.quiet).toBe(false);
    } finally {
      process.off("SIGTSTP", keepRunning);
    }
  });

  it("--all, unknown workers, RRQ's workers and a missing argument", async () => {
    const { worker, id } = newWorker();
    await worker.start();
    // an RRQ 0.11 worker's record (no implementation field): it has no quiet mode
    await redis.client.set(
      "rrq:health:worker:rrq_worker_1_abcdef",
      JSON.stringify({ worker_id: "rrq_worker_1_abcdef", status: "running", active_jobs: 0 }),
      "EX",
      60,
    );
    const all = await runCli(cliConfig, ["worker", "quiet", "--all"]);
    expect(all.code).toBe(0);
    expect(all.out).toContain(`Worker '${id}' is quiet`);
    expect(all.out).toContain("Worker 'rrq_worker_1_abcdef' is not an rrqkit orchestrator");
    await waitFor(() => worker.worker.quiet, 5000, "quiet");
    expect(await redis.client.exists("rrq:quiet:worker:rrq_worker_1_abcdef")).toBe(0);

    const rrqOne = await runCli(cliConfig, ["worker", "quiet", "rrq_worker_1_abcdef"]);
    expect(rrqOne.code).toBe(1);
    const unknown = await runCli(cliConfig, ["worker", "quiet", "nope"]);
    expect(unknown).toMatchObject({ code: 1 });
    expect(unknown.out).toContain("No live worker 'nope'");
    const neither = await runCli(cliConfig, ["worker", "resume"]);
    expect(neither.code).not.toBe(0);
    expect(neither.err).toContain("give a worker id or --all");
    const both = await runCli(cliConfig, ["worker", "resume", id, "--all"]);
    expect(both.code).not.toBe(0);

    // a dead worker's leftover key: resume removes it
    await redis.client.set("rrq:quiet:worker:gone", "2026-01-01T00:00:00+00:00");
    const gone = await runCli(cliConfig, ["worker", "resume", "gone"]);
    expect(gone).toMatchObject({ code: 0 });
    expect(await redis.client.exists("rrq:quiet:worker:gone")).toBe(0);

    const resumeAll = await runCli(cliConfig, ["worker", "resume", "--all"]);
    expect(resumeAll.out).toContain(`Worker '${id}' resumed`);
    await waitFor(() => !worker.worker.quiet, 5000, "resumed");
  });
});

describe("the daemon (rrq worker run, a subprocess)", () => {
  it("SIGTSTP: quiet, logged; SIGTERM: a clean exit that deletes the quiet key", async () => {
    const child = spawn(
      process.execPath,
      [RRQ_BIN, "--config", cliConfig, "worker", "run", "--log-format", "json"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      const id = await waitFor(
        async () => (await redis.client.keys("rrq:health:worker:*"))[0]?.split(":").pop(),
        20_000,
        "the daemon's health record",
      );
      await waitFor(() => output.includes("worker started"), 10_000, "worker started line");
      child.kill("SIGTSTP");
      await waitFor(() => redis.client.exists(`rrq:quiet:worker:${id}`), 10_000, "quiet key");
      await waitFor(() => output.includes("quiet (SIGTSTP)"), 10_000, "quiet line");
      const job = await producer.enqueue("echo", {});
      await sleep(500);
      expect(await redis.client.hget(`rrq:job:${job}`, "status")).toBe("PENDING");
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(output).toContain("worker stopping (SIGTERM)");
      expect(await redis.client.exists(`rrq:quiet:worker:${id}`)).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("lifecycle events", () => {
  it("started, heartbeat (with quiet), stopping; a clean exit deletes the quiet key", async () => {
    const { worker, record, id } = newWorker({ worker_health_check_interval_seconds: 0.5 });
    const started = record("worker:started");
    const heartbeats = record("worker:heartbeat");
    const stopping = record("worker:stopping");
    await worker.start();
    await waitFor(() => started.length === 1, 5000, "worker:started");
    expect(started).toEqual([{ workerId: id, queues: ["rrq:queue:default"] }]);
    await waitFor(() => heartbeats.length > 0, 5000, "worker:heartbeat");
    expect(heartbeats[0]).toEqual({ workerId: id, active: 0, quiet: false });
    worker.worker.quietNow();
    await waitFor(() => heartbeats.some((h) => h.quiet), 5000, "a quiet heartbeat");
    await waitFor(() => redis.client.exists(`rrq:quiet:worker:${id}`), 5000, "quiet key written");
    workers.splice(workers.indexOf(worker), 1);
    await worker.stop();
    expect(stopping).toEqual([{ workerId: id, reason: "shutdown requested" }]);
    expect(await redis.client.exists(`rrq:quiet:worker:${id}`)).toBe(0);
  });
});
