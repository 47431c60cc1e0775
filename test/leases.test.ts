/**
 * Leases, fencing and recovery (issue: nothing lost, nothing run twice by a stale worker),
 * with real orchestrator processes, real runners and a real redis-server.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Producer } from "../src/producer/producer.js";
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
  dir = mkdtempSync(join(tmpdir(), "rrq-lease-"));
});
afterAll(async () => {
  await producer.close();
  await redis.stop();
});
beforeEach(async () => redis.flush());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const LEASE = { lease_seconds: 1, lease_renew_interval_seconds: 0.25 };

/** An orchestrator as a separate process (so it can be killed or stopped). */
function startDaemon(name: string, extra: string, execLog: string): ChildProcess {
  const config = join(dir, `${name}.toml`);
  writeFileSync(
    config,
    `[rrq]
redis_dsn = "${redis.url}"
default_runner_name = "node"
lease_seconds = 1
lease_renew_interval_seconds = 0.25
worker_shutdown_grace_period_seconds = 1
runner_shutdown_term_grace_seconds = 0.5
${extra}
[rrq.runners.node]
cmd = ["${process.execPath}", "${NODE_RUNNER}"]
pool_size = 1
max_in_flight = 4
env = { RRQ_TEST_EXEC_LOG = "${execLog}" }
`,
  );
  const child = spawn(
    process.execPath,
    [RRQ_BIN, "--config", config, "worker", "run", "--log-format", "json"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout.resume();
  child.stderr.resume();
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
  });
  return child;
}

const status = (id: string) => redis.client.hget(`rrq:job:${id}`, "status");
const execLines = (path: string) =>
  existsSync(path)
    ? readFileSync(path, "utf8")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { job_id: string; request_id: string; pid: number })
    : [];

describe("leases", () => {
  it("are renewed while a job runs longer than the lease, and released at the end", async () => {
    const worker = await new RunningWorker(testConfig(redis.url, LEASE)).start();
    cleanups.push(() => worker.stop());
    const id = await producer.enqueue("sleep", { ms: 2500 });
    await waitFor(async () => (await status(id)) === "ACTIVE");
    await new Promise((r) => setTimeout(r, 1500)); // past one lease
    expect(await redis.client.get(`rrq:lock:job:${id}`)).toBe(worker.worker.workerId);
    expect(await redis.client.pttl(`rrq:lock:job:${id}`)).toBeLessThanOrEqual(1000);
    expect(Number(await redis.client.zscore("rrq:leases", id))).toBeGreaterThan(Date.now());
    await waitFor(async () => (await status(id)) === "COMPLETED", 10_000);
    expect(await redis.client.exists(`rrq:lock:job:${id}`)).toBe(0);
    expect(await redis.client.zscore("rrq:leases", id)).toBeNull();
    expect(worker.of("job:fenced")).toEqual([]);
  });

  it("a killed orchestrator's job is recovered from its expired lease by another one, long before RRQ's health TTL", async () => {
    const log = join(dir, "kill.log");
    const a = startDaemon("a", "", log);
    const id = await producer.enqueue("sleep", { ms: 60_000 }, { jobTimeoutSeconds: 120 });
    await waitFor(() => execLines(log).some((l) => l.job_id === id), 20_000, "job start on A");
    const holder = await redis.client.hget(`rrq:job:${id}`, "worker_id");
    a.kill("SIGKILL");
    const runner = {
      cmd: [process.execPath, NODE_RUNNER],
      pool_size: 1,
      max_in_flight: 4,
      env: { RRQ_TEST_EXEC_LOG: log },
    };
    const b = await new RunningWorker(testConfig(redis.url, LEASE, { node: runner })).start();
    cleanups.push(() => b.stop());
    // A's health key lives 70 s; only the lease can explain a prompt recovery.
    expect(await redis.client.ttl(`rrq:health:worker:${holder}`)).toBeGreaterThan(30);
    await waitFor(
      () => execLines(log).filter((l) => l.job_id === id).length === 2,
      15_000,
      "job restarted on B",
    );
    const hash = await redis.client.hgetall(`rrq:job:${id}`);
    expect(hash).toMatchObject({
      status: "ACTIVE",
      worker_id: b.worker.workerId,
      recovery_count: "1",
      current_retries: "0",
    });
    expect(b.of("recovery:done").reduce((n, e) => n + e.recovered, 0)).toBe(1);
  });

  it("a stalled orchestrator (SIGSTOP past its lease) cannot overwrite the result of whoever reclaimed the job", async () => {
    const log = join(dir, "stop.log");
    const a = startDaemon("stale", "", log);
    const slow = await producer.enqueue("sleep", { ms: 1500 }, { jobTimeoutSeconds: 60 });
    await waitFor(
      () => execLines(log).some((l) => l.job_id === slow),
      20_000,
      "slow job start on A",
    );
    a.kill("SIGSTOP");
    const b = await new RunningWorker(
      testConfig(redis.url, LEASE, {
        node: {
          cmd: [process.execPath, NODE_RUNNER],
          pool_size: 1,
          max_in_flight: 4,
          env: { RRQ_TEST_EXEC_LOG: log },
        },
      }),
    ).start();
    cleanups.push(() => b.stop());
    await waitFor(async () => (await status(slow)) === "COMPLETED", 20_000, "B completes the job");
    const completedBy = await redis.client.hget(`rrq:job:${slow}`, "worker_id");
    expect(completedBy).toBe(b.worker.workerId);
    a.kill("SIGCONT"); // A's runner finished meanwhile; A now tries to record its own outcome
    await new Promise((r) => setTimeout(r, 1500));
    const hash = await redis.client.hgetall(`rrq:job:${slow}`);
    expect(hash).toMatchObject({
      status: "COMPLETED",
      worker_id: b.worker.workerId,
      result: '{"slept_ms":1500}',
    });
    const events = await redis.client.xrange(`rrq:events:job:${slow}`, "-", "+");
    expect(events).toHaveLength(1); // one terminal write, by B
  });
});

describe("poison jobs", () => {
  it("are sent to the DLQ once recovered more than max_job_recoveries times", async () => {
    const worker = await new RunningWorker(
      testConfig(redis.url, { ...LEASE, max_job_recoveries: 2 }),
    ).start();
    cleanups.push(() => worker.stop());
    const dead = "rrq_worker_1_gone01";
    const crashOnce = async (id: string) => {
      // Simulate a worker that claimed the job and died: ACTIVE, no lock, an expired lease.
      await redis.client.zrem("rrq:queue:default", id);
      await redis.client.hset(`rrq:job:${id}`, {
        status: "ACTIVE",
        worker_id: dead,
        lease_fence: "999",
      });
      await redis.client.zadd(`rrq:active:jobs:${dead}`, 1, id);
      await redis.client.zadd("rrq:leases", Date.now() - 1, id);
    };
    const id = await producer.enqueue("echo", {}, { deferBySeconds: 3600 });
    for (const expected of ["1", "2"]) {
      await crashOnce(id);
      await waitFor(
        async () => (await redis.client.hget(`rrq:job:${id}`, "recovery_count")) === expected,
        10_000,
      );
      expect(await status(id)).toBe("PENDING");
      await redis.client.zadd("rrq:queue:default", Date.now() + 3_600_000, id);
    }
    await crashOnce(id);
    await waitFor(async () => (await status(id)) === "FAILED", 10_000, "poison DLQ");
    const hash = await redis.client.hgetall(`rrq:job:${id}`);
    expect(hash.last_error).toMatch(/^Job moved to DLQ after 3 recoveries/);
    expect(await redis.client.lrange("rrq:dlq:default", 0, -1)).toContain(id);
    expect(await redis.client.zcard(`rrq:active:jobs:${dead}`)).toBe(0);
    expect(await redis.client.zscore("rrq:leases", id)).toBeNull();
  });
});

describe("timeouts and crashing runners", () => {
  it("a handler that ignores its cancel is killed after the grace and the pool returns to strength", async () => {
    const worker = await new RunningWorker(
      testConfig(redis.url, { ...LEASE, runner_cancel_grace_seconds: 0.5 }),
    ).start();
    cleanups.push(() => worker.stop());
    const id = await producer.enqueue("ignore_cancel", { ms: 30_000 }, { jobTimeoutSeconds: 1 });
    await waitFor(async () => (await status(id)) === "FAILED", 15_000);
    expect(await redis.client.hget(`rrq:job:${id}`, "last_error")).toBe("Job timed out after 1s.");
    expect(worker.of("runner:recycle")).toHaveLength(1);
    await waitFor(() => worker.of("runner:ready").length === 2, 10_000, "replacement runner");
    const after = await producer.enqueue("echo", { ok: true });
    await waitFor(async () => (await status(after)) === "COMPLETED", 10_000);
  });

  it("a runner that crash-loops at start-up is restarted with backoff and burns no attempts", async () => {
    const marker = join(dir, "broken");
    const wrapper = join(dir, "flaky-runner.mjs");
    writeFileSync(
      wrapper,
      `import { existsSync } from "node:fs";\nif (existsSync(${JSON.stringify(marker)})) process.exit(3);\nawait import(${JSON.stringify(NODE_RUNNER)});\n`,
    );
    const config = testConfig(
      redis.url,
      { ...LEASE, runner_connect_timeout_ms: 800 },
      { node: { cmd: [process.execPath, wrapper], pool_size: 1, max_in_flight: 2 } },
    );
    const worker = await new RunningWorker(config).start();
    cleanups.push(() => worker.stop());
    cleanups.push(() => rmSync(marker, { force: true }));
    writeFileSync(marker, "");
    const pid = worker.of("runner:ready")[0]!.pid!;
    process.kill(pid, "SIGKILL");
    await waitFor(() => worker.of("runner:respawn").length >= 4, 15_000, "several respawns");
    const delays = worker.of("runner:respawn").map((e) => e.delayMs);
    expect(delays.slice(0, 4)).toEqual([0, 100, 200, 400]);
    const id = await producer.enqueue("echo", { waited: true });
    await waitFor(
      () => worker.of("job:released").some((e) => e.jobId === id),
      10_000,
      "release without a runner",
    );
    expect(await redis.client.hget(`rrq:job:${id}`, "current_retries")).toBe("0");
    rmSync(marker);
    await waitFor(
      async () => (await status(id)) === "COMPLETED",
      20_000,
      "completion after the runner recovers",
    );
    expect(await redis.client.hget(`rrq:job:${id}`, "current_retries")).toBe("0");
  });
});
