/**
 * External runner mode (RRQ's `runner_management_mode = "external"`): the orchestrator connects
 * to a runner someone else started, and reconnects when that runner restarts.
 */
import { spawn, type ChildProcess } from "node:child_process";
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

function startRunner(port: number): ChildProcess {
  // Started by "someone else": no parent guard tie to this test's lifetime needed.
  return spawn(process.execPath, [NODE_RUNNER, "--tcp-socket", `127.0.0.1:${port}`], {
    stdio: "ignore",
    env: { ...process.env, RRQ_RUNNER_PARENT_GUARD: "0" },
  });
}

describe("external mode", () => {
  it("uses an already running runner and reconnects after it restarts", async () => {
    const port = await freePort();
    let runner = startRunner(port);
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
      await waitFor(() => worker.of("runner:exit").length === 1, 10_000, "connection drop noticed");
      runner = startRunner(port);
      const second = await producer.enqueue("echo", { n: 2 });
      expect(await producer.waitForCompletion(second, { timeoutSeconds: 15 })).toMatchObject({
        status: "COMPLETED",
        result: { n: 2 },
      });
      expect(worker.of("runner:ready").length).toBeGreaterThanOrEqual(2);
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
