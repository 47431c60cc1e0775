/**
 * Ctrl-C during long CLI work (the real `rrq` process): the command stops after its current
 * batch, says what it did, exits 130, and leaves Redis consistent.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { writeConfig } from "./support/cli-harness.js";
import { waitFor } from "./support/worker-harness.js";

const RRQ_BIN = fileURLToPath(new URL("../bin/rrq.js", import.meta.url));
let redis: TestRedis;
let config: string;

beforeAll(async () => {
  redis = await startRedis();
  config = writeConfig(redis.url);
});
afterAll(async () => redis?.stop());

function start(args: string[]) {
  const child = spawn(process.execPath, [RRQ_BIN, "--config", config, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => out };
}

describe("Ctrl-C", () => {
  it("during a filtered DLQ requeue: exit 130, each job in exactly one place, no tombstones left", async () => {
    const n = 20_000;
    const pipeline = redis.client.pipeline();
    for (let i = 0; i < n; i++) {
      const id = `dead-${i}`;
      pipeline.hset(`rrq:job:${id}`, {
        id,
        function_name: i % 2 ? "odd" : "even",
        status: "FAILED",
        current_retries: "3",
        queue_name: "rrq:queue:q",
        enqueue_time: "2026-01-01T00:00:00+00:00",
        last_error: "x",
      });
      pipeline.lpush("rrq:dlq:default", id);
    }
    await pipeline.exec();
    const run = start([
      "dlq",
      "requeue",
      "--function",
      "odd",
      "--target-queue",
      "back",
      "--batch-size",
      "20",
    ]);
    await waitFor(
      async () => (await redis.client.zcard("rrq:queue:back")) > 0,
      20_000,
      "requeue to start",
    );
    run.child.kill("SIGINT");
    expect(await run.exited).toBe(130);
    expect(run.output()).toMatch(
      /Requeued \d+ job\(s\) to rrq:queue:back\nInterrupted: the remaining jobs are still in the DLQ\./,
    );
    // progress went to stderr while it ran
    expect(run.output()).toMatch(/Requeueing: [\d,]+\/[\d,]+ entries examined, [\d,]+ requeued/);
    const done = Number(/Requeued (\d+)/.exec(run.output())![1]);
    expect(done).toBeGreaterThan(0);
    expect(done).toBeLessThan(n / 2);
    const listed = await redis.client.lrange("rrq:dlq:default", 0, -1);
    expect(listed).toHaveLength(n - done);
    expect(listed).not.toContain("__rrqkit_removed__");
    expect(await redis.client.zcard("rrq:queue:back")).toBe(done);
    const inDlq = new Set(listed);
    const check = redis.client.pipeline();
    for (let i = 0; i < n; i++) check.hget(`rrq:job:dead-${i}`, "status");
    const statuses = (await check.exec())!.map(([, s]) => s);
    statuses.forEach((status, i) => {
      expect(status).toBe(inDlq.has(`dead-${i}`) ? "FAILED" : "PENDING");
    });
    const summary = await redis.client.hgetall("rrq:stats:dlq:default");
    expect(Number(summary.len) + Number(summary.tombstones ?? 0)).toBe(listed.length);
  }, 60_000);

  it("during generate-jobs: exit 130 and the count printed is the count written", async () => {
    await redis.flush();
    const run = start([
      "debug",
      "generate-jobs",
      "--count",
      "500000",
      "--batch-size",
      "200",
      "--status",
      "completed",
    ]);
    await waitFor(async () => (await redis.client.dbsize()) > 1000, 20_000, "generation to start");
    run.child.kill("SIGINT");
    expect(await run.exited).toBe(130);
    expect(run.output()).toMatch(/Generating jobs: [\d,]+\/500,000 \(\d+%\)/);
    const made = Number(/Interrupted: generated (\d+) of 500000 fake jobs/.exec(run.output())?.[1]);
    expect(made).toBeGreaterThan(0);
    expect((await redis.client.keys("rrq:job:test_job_*")).length).toBe(made);
  }, 60_000);
});
