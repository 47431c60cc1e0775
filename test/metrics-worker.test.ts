/**
 * Metrics end to end (README "Metrics"): a real redis-server, a real worker with its
 * `/metrics` endpoint (metrics_port) and OTLP metrics export pointed at a test receiver, and
 * the Node conformance runner. A scrape during the run must count exactly the jobs processed,
 * and the OTLP receiver must get the same numbers.
 */
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Producer } from "../src/producer/producer.js";
import { RedisGaugeSource } from "../src/metrics/gauges.js";
import { Worker, type ShutdownReport } from "../src/orchestrator/worker.js";
import { EventBus } from "../src/telemetry/events.js";
import { OtlpMetricsReceiver, type MetricPoint } from "./support/otlp-metrics-receiver.js";
import { parseExposition, sample, total, type Sample } from "./support/prometheus-text.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { testConfig, waitFor } from "./support/worker-harness.js";

let redis: TestRedis;
let producer: Producer;
let receiver: OtlpMetricsReceiver;

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
  receiver = await OtlpMetricsReceiver.start();
});
afterAll(async () => {
  await producer.close();
  await receiver.close();
  await redis.stop();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function scrape(url: string): Promise<Sample[]> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  return parseExposition(await response.text());
}

const sumOf = (points: MetricPoint[], attrs: Record<string, string> = {}) =>
  points
    .filter((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))
    .reduce((s, p) => s + (p.kind === "histogram" ? p.count : p.value), 0);

describe("worker metrics", () => {
  it("a scrape during the run counts the jobs processed; OTLP gets the same", async () => {
    const port = await freePort();
    const config = testConfig(redis.url, {
      metrics_port: port,
      default_job_timeout_seconds: 10,
      base_retry_delay_seconds: 0.01,
      max_retry_delay_seconds: 0.02,
      default_max_retries: 3,
    });
    const events = new EventBus();
    const started: unknown[] = [];
    events.on("metrics:started", (e) => started.push(e));
    const worker = new Worker({
      config,
      events,
      quietOnSigtstp: false,
      metricsEnv: {
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.url,
        OTEL_METRIC_EXPORT_INTERVAL: "60000",
        OTEL_SERVICE_NAME: "rrq-metrics-test",
      },
    });
    const done: Promise<ShutdownReport> = worker.run();
    try {
      await waitFor(() => worker.status !== "initializing", 30_000, "worker start");
      const url = worker.metrics?.url;
      expect(url).toBe(`http://127.0.0.1:${port}/metrics`);
      expect(started).toEqual([{ url, otlpEndpoint: receiver.url }]);

      // deferred jobs stay in the queue: depth 4, none due
      for (let i = 0; i < 4; i++)
        await producer.enqueue("echo", { i }, { deferBySeconds: 3600, queueName: "later" });
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push(await producer.enqueue("echo", { i }));
      for (let i = 0; i < 3; i++)
        ids.push(await producer.enqueue("fail_permanently", { message: `no ${i}` }));
      for (let i = 0; i < 2; i++)
        ids.push(await producer.enqueue("flaky", { fail_until_attempt: 1 }));

      // 12 + 2 completed, 3 dead, 2 retried: 19 claims
      const d = { queue: "default", function: "echo" };
      const settled = await waitFor(
        async () => {
          const m = await scrape(url!);
          return total(m, "rrq_jobs_completed_total") === 14 &&
            total(m, "rrq_jobs_dead_total") === 3
            ? m
            : undefined;
        },
        20_000,
        "the jobs to be counted",
      );
      const m = settled;
      expect(sample(m, "rrq_jobs_completed_total", d)).toBe(12);
      expect(sample(m, "rrq_jobs_completed_total", { queue: "default", function: "flaky" })).toBe(
        2,
      );
      expect(sample(m, "rrq_jobs_retried_total", { queue: "default", function: "flaky" })).toBe(2);
      expect(
        sample(m, "rrq_jobs_dead_total", { queue: "default", function: "fail_permanently" }),
      ).toBe(3);
      expect(total(m, "rrq_jobs_failed_total")).toBe(5);
      expect(total(m, "rrq_jobs_started_total")).toBe(19);
      expect(total(m, "rrq_job_duration_seconds_count")).toBe(19);
      expect(total(m, "rrq_job_duration_seconds_count", { outcome: "dead" })).toBe(3);
      expect(total(m, "rrq_job_wait_seconds_count")).toBe(19);

      // what Redis says agrees: 14 COMPLETED, 3 in the DLQ
      const statuses = await Promise.all(
        ids.map((id) => redis.client.hget(`rrq:job:${id}`, "status")),
      );
      expect(statuses.filter((s) => s === "COMPLETED")).toHaveLength(14);
      expect(await redis.client.llen("rrq:dlq:default")).toBe(3);

      // gauges (a reading is reused for up to 1 s): the deferred queue, the drained default
      // queue, and in-flight while a job sleeps
      const drained = await waitFor(
        async () => {
          const now = await scrape(url!);
          return sample(now, "rrq_queue_depth", { queue: "default" }) === 0 ? now : undefined;
        },
        5_000,
        "the default queue's depth to read 0",
      );
      expect(sample(drained, "rrq_queue_depth", { queue: "later" })).toBe(4);
      expect(sample(drained, "rrq_queue_oldest_age_seconds", { queue: "later" })).toBe(0);
      await producer.enqueue("sleep", { ms: 1500 });
      const busy = await waitFor(
        async () => {
          const now = await scrape(url!);
          return sample(now, "rrq_runner_in_flight", { runner: "node" }) === 1 ? now : undefined;
        },
        10_000,
        "a request in flight",
      );
      expect(sample(busy, "rrq_runner_in_flight", { runner: "node" })).toBe(1);

      // OTLP: the same instruments, the same numbers
      await worker.metrics!.otel!.flush();
      expect(receiver.errors).toEqual([]);
      const completed = receiver.latest("rrq.jobs.completed");
      expect(sumOf(completed)).toBe(14);
      expect(
        sumOf(completed, { "rrq.function": "echo", "messaging.destination.name": "default" }),
      ).toBe(12);
      expect(completed[0]!.attributes["messaging.system"]).toBe("redis");
      expect(completed[0]!.resource["service.name"]).toBe("rrq-metrics-test");
      expect(sumOf(receiver.latest("rrq.jobs.dead"))).toBe(3);
      expect(sumOf(receiver.latest("rrq.jobs.retried"))).toBe(2);
      expect(sumOf(receiver.latest("rrq.jobs.failed"))).toBe(5);
      expect(sumOf(receiver.latest("messaging.client.consumed.messages"))).toBeGreaterThanOrEqual(
        19,
      );
      const duration = receiver.latest("messaging.process.duration");
      expect(duration[0]!.kind).toBe("histogram");
      expect(duration[0]!.unit).toBe("s");
      expect(sumOf(duration, { "rrq.outcome": "dead" })).toBe(3);
      expect(sumOf(receiver.latest("rrq.job.wait.duration"))).toBeGreaterThanOrEqual(19);
      expect(
        sumOf(receiver.latest("rrq.queue.depth"), { "messaging.destination.name": "later" }),
      ).toBe(4);
      expect(receiver.latest("rrq.runner.in_flight").length).toBeGreaterThan(0);
    } finally {
      worker.requestShutdown();
      await done;
    }
    // the endpoint is closed with the worker
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  }, 60_000);

  it("queue gauges: registry queues and the worker's, depth and the oldest due job's age", async () => {
    await redis.flush();
    const now = 1_700_000_000_000;
    await redis.client.sadd("rrq:queues", "rrq:queue:aged");
    await redis.client.zadd("rrq:queue:aged", now - 5000, "a", now - 1000, "b", now + 60_000, "c");
    const source = new RedisGaugeSource({
      redis: redis.client,
      queues: ["mine"],
      inFlight: () => new Map([["node", 3]]),
      now: () => now,
    });
    const readings = await source.read();
    expect(readings.queueDepth).toEqual([
      { labels: { queue: "aged" }, value: 3 },
      { labels: { queue: "mine" }, value: 0 },
    ]);
    expect(readings.queueOldestAge).toEqual([
      { labels: { queue: "aged" }, value: 5 },
      { labels: { queue: "mine" }, value: 0 },
    ]);
    expect(readings.runnerInFlight).toEqual([{ labels: { runner: "node" }, value: 3 }]);
    // one reading serves collections within a second
    await redis.client.zadd("rrq:queue:aged", now, "d");
    expect(await source.read()).toBe(await source.read());
    expect((await source.read()).queueDepth[0]!.value).toBe(3);
  });

  it("a metrics_port in use stops the start with a clear error", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as { port: number };
    try {
      const worker = new Worker({
        config: testConfig(redis.url, { metrics_port: port }),
        events: new EventBus(),
        quietOnSigtstp: false,
        metricsEnv: {},
      });
      await expect(worker.run()).rejects.toThrow(
        new RegExp(`metrics_port ${port}: cannot serve /metrics on 127\\.0\\.0\\.1:${port}`),
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  }, 40_000);

  it("no metrics_port and no OTLP variables: nothing is started", async () => {
    const worker = new Worker({
      config: testConfig(redis.url),
      events: new EventBus(),
      quietOnSigtstp: false,
      metricsEnv: {},
    });
    const done = worker.run();
    await waitFor(() => worker.status !== "initializing", 30_000, "worker start");
    expect(worker.metrics).toBeUndefined();
    worker.requestShutdown();
    await done;
  }, 40_000);
});
