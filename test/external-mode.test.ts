/**
 * External runner mode (RRQ's `runner_management_mode = "external"`): the orchestrator connects
 * to a runner someone else started, and reconnects when that runner restarts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import { ConfigError } from "../src/errors.js";
import { Producer } from "../src/producer/producer.js";
import { freePort } from "../runners/node/test/support/runner-process.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { NODE_RUNNER, RunningWorker, waitFor } from "./support/worker-harness.js";

let redis: TestRedis;
let producer: Producer;
beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
});
afterAll(async () => {
  await producer.close();
  await redis.stop();
});

/**
 * Whether process `pid` holds the socket listening on 127.0.0.1:`port` (Linux: the listener's
 * inode in /proc/net/tcp among the process's open sockets).
 */
function listensOn(pid: number, port: number): boolean {
  if (!existsSync("/proc/net/tcp")) return true; // not Linux: the worker's connect retries cover it
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === local && f[3] === "0A") // 0A: LISTEN
    .map((f) => `socket:[${f[9]}]`);
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return inodes.includes(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

/**
 * Starts a runner "someone else" runs (no parent guard tied to this test) on `port` (default: a
 * free one) and resolves once that runner listens there: a free port can be taken by a parallel
 * test file's listener before the runner binds it, and the worker would then quietly use that
 * listener. A fixed port that is taken fails; a free one is retried.
 */
async function startRunner(fixedPort?: number): Promise<{ port: number; child: ChildProcess }> {
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ?? (await freePort());
    const child = spawn(process.execPath, [NODE_RUNNER, "--tcp-socket", `127.0.0.1:${port}`], {
      stdio: "ignore",
      env: { ...process.env, RRQ_RUNNER_PARENT_GUARD: "0" },
    });
    const deadline = Date.now() + 10_000;
    while (child.exitCode === null && Date.now() < deadline) {
      if (listensOn(child.pid!, port)) return { port, child };
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    if (fixedPort !== undefined || attempt >= 5)
      throw new Error(`the runner started on port ${port} is not listening there`);
  }
}

describe("external mode", () => {
  it("uses an already running runner and reconnects after it restarts", async () => {
    const started = await startRunner();
    const port = started.port;
    let runner = started.child;
    const config = resolveConfig({
      redis_dsn: redis.url,
      default_runner_name: "ext",
      runner_management_mode: "external",
      runner_connect_timeout_ms: 10_000,
      runners: { ext: { tcp_host: "127.0.0.1", tcp_port: port, max_in_flight: 4 } },
    });
    expect(config.runners.ext).toMatchObject({ poolSize: 1, cmd: [] });
    const worker = await new RunningWorker(config).start();
    try {
      const first = await producer.enqueue("echo", { n: 1 });
      expect(await producer.waitForCompletion(first, { timeoutSeconds: 10 })).toMatchObject({
        status: "COMPLETED",
        result: { n: 1 },
      });
      expect(worker.of("runner:spawn")).toEqual([]);

      runner.kill("SIGKILL");
      // ">= 1": the pool reconnects at once, and a reconnect can still reach the dying process's
      // listening socket and drop again, so a second exit may follow within milliseconds
      await waitFor(() => worker.of("runner:exit").length >= 1, 10_000, "connection drop noticed");
      runner = (await startRunner(port)).child;
      const second = await producer.enqueue("echo", { n: 2 });
      expect(await producer.waitForCompletion(second, { timeoutSeconds: 15 })).toMatchObject({
        status: "COMPLETED",
        result: { n: 2 },
      });
      // runner:ready follows the slot's readiness by up to 50 ms (the wait for a hello frame,
      // which RRQ-style runners never send), so the second job can finish before it is emitted.
      await waitFor(() => worker.of("runner:ready").length >= 2, 5000, "the reconnect reported");
    } finally {
      await worker.stop();
      runner.kill("SIGKILL");
    }
  });

  it("refuses a non-loopback host that allowed_hosts does not list, when the config is read", () => {
    const raw = (allowed: string[]) => ({
      redis_dsn: redis.url,
      runner_management_mode: "external",
      runners: { ext: { tcp_host: "10.1.2.3", tcp_port: 9000, allowed_hosts: allowed } },
    });
    expect(() => resolveConfig(raw([]))).toThrow(ConfigError);
    expect(() => resolveConfig(raw([]))).toThrow(
      /runners\.ext\.tcp_host '10\.1\.2\.3' is not loopback; list it in allowed_hosts/,
    );
    expect(resolveConfig(raw(["10.1.2.3"])).runners.ext!.tcpHost).toBe("10.1.2.3");
  });
});
