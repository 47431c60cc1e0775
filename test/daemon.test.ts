/**
 * The real daemon (`rrq worker run`, a subprocess) with the Node runner: startup messages,
 * graceful shutdown on SIGTERM, and configuration errors.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Producer } from "../src/producer/producer.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { NODE_RUNNER, waitFor } from "./support/worker-harness.js";

const RRQ_BIN = fileURLToPath(new URL("../bin/rrq.js", import.meta.url));
let redis: TestRedis;
let dir: string;

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "rrq-daemon-"));
});
afterAll(async () => redis?.stop());

function writeConfig(body: string): string {
  const path = join(dir, `rrq-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(path, body);
  return path;
}

function runCli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [RRQ_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => output };
}

describe("rrq worker run", () => {
  it("on SIGTERM finishes running jobs within the grace period, re-queues the rest without an attempt, exits 0", async () => {
    const config = writeConfig(`
[rrq]
redis_dsn = "${redis.url}"
default_runner_name = "node"
worker_shutdown_grace_period_seconds = 1.5
runner_shutdown_term_grace_seconds = 1
[rrq.runners.node]
cmd = ["${process.execPath}", "${NODE_RUNNER}"]
pool_size = 1
max_in_flight = 8
`);
    const producer = new Producer({ redisDsn: redis.url });
    const short = await producer.enqueue("sleep", { ms: 400 });
    const long = await Promise.all(
      [1, 2, 3].map(() => producer.enqueue("sleep", { ms: 30_000 }, { jobTimeoutSeconds: 120 })),
    );
    const daemon = runCli(["--config", config, "worker", "run", "--log-format", "json"]);
    await waitFor(
      async () => {
        const statuses = await Promise.all(
          [short, ...long].map((id) => redis.client.hget(`rrq:job:${id}`, "status")),
        );
        return statuses.every((s) => s === "ACTIVE");
      },
      20_000,
      "all jobs to start",
    );
    daemon.child.kill("SIGTERM");
    expect(await daemon.exited).toBe(0);
    expect(daemon.output()).toContain("Loading RRQ settings from --config");
    expect(await redis.client.hgetall(`rrq:job:${short}`)).toMatchObject({
      status: "COMPLETED",
      current_retries: "0",
    });
    for (const id of long) {
      const hash = await redis.client.hgetall(`rrq:job:${id}`);
      expect(hash).toMatchObject({
        status: "PENDING",
        current_retries: "0",
        last_error: "Job execution interrupted by worker shutdown. Re-queued.",
      });
      expect(hash.worker_id).toBeUndefined();
      expect(await redis.client.zscore("rrq:queue:default", id)).not.toBeNull();
      expect(await redis.client.exists(`rrq:lock:job:${id}`)).toBe(0);
    }
    const active = await redis.client.keys("rrq:active:jobs:*");
    for (const key of active) expect(await redis.client.zcard(key)).toBe(0);
    await producer.close();
  });

  it("--burst drains the queues it serves and exits 0", async () => {
    const config = writeConfig(`
[rrq]
redis_dsn = "${redis.url}"
default_runner_name = "node"
[rrq.runners.node]
cmd = ["${process.execPath}", "${NODE_RUNNER}"]
pool_size = 1
max_in_flight = 4
`);
    const producer = new Producer({ redisDsn: redis.url });
    const ids = await Promise.all(
      [1, 2, 3].map((n) => producer.enqueue("echo", { n }, { queueName: "burst" })),
    );
    const other = await producer.enqueue("echo", {}, { queueName: "not-served" });
    const run = runCli(["--config", config, "worker", "run", "--burst", "--queue", "burst"]);
    expect(await run.exited).toBe(0);
    for (const id of ids)
      expect(await redis.client.hget(`rrq:job:${id}`, "status")).toBe("COMPLETED");
    expect(await redis.client.hget(`rrq:job:${other}`, "status")).toBe("PENDING");
    await producer.close();
  });

  it("rejects a bad config with exit code 2 and a message naming the key", async () => {
    const config = writeConfig(`[rrq]\nredis_dsn = "${redis.url}"\ndefault_max_retries = "many"\n`);
    const run = runCli(["--config", config, "worker", "run"]);
    expect(await run.exited).toBe(2);
    expect(run.output()).toContain("default_max_retries must be an integer >= 0");
  });

  it("rejects an unknown key, listing the valid ones", async () => {
    const config = writeConfig(
      `[rrq]\nredis_dsn = "${redis.url}"\n[rrq.runners.node]\ncmd = ["x"]\ntcp_prot = 9000\n`,
    );
    const run = runCli(["--config", config, "worker", "run"]);
    expect(await run.exited).toBe(2);
    expect(run.output()).toMatch(
      /unknown key 'runners\.node\.tcp_prot'; valid keys are: .*tcp_port/,
    );
  });

  it("says how to provide a config when none is found", async () => {
    const cwdRun = spawn(process.execPath, [RRQ_BIN, "job", "show", "x"], {
      cwd: dir,
      env: { ...process.env, RRQ_CONFIG: "" },
    });
    let out = "";
    cwdRun.stderr.on("data", (d: Buffer) => (out += d.toString()));
    expect(await new Promise((r) => cwdRun.on("exit", r))).toBe(2);
    expect(out).toContain(
      "RRQ config not found. Provide --config, set RRQ_CONFIG, or add rrq.toml.",
    );
  });

  it("enqueue + job show round trip through the CLI", async () => {
    const config = writeConfig(`[rrq]\nredis_dsn = "${redis.url}"\n`);
    const enq = runCli([
      "--config",
      config,
      "enqueue",
      "echo",
      "--params",
      '{"a":1}',
      "--queue",
      "cli",
      "--max-retries",
      "2",
    ]);
    expect(await enq.exited).toBe(0);
    const id = enq.output().trim();
    const show = runCli(["--config", config, "job", "show", id]);
    expect(await show.exited).toBe(0);
    expect(show.output()).toMatch(/queue_name\s+rrq:queue:cli/);
    const bad = runCli(["--config", config, "enqueue", "echo", "--params", "[1]"]);
    expect(await bad.exited).not.toBe(0);
    expect(bad.output()).toContain("--params must be a JSON object");
    const zero = runCli(["--config", config, "enqueue", "echo", "--timeout", "0"]);
    expect(await zero.exited).toBe(2);
    expect(zero.output()).toContain("--timeout must be a positive integer");
  });
});
