/**
 * Metrics (README "Metrics") without Redis: the event subscriber feeding the Prometheus
 * registry, the instrument list, the OTLP endpoint rules and the wait computation.
 */
import { describe, expect, it } from "vitest";
import { INSTRUMENTS, instrumentList } from "../src/metrics/instruments.js";
import { queueWaitMs } from "../src/metrics/job-wait.js";
import { PrometheusMetrics } from "../src/metrics/prometheus.js";
import { subscribeMetrics } from "../src/metrics/subscriber.js";
import { metricsEndpointFromEnv } from "../src/metrics/worker-metrics.js";
import { EventBus } from "../src/telemetry/events.js";
import { captureLogs } from "./support/log-capture.js";
import { parseExposition, sample } from "./support/prometheus-text.js";

const ref = (jobId: string, functionName = "send", queue = "rrq:queue:default") => ({
  jobId,
  functionName,
  queue,
  attempt: 1,
});

describe("instrument list", () => {
  it("names follow the conventions: rrq_ prefixed Prometheus names, semconv or rrq. OTel names", () => {
    for (const spec of instrumentList()) {
      expect(spec.prom).toMatch(/^rrq_[a-z_]+$/);
      if (spec.kind === "counter") expect(spec.prom).toMatch(/_total$/);
      expect(spec.otel).toMatch(/^(rrq\.|messaging\.)[a-z_.]+$/);
    }
    expect(INSTRUMENTS.duration.otel).toBe("messaging.process.duration");
    expect(INSTRUMENTS.started.otel).toBe("messaging.client.consumed.messages");
  });
});

describe("event subscriber → Prometheus", () => {
  it("counts every outcome by queue and function", async () => {
    const events = new EventBus();
    let clock = 0;
    const prometheus = new PrometheusMetrics({ processMetrics: false });
    const off = subscribeMetrics(events, prometheus, () => clock);
    events.emit("job:claimed", { ...ref("a"), waitMs: 1500 });
    events.emit("job:dispatched", { jobId: "a", requestId: "r", runner: "node", attempt: 1 });
    events.emit("job:completed", { ...ref("a"), runner: "node", durationMs: 250 });
    events.emit("job:claimed", ref("b", "charge", "rrq:queue:billing"));
    events.emit("job:dispatched", { jobId: "b", requestId: "r2", runner: "node", attempt: 1 });
    clock = 2000;
    events.emit("job:retry", {
      ...ref("b", "charge", "rrq:queue:billing"),
      delaySeconds: 1,
      error: "boom",
      outcome: "error",
    });
    events.emit("job:dlq", { ...ref("c"), error: "bad", outcome: "fatal" });
    events.emit("job:snoozed", { ...ref("d"), delaySeconds: 1, snoozes: 1 });
    events.emit("job:cancelled", { ...ref("e"), where: "running" });
    events.emit("job:expired", ref("f"));
    events.emit("runner:respawn", { runner: "py", index: 0, delayMs: 0, attempt: 1, reason: "x" });
    events.emit("lease:renewed", { renewed: 3, lost: 0 });
    events.emit("recovery:done", { recovered: 2, deadWorkers: [] });
    events.emit("redis:down", {
      first: true,
      reason: "x",
      retryInMs: 1,
      downForMs: 0,
      failures: 2,
    });
    events.emit("redis:down", {
      first: false,
      reason: "y",
      retryInMs: 1,
      downForMs: 9,
      failures: 5,
    });
    const m = parseExposition(await prometheus.scrape());
    const d = { queue: "default", function: "send" };
    const b = { queue: "billing", function: "charge" };
    expect(sample(m, "rrq_jobs_started_total", d)).toBe(1);
    expect(sample(m, "rrq_jobs_started_total", b)).toBe(1);
    expect(sample(m, "rrq_jobs_completed_total", d)).toBe(1);
    expect(sample(m, "rrq_jobs_retried_total", b)).toBe(1);
    expect(sample(m, "rrq_jobs_failed_total", b)).toBe(1);
    expect(sample(m, "rrq_jobs_failed_total", d)).toBe(1);
    expect(sample(m, "rrq_jobs_dead_total", d)).toBe(1);
    expect(sample(m, "rrq_jobs_snoozed_total", d)).toBe(1);
    expect(sample(m, "rrq_jobs_cancelled_total", d)).toBe(1);
    expect(sample(m, "rrq_jobs_expired_total", d)).toBe(1);
    expect(sample(m, "rrq_runner_restarts_total", { runner: "py" })).toBe(1);
    expect(sample(m, "rrq_lease_renewals_total")).toBe(3);
    expect(sample(m, "rrq_recoveries_total")).toBe(2);
    expect(sample(m, "rrq_redis_errors_total")).toBe(5);
    expect(sample(m, "rrq_job_wait_seconds_sum", d)).toBe(1.5);
    expect(sample(m, "rrq_job_wait_seconds_count", d)).toBe(1);
    expect(sample(m, "rrq_job_duration_seconds_sum", { ...d, outcome: "success" })).toBe(0.25);
    expect(sample(m, "rrq_job_duration_seconds_sum", { ...b, outcome: "retry" })).toBe(2);
    expect(
      sample(m, "rrq_job_duration_seconds_bucket", { ...b, outcome: "retry", le: "2.5" }),
    ).toBe(1);
    off();
    events.emit("job:completed", { ...ref("g"), runner: "node", durationMs: 1 });
    const after = parseExposition(await prometheus.scrape());
    expect(sample(after, "rrq_jobs_completed_total", d)).toBe(1);
  });

  it("gauges are read at scrape time; a failing read leaves them empty and is reported", async () => {
    const errors: Error[] = [];
    let fail = false;
    const prometheus = new PrometheusMetrics({
      processMetrics: false,
      onError: (e) => errors.push(e),
      gauges: {
        read: () => {
          if (fail) return Promise.reject(new Error("redis down"));
          return Promise.resolve({
            queueDepth: [{ labels: { queue: "default" }, value: 7 }],
            queueOldestAge: [{ labels: { queue: "default" }, value: 1.5 }],
            runnerInFlight: [{ labels: { runner: "node" }, value: 2 }],
          });
        },
      },
    });
    const m = parseExposition(await prometheus.scrape());
    expect(sample(m, "rrq_queue_depth", { queue: "default" })).toBe(7);
    expect(sample(m, "rrq_queue_oldest_age_seconds", { queue: "default" })).toBe(1.5);
    expect(sample(m, "rrq_runner_in_flight", { runner: "node" })).toBe(2);
    fail = true;
    const failed = parseExposition(await prometheus.scrape());
    expect(sample(failed, "rrq_queue_depth", { queue: "default" })).toBeUndefined();
    expect(errors.length).toBeGreaterThan(0);
  });
});

describe("OTLP metrics endpoint from the environment", () => {
  it("follows OpenTelemetry's rules, like traces", () => {
    expect(metricsEndpointFromEnv({})).toBeUndefined();
    expect(metricsEndpointFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" })).toBe(
      "http://c:4318/v1/metrics",
    );
    expect(
      metricsEndpointFromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://m:9/custom",
      }),
    ).toBe("http://m:9/custom");
    expect(
      metricsEndpointFromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
        OTEL_METRICS_EXPORTER: "none",
      }),
    ).toBeUndefined();
    // a traces-only endpoint does not turn metrics on
    expect(
      metricsEndpointFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t" }),
    ).toBeUndefined();
  });
});

describe("queue wait", () => {
  it("is start minus the later of enqueue and scheduled time", () => {
    expect(
      queueWaitMs({
        enqueue_time: "2026-01-01T00:00:00+00:00",
        start_time: "2026-01-01T00:00:02.500+00:00",
      }),
    ).toBe(2500);
    expect(
      queueWaitMs({
        enqueue_time: "2026-01-01T00:00:00+00:00",
        next_scheduled_run_time: "2026-01-01T00:00:02+00:00",
        start_time: "2026-01-01T00:00:02.100+00:00",
      }),
    ).toBe(100);
    expect(queueWaitMs({ enqueue_time: "2026-01-01T00:00:00+00:00" })).toBeUndefined();
  });
});

describe("metrics start line", () => {
  it("says where metrics go, at info", () => {
    const { events, lines } = captureLogs("info");
    events.emit("metrics:started", {
      url: "http://127.0.0.1:9464/metrics",
      otlpEndpoint: "http://collector:4318/v1/metrics",
    });
    expect(lines()).toEqual([
      expect.objectContaining({
        level: 30,
        msg:
          "metrics: serving http://127.0.0.1:9464/metrics; " +
          "exporting OTLP metrics to http://collector:4318/v1/metrics",
        metrics_url: "http://127.0.0.1:9464/metrics",
      }),
    ]);
  });
});

describe("process metrics", () => {
  it("are exported once per process, whatever the number of registries", async () => {
    const first = await new PrometheusMetrics().scrape();
    const second = await new PrometheusMetrics().scrape();
    for (const text of [first, second]) {
      expect(text).toContain("process_cpu_user_seconds_total");
      expect(text.match(/^# TYPE process_cpu_user_seconds_total/gm)).toHaveLength(1);
      expect(text).toContain("# TYPE rrq_jobs_completed_total counter");
    }
  });
});
