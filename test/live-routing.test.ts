/**
 * Routing by capability end to end (issue 23): a real redis-server, real orchestrators and
 * raw-frame runner subprocesses (test/fixtures/live-raw-runner.mjs) announcing tags.
 */
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { resolveConfig, type ResolvedConfig } from "../src/config/config.js";
import { Producer } from "../src/producer/producer.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { jobSettled, RunningWorker, waitFor } from "./support/worker-harness.js";

const RAW = fileURLToPath(new URL("./fixtures/live-raw-runner.mjs", import.meta.url));

let redis: TestRedis;
let producer: Producer;
let workers: RunningWorker[] = [];

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
});
afterAll(async () => {
  await producer.close();
  await redis.stop();
});
beforeEach(async () => redis.flush());
afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  workers = [];
});

function config(extra: Record<string, unknown> = {}): ResolvedConfig {
  return resolveConfig({
    redis_dsn: redis.url,
    default_runner_name: "raw",
    default_job_timeout_seconds: 20,
    worker_shutdown_grace_period_seconds: 2,
    runner_shutdown_term_grace_seconds: 1,
    flow_sweep_interval_seconds: 0.1,
    runners: {
      raw: {
        cmd: [process.execPath, RAW],
        transport: "tcp",
        tcp_port: 20000 + Math.floor(Math.random() * 20000),
        pool_size: 1,
        max_in_flight: 8,
      },
    },
    ...extra,
  });
}

async function start(c: ResolvedConfig): Promise<RunningWorker> {
  const worker = new RunningWorker(c);
  workers.push(worker);
  return worker.start();
}

describe("requires", () => {
  it("validates tags like the runners' (H-style, snake_case option)", async () => {
    await expect(producer.enqueue("echo", {}, { requires: ["has space"] })).rejects.toThrow(
      /requires: "has space" is no tag/,
    );
    await expect(
      producer.enqueue("echo", {}, { requires: Array.from({ length: 17 }, (_, i) => `t${i}`) }),
    ).rejects.toThrow(/at most 16/);
    const id = await producer.enqueue("echo", {}, { requires: ["z", "gpu", "gpu"] });
    expect(await redis.client.hget(`rrq:job:${id}`, "requires")).toBe('["gpu","z"]');
    const cli = await runCli(writeConfig(redis.url), [
      "enqueue",
      "echo",
      "--requires",
      "z",
      "--requires",
      "gpu",
      "--json",
    ]);
    expect(cli.code).toBe(0);
    const { job_id: cliId } = JSON.parse(cli.out) as { job_id: string };
    expect(await redis.client.hget(`rrq:job:${cliId}`, "requires")).toBe('["gpu","z"]');
    const bad = await runCli(writeConfig(redis.url), ["enqueue", "echo", "--requires", "a b"]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/is no tag/);
  });

  it("a job requiring gpu waits without an attempt until a gpu-tagged runner joins, then starts within a second", async () => {
    const plain = await start(config());
    const other = await producer.enqueue("echo", {});
    const id = await producer.enqueue("echo", {}, { requires: ["gpu"] });
    await jobSettled(redis.client, other);
    const parked = await waitFor(async () => {
      const hash = await redis.client.hgetall(`rrq:job:${id}`);
      return hash.fc_wait ? hash : undefined;
    });
    expect(parked).toMatchObject({ status: "PENDING", fc_wait: "rrq:fc:needs:raw:gpu" });
    expect(parked.runs).toBeUndefined();
    expect(await redis.client.sismember("rrq:fc:waiting", "rrq:fc:needs:raw:gpu")).toBe(1);
    // no busy loop: the sweeper and the claims leave it parked
    await new Promise((r) => setTimeout(r, 500));
    expect(await redis.client.hget(`rrq:job:${id}`, "runs")).toBeNull();
    const shown = await runCli(writeConfig(redis.url), ["job", "show", id]);
    expect(shown.out).toMatch(/Waiting: waiting for a runner with gpu/);
    await plain.stop();
    workers = [];

    const gpu = new RunningWorker(config({ runner_tags: { raw: ["gpu", "region:eu"] } }));
    workers.push(gpu);
    let readyAt = 0;
    gpu.events.on("runner:ready", () => (readyAt ||= Date.now()));
    await gpu.start();
    const done = await jobSettled(redis.client, id);
    expect(done.status).toBe("COMPLETED");
    expect(done.runs).toBe("1");
    const startedAt = Date.parse(done.start_time!);
    expect(startedAt - readyAt).toBeLessThan(1000);
    expect(await redis.client.sismember("rrq:fc:waiting", "rrq:fc:needs:raw:gpu")).toBe(0);
  });

  it("in a cluster mixing workers with and without the tags, waiting jobs start within a second of a capable runner joining", async () => {
    const plain = [await start(config()), await start(config())];
    const ids = await Promise.all(
      Array.from({ length: 10 }, () => producer.enqueue("echo", {}, { requires: ["gpu"] })),
    );
    await waitFor(async () => (await redis.client.zcard("rrq:fc:needs:raw:gpu")) === 10);
    const gpu = new RunningWorker(config({ runner_tags: { raw: ["gpu"] } }));
    workers.push(gpu);
    let readyAt = 0;
    gpu.events.on("runner:ready", () => (readyAt ||= Date.now()));
    await gpu.start();
    for (const id of ids) {
      const done = await jobSettled(redis.client, id);
      expect(done.runs).toBe("1");
      expect(Date.parse(done.start_time!) - readyAt).toBeLessThan(1000);
    }
    expect(plain.every((w) => w.of("job:dispatched").length === 0)).toBe(true);
  });

  it("a worker with the tags runs such jobs at once; one without them leaves them to it", async () => {
    await start(config({ runner_tags: { raw: ["gpu"] } }));
    const t0 = Date.now();
    const id = await producer.enqueue("echo", {}, { requires: ["gpu"] });
    const done = await jobSettled(redis.client, id);
    expect(done.status).toBe("COMPLETED");
    expect(Date.now() - t0).toBeLessThan(2000);
    const ids = await Promise.all(
      Array.from({ length: 5 }, () => producer.enqueue("echo", {}, { requires: ["gpu"] })),
    );
    await start(config());
    for (const j of ids) expect((await jobSettled(redis.client, j)).status).toBe("COMPLETED");
  });
});
