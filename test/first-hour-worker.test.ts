/**
 * The orchestrator fixes from a new user's first hour: routed queues served by default, a
 * bounded SIGTERM while Redis is down, one log line per Redis outage, outcomes written after a
 * reconnect logged, a health status consistent with its active count, runners killed on every
 * exit path, rrqkit told apart from RRQ in `rrq check`, and a dead RRQ worker's jobs recovered as
 * soon as their locks expire. Real redis-servers, real daemons and runner processes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Producer } from "../src/producer/producer.js";
import { freePort } from "../src/runner/ports.js";
import { ORPHAN_SCAN_KEY } from "../src/store/keys.js";
import { rrqBinary, runCli, runRrq, writeConfig as writeCliConfig } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { NODE_RUNNER, RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const RRQ_BIN = fileURLToPath(new URL("../bin/rrq.js", import.meta.url));
let redis: TestRedis;
let producer: Producer;
let dir: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
  dir = mkdtempSync(join(tmpdir(), "rrq-first-hour-"));
});
afterAll(async () => {
  await producer.close();
  await redis.stop();
});
beforeEach(async () => redis.flush());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A redis-server that can go away and come back with its data (SHUTDOWN SAVE, then a restart on
 * the same port and directory), for outages that must not lose the jobs.
 */
class RestartableRedis {
  private server: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<RestartableRedis> {
    const server = new RestartableRedis(
      await freePort(),
      mkdtempSync(join(tmpdir(), "rrq-restartable-")),
    );
    await server.up();
    cleanups.push(() => server.kill());
    return server;
  }

  url(password?: string): string {
    return `redis://${password ? `:${password}@` : ""}127.0.0.1:${this.port}/0`;
  }

  async up(): Promise<void> {
    this.server = spawn(
      "redis-server",
      [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
      ].concat(["--dir", this.dir, "--dbfilename", "dump.rdb"]),
      { stdio: "ignore" },
    );
    await waitFor(
      async () => {
        const probe = new Redis(this.url(), { lazyConnect: true, retryStrategy: () => null });
        probe.on("error", () => {});
        try {
          await probe.connect();
          return (await probe.ping()) === "PONG";
        } catch {
          return false;
        } finally {
          probe.disconnect();
        }
      },
      15_000,
      "redis-server up",
    );
  }

  /** Saves and shuts down (the data comes back with `up()`). */
  async down(): Promise<void> {
    const client = new Redis(this.url(), { retryStrategy: () => null });
    client.on("error", () => {});
    await client.call("SHUTDOWN", "SAVE").catch(() => undefined);
    client.disconnect();
    const server = this.server;
    if (server && server.exitCode === null)
      await new Promise((resolve) => server.once("exit", resolve));
  }

  kill(): void {
    this.server?.kill("SIGKILL");
  }

  client(): Redis {
    const client = new Redis(this.url());
    cleanups.push(() => client.disconnect());
    return client;
  }
}

function writeConfig(body: string): string {
  const path = join(dir, `rrq-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(path, body);
  return path;
}

const nodeRunnerToml = (poolSize = 1) => `
[rrq.runners.node]
cmd = ["${process.execPath}", "${NODE_RUNNER}"]
pool_size = ${poolSize}
max_in_flight = 4
`;

/** `rrq <args>` as a subprocess, with its output collected. */
function daemon(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [RRQ_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  cleanups.push(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return { child, exited, output: () => output };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("routed queues (item 1)", () => {
  it("without --queue, the worker serves the default queue and every routed queue", async () => {
    const config = testConfig(
      redis.url,
      { routing: { emails: "node", images: "other" } },
      {
        other: { cmd: [process.execPath, NODE_RUNNER], pool_size: 1 },
      },
    );
    const worker = await new RunningWorker(config).start();
    cleanups.push(() => worker.stop());
    expect(worker.worker.queues).toEqual([
      "rrq:queue:default",
      "rrq:queue:emails",
      "rrq:queue:images",
    ]);
    const ids = await Promise.all(
      ["default", "emails", "images"].map((queueName) =>
        producer.enqueue("echo", { queueName }, { queueName }),
      ),
    );
    await waitFor(
      async () =>
        (await Promise.all(ids.map((id) => redis.client.hget(`rrq:job:${id}`, "status")))).every(
          (s) => s === "COMPLETED",
        ),
      20_000,
      "every routed job to complete",
    );
    // the health record lists the served queues
    await (worker.worker as unknown as { heartbeat: { tick(): Promise<void> } }).heartbeat.tick();
    const health = JSON.parse(
      (await redis.client.get(`rrq:health:worker:${worker.worker.workerId}`))!,
    ) as { queues: string[] };
    expect(health.queues).toEqual(worker.worker.queues);
    // job events carry the function name (item 5)
    expect(worker.of("job:completed").map((e) => e.functionName)).toEqual(["echo", "echo", "echo"]);
  });

  it("warns at start about routed queues that an explicit --queue list leaves out", async () => {
    const config = testConfig(redis.url, { routing: { emails: "node" }, worker_concurrency: 4 });
    const worker = new RunningWorker(config, ["default"]);
    const warnings: string[] = [];
    worker.events.on("worker:warning", (e) => warnings.push(e.message));
    await worker.start();
    cleanups.push(() => worker.stop());
    expect(worker.worker.queues).toEqual(["rrq:queue:default"]);
    // the config's own warnings (item 6), then the unserved route
    expect(warnings).toEqual([
      expect.stringContaining("worker_concurrency"),
      expect.stringContaining("queue 'emails' is routed to runner 'node' in [rrq.routing]"),
    ]);
  });

  it("a routed queue whose runner is not configured here is not served, and says so (no start failure)", async () => {
    const config = testConfig(redis.url, { routing: { emails: "node", videos: "rust" } });
    const worker = new RunningWorker(config);
    const warnings: string[] = [];
    worker.events.on("worker:warning", (e) => warnings.push(e.message));
    await worker.start();
    cleanups.push(() => worker.stop());
    expect(worker.worker.queues).toEqual(["rrq:queue:default", "rrq:queue:emails"]);
    expect(warnings).toEqual([
      expect.stringContaining(
        "queue 'videos' is routed to runner 'rust' in [rrq.routing], which is not configured here",
      ),
    ]);
  });
});

describe("SIGTERM while Redis is down (items 3 and 8)", () => {
  it("busy: exits non-zero within a bound, naming the job whose result could not be written; one line per outage, no stack, no password", async () => {
    const server = await RestartableRedis.start();
    const config = writeConfig(`
[rrq]
redis_dsn = "${server.url("s3cret-pw")}"
default_runner_name = "node"
worker_shutdown_grace_period_seconds = 1
runner_shutdown_term_grace_seconds = 1
${nodeRunnerToml()}`);
    const local = new Producer({ redisDsn: server.url() });
    const id = await local.enqueue("sleep", { ms: 1500 }, { jobTimeoutSeconds: 60 });
    await local.close();
    const run = daemon(["--config", config, "worker", "run", "--log-format", "json"]);
    const watcher = server.client();
    await waitFor(
      async () => (await watcher.hget(`rrq:job:${id}`, "status").catch(() => null)) === "ACTIVE",
      20_000,
      "the job to start",
    );
    watcher.disconnect();
    server.kill(); // Redis gone for good
    await waitFor(() => run.output().includes("redis unreachable"), 20_000, "the outage line");
    // let the job finish at the runner (its result has nowhere to go) and ioredis retry a while
    await new Promise((resolve) => setTimeout(resolve, 4000));
    run.child.kill("SIGTERM");
    const code = await Promise.race([
      run.exited,
      new Promise((resolve) => setTimeout(() => resolve("hung"), 60_000)),
    ]);
    const out = run.output();
    expect(code, out).toBe(1);
    expect(out).toContain("could not write the outcome of 1 job(s)");
    expect(out).toContain(id);
    expect(out).toMatch(/"function":"sleep"/);
    expect(out).not.toContain("s3cret-pw");
    expect(out).not.toMatch(/\n\s+at /); // no stack traces
    expect(out).not.toContain('"stack"');
    // one line when the outage starts, then rate-limited repeats: a handful, not one per retry
    const outageLines = out.split("\n").filter((l) => /redis (still )?unreachable/.test(l));
    expect(outageLines.length).toBeGreaterThanOrEqual(1);
    expect(outageLines.length).toBeLessThanOrEqual(4);
    // the first names what the dropped socket reported (a reset, a broken pipe, a refusal); the
    // refusal's own line follows when the reason changes
    expect(outageLines[0]).toMatch(/"msg":"redis unreachable \([^)]+\), retrying in [\d.]+s"/);
    expect(outageLines.join("\n")).toMatch(
      /redis (still )?unreachable.*\(ECONNREFUSED 127\.0\.0\.1:\d+\), retrying in [\d.]+s/,
    );
  }, 120_000);

  it("idle: exits promptly with 0", async () => {
    const server = await RestartableRedis.start();
    const config = writeConfig(`
[rrq]
redis_dsn = "${server.url()}"
default_runner_name = "node"
worker_shutdown_grace_period_seconds = 1
${nodeRunnerToml()}`);
    const run = daemon(["--config", config, "worker", "run", "--log-format", "json"]);
    await waitFor(() => run.output().includes("runner ready"), 20_000, "runner ready");
    server.kill();
    await waitFor(() => run.output().includes("redis unreachable"), 20_000, "the outage line");
    run.child.kill("SIGTERM");
    const code = await Promise.race([
      run.exited,
      new Promise((resolve) => setTimeout(() => resolve("hung"), 30_000)),
    ]);
    expect(code, run.output()).toBe(0);
  }, 60_000);
});

describe("a job finishing during an outage (item 8)", () => {
  it("its outcome is written after the reconnect, and logged; the outage is reported once and its end too", async () => {
    const server = await RestartableRedis.start();
    const local = new Producer({ redisDsn: server.url() });
    cleanups.push(() => local.close());
    const worker = await new RunningWorker(testConfig(server.url())).start();
    cleanups.push(() => worker.stop());
    const downs: unknown[] = [];
    const ups: Array<{ downForMs: number }> = [];
    const written: Array<{ jobId: string; functionName: string; write: string; result: string }> =
      [];
    worker.events.on("redis:down", (e) => downs.push(e));
    worker.events.on("redis:up", (e) => ups.push(e));
    worker.events.on("job:written-after-outage", (e) => written.push(e));
    const id = await local.enqueue("sleep", { ms: 1500 }, { jobTimeoutSeconds: 60 });
    await waitFor(() => worker.of("job:dispatched").some((e) => e.jobId === id), 15_000);
    await server.down();
    await waitFor(() => downs.length > 0, 10_000, "redis:down");
    await new Promise((resolve) => setTimeout(resolve, 2500)); // the job ends meanwhile
    await server.up();
    const client = server.client();
    await waitFor(
      async () => (await client.hget(`rrq:job:${id}`, "status")) === "COMPLETED",
      20_000,
      "the job's outcome",
    );
    await waitFor(() => written.length > 0, 5000, "job:written-after-outage");
    expect(written[0]).toMatchObject({
      jobId: id,
      functionName: "sleep",
      write: "complete",
      result: "written",
    });
    expect(ups).toHaveLength(1);
    expect(downs.length).toBeLessThanOrEqual(3);
    expect(worker.of("worker:error")).toEqual([]);
  }, 60_000);
});

describe("health status and rrq check (items 9 and 11b)", () => {
  it("a worker running a job with its queues empty reports 'running', not 'idle (no jobs)', without waiting for the next heartbeat", async () => {
    const worker = await new RunningWorker(testConfig(redis.url)).start();
    cleanups.push(() => worker.stop());
    const record = async () =>
      JSON.parse(
        (await redis.client.get(`rrq:health:worker:${worker.worker.workerId}`)) ?? "{}",
      ) as Record<string, unknown>;
    const id = await producer.enqueue("sleep", { ms: 3000 });
    await waitFor(() => worker.of("job:dispatched").some((e) => e.jobId === id), 15_000);
    await waitFor(() => worker.worker.status === "idle (no jobs)", 5000, "the loop idle");
    // the heartbeat is a minute away: the record is rewritten when the worker becomes busy
    const busy = await waitFor(
      async () => ((await record()).active_jobs === 1 ? record() : undefined),
      5000,
      "the record to show the running job",
    );
    expect(busy).toMatchObject({ status: "running", active_jobs: 1, implementation: "rrqkit" });
    // ... and when it is idle again
    await waitFor(
      async () => (await record()).active_jobs === 0,
      10_000,
      "the record to show no running job",
    );
    expect(["idle (no jobs)", "polling"]).toContain((await record()).status);
  });

  it("rrq check shows each worker's implementation and a status consistent with its active jobs", async () => {
    const record = (extra: object) =>
      JSON.stringify({
        worker_id: "x",
        timestamp: "2026-01-01T00:00:00+00:00",
        status: "idle (no jobs)",
        active_jobs: 1,
        concurrency_limit: 4,
        queues: ["rrq:queue:default"],
        ...extra,
      });
    await redis.client.set("rrq:health:worker:a_rrq", record({}), "EX", 60);
    await redis.client.set(
      "rrq:health:worker:b_kit",
      record({ status: "polling", implementation: "rrqkit", version: "0.1.0" }),
      "EX",
      60,
    );
    const config = writeConfig(`[rrq]\nredis_dsn = "${redis.url}"\n`);
    const text = await runCli(config, ["check"]);
    expect(text.code).toBe(0);
    expect(text.out).toContain(
      [
        "  - Worker ID: a_rrq",
        '    Status: "running" (recorded "idle (no jobs)" beside running jobs)',
        "    Active Jobs: 1",
      ].join("\n"),
    );
    expect(text.out).toContain("    Implementation: rrq (RRQ 0.11 or unknown)");
    expect(text.out).toContain('    Status: "polling"');
    expect(text.out).toContain("    Implementation: rrqkit 0.1.0");
    const json = JSON.parse((await runCli(config, ["check", "--json"])).out) as {
      workers: Array<Record<string, unknown>>;
    };
    expect(json.workers).toEqual([
      expect.objectContaining({
        id: "a_rrq",
        implementation: null,
        version: null,
        implementationLabel: "rrq (RRQ 0.11 or unknown)",
        status: "running",
      }),
      expect.objectContaining({
        id: "b_kit",
        implementation: "rrqkit",
        version: "0.1.0",
        implementationLabel: "rrqkit 0.1.0",
        status: "polling",
      }),
    ]);
  });

  it.skipIf(!rrqBinary())(
    "RRQ's own rrq check reads an rrqkit health record (extra fields are ignored)",
    async () => {
      const worker = await new RunningWorker(testConfig(redis.url)).start();
      cleanups.push(() => worker.stop());
      const config = writeCliConfig(redis.url, "", "tcp_port = 9000");
      const theirs = runRrq(rrqBinary()!, config, ["check"]);
      expect(theirs.code).toBe(0);
      expect(theirs.out).toContain(`Worker ID: ${worker.worker.workerId}`);
      expect(theirs.out).toContain("Active Jobs: 0");
    },
  );
});

describe("every exit path stops the runners (item 11a)", () => {
  it("a second signal kills the runner processes before the daemon exits", async () => {
    const config = writeConfig(`
[rrq]
redis_dsn = "${redis.url}"
default_runner_name = "node"
worker_shutdown_grace_period_seconds = 60
${nodeRunnerToml(2)}`);
    const id = await producer.enqueue("sleep", { ms: 60_000 }, { jobTimeoutSeconds: 120 });
    // a runner without a parent-death guard (as RRQ's rrq-runner) is only stopped by the daemon
    const run = daemon(["--config", config, "worker", "run", "--log-format", "json"], {
      RRQ_RUNNER_PARENT_GUARD: "0",
    });
    await waitFor(
      () => (run.output().match(/"msg":"runner ready"/g) ?? []).length >= 2,
      20_000,
      "two runners",
    );
    const pids = [...run.output().matchAll(/"pid":(\d+)[^\n]*"msg":"runner started"/g)].map((m) =>
      Number(m[1]),
    );
    expect(pids).toHaveLength(2);
    cleanups.push(() => {
      for (const pid of pids) if (alive(pid)) process.kill(-pid, "SIGKILL");
    });
    await waitFor(
      async () => (await redis.client.hget(`rrq:job:${id}`, "status")) === "ACTIVE",
      20_000,
      "the job to start",
    );
    run.child.kill("SIGTERM");
    await waitFor(() => run.output().includes("shutting down"), 10_000, "the first signal");
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(1);
    await waitFor(() => pids.every((pid) => !alive(pid)), 5000, "the runners to be gone");
  }, 60_000);

  it("SIGHUP (a closing terminal) stops the daemon gracefully, runners included", async () => {
    const config = writeConfig(`
[rrq]
redis_dsn = "${redis.url}"
default_runner_name = "node"
${nodeRunnerToml()}`);
    const run = daemon(["--config", config, "worker", "run", "--log-format", "json"], {
      RRQ_RUNNER_PARENT_GUARD: "0",
    });
    await waitFor(() => run.output().includes('"msg":"runner ready"'), 20_000, "the runner");
    const pid = Number(/"pid":(\d+)[^\n]*"msg":"runner started"/.exec(run.output())?.[1]);
    cleanups.push(() => {
      if (alive(pid)) process.kill(-pid, "SIGKILL");
    });
    run.child.kill("SIGHUP");
    expect(await run.exited).toBe(0);
    expect(alive(pid)).toBe(false);
  }, 60_000);

  it("an uncaught exception in the daemon's process kills the runner processes too", async () => {
    const dist = (path: string) =>
      JSON.stringify(new URL(`../dist/src/${path}`, import.meta.url).href);
    const script = join(dir, "crash.mjs");
    writeFileSync(
      script,
      `
const { Worker } = await import(${dist("orchestrator/worker.js")});
const { resolveConfig } = await import(${dist("config/config.js")});
const { EventBus } = await import(${dist("telemetry/events.js")});
const events = new EventBus();
const config = resolveConfig({
  redis_dsn: ${JSON.stringify(redis.url)},
  default_runner_name: "node",
  runners: { node: { cmd: [${JSON.stringify(process.execPath)}, ${JSON.stringify(NODE_RUNNER)}], pool_size: 2 } },
});
const worker = new Worker({ config, events });
let ready = 0;
events.on("runner:ready", () => {
  if (++ready < 2) return;
  console.log("PIDS " + JSON.stringify(worker.runnerPids));
  setTimeout(() => { throw new Error("a bug in the daemon"); }, 10);
});
void worker.run();
`,
    );
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, RRQ_RUNNER_PARENT_GUARD: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise((resolve) => child.on("exit", resolve));
    const pids = JSON.parse(/PIDS (\[[^\]]*\])/.exec(out)?.[1] ?? "[]") as number[];
    cleanups.push(() => {
      for (const pid of pids) if (alive(pid)) process.kill(-pid, "SIGKILL");
    });
    expect(code, out).toBe(1);
    expect(out).toContain("a bug in the daemon");
    expect(pids).toHaveLength(2);
    await waitFor(() => pids.every((pid) => !alive(pid)), 5000, "the runners to be gone");
  }, 60_000);
});

describe("a dead RRQ worker's jobs (item 11c)", () => {
  it("are recovered as soon as their lock expires, not at the next orphan scan a minute later", async () => {
    const dead = "rrq_worker_1_rrqdead";
    const id = await producer.enqueue("echo", { from: "rrq" }, { deferBySeconds: 3600 });
    await redis.client.zrem("rrq:queue:default", id);
    await redis.client.hset(`rrq:job:${id}`, {
      status: "ACTIVE",
      worker_id: dead,
      start_time: new Date().toISOString(),
      next_scheduled_run_time: new Date().toISOString(),
    });
    await redis.client.zadd(`rrq:active:jobs:${dead}`, Math.floor(Date.now() / 1000), id);
    // RRQ's lock: the worker id, never renewed; its health key already expired
    await redis.client.set(`rrq:lock:job:${id}`, dead, "PX", 3000);
    await redis.client.del(ORPHAN_SCAN_KEY);
    const worker = await new RunningWorker(testConfig(redis.url)).start();
    cleanups.push(() => worker.stop());
    // the heartbeat's first scan finds the live lock and leaves the job; the next scan is 60 s away
    await waitFor(
      async () => (await redis.client.hget(`rrq:job:${id}`, "status")) === "COMPLETED",
      20_000,
      "the recovered job to run",
    );
    expect(await redis.client.hget(`rrq:job:${id}`, "last_error")).toBe(
      "Recovered after lock expiry or worker crash.",
    );
  }, 40_000);

  it("are recovered as soon as the health key expires when it outlives the lock (short job timeouts)", async () => {
    const dead = "rrq_worker_2_rrqdead";
    const id = await producer.enqueue("echo", { from: "rrq" }, { deferBySeconds: 3600 });
    await redis.client.zrem("rrq:queue:default", id);
    await redis.client.hset(`rrq:job:${id}`, {
      status: "ACTIVE",
      worker_id: dead,
      start_time: new Date().toISOString(),
      next_scheduled_run_time: new Date().toISOString(),
    });
    await redis.client.zadd(`rrq:active:jobs:${dead}`, Math.floor(Date.now() / 1000), id);
    // the lock is already gone; the dead worker's health key has 2.5 s left
    await redis.client.set(`rrq:health:worker:${dead}`, "{}", "PX", 2500);
    await redis.client.del(ORPHAN_SCAN_KEY);
    const worker = await new RunningWorker(testConfig(redis.url)).start();
    cleanups.push(() => worker.stop());
    await waitFor(
      async () => (await redis.client.hget(`rrq:job:${id}`, "status")) === "COMPLETED",
      20_000,
      "the recovered job to run",
    );
    expect(await redis.client.exists(`rrq:health:worker:${dead}`)).toBe(0);
  }, 40_000);
});
