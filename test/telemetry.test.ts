/** The orchestrator's rrq.job spans (protocol/TELEMETRY.md), from a real worker and runner. */
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Producer } from "../src/producer/producer.js";
import { createJobTelemetry } from "../src/telemetry/otel-sdk.js";
import { tracesEndpointFromEnv } from "@rrqkit/runner";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";
let redis: TestRedis;
let worker: RunningWorker;
let producer: Producer;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  redis = await startRedis();
  const telemetry = createJobTelemetry(new SimpleSpanProcessor(exporter));
  const config = testConfig(redis.url, {
    default_max_retries: 2,
    base_retry_delay_seconds: 0.01,
    correlation_mappings: { tenant: "tenant" },
  });
  worker = new RunningWorker(config, undefined, false, telemetry);
  await worker.start();
  producer = new Producer({ redisDsn: redis.url, correlationMappings: { tenant: "tenant" } });
});
afterAll(async () => {
  await worker.stop();
  await producer.close();
  await redis.stop();
});

const spansOf = (jobId: string) =>
  exporter.getFinishedSpans().filter((s) => s.attributes["rrq.job_id"] === jobId);

describe("rrq.job spans", () => {
  it("has RRQ's name, kind, attributes and the job's trace_context as parent", async () => {
    const id = await producer.enqueue(
      "echo",
      { tenant: "acme" },
      { traceContext: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } },
    );
    await waitFor(() => spansOf(id).length === 1, 10_000, "span");
    const span = spansOf(id)[0]!;
    expect(span.name).toBe("rrq.job");
    expect(span.kind).toBe(SpanKind.CONSUMER);
    expect(span.spanContext().traceId).toBe(TRACE_ID);
    expect(span.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(span.attributes).toMatchObject({
      "rrq.job_id": id,
      "rrq.function": "echo",
      "rrq.queue": "rrq:queue:default",
      "rrq.attempt": 1,
      "rrq.worker_id": worker.worker.workerId,
      "rrq.runner": "node",
      "rrq.outcome": "success",
      "span.kind": "consumer",
      "messaging.system": "redis",
      "messaging.destination.name": "rrq:queue:default",
      "messaging.operation": "process",
      tenant: "acme",
    });
    expect(typeof span.attributes["rrq.duration_ms"]).toBe("number");
    expect(typeof span.attributes["rrq.queue_wait_ms"]).toBe("number");
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("one span per attempt: retry then DLQ, with error attributes and ERROR status", async () => {
    const id = await producer.enqueue(
      "fail",
      { message: "nope", type: "BadInput" },
      { maxRetries: 2 },
    );
    await waitFor(() => spansOf(id).length === 2, 10_000, "two spans");
    const [first, second] = spansOf(id).sort(
      (a, b) => Number(a.attributes["rrq.attempt"]) - Number(b.attributes["rrq.attempt"]),
    );
    expect(first!.attributes).toMatchObject({
      "rrq.attempt": 1,
      "rrq.outcome": "error",
      "rrq.error_message": "nope",
      "rrq.error_type": "BadInput",
      "rrq.retry_delay_ms": 10,
    });
    expect(second!.attributes).toMatchObject({ "rrq.attempt": 2, "rrq.outcome": "error" });
    expect(second!.attributes["rrq.retry_delay_ms"]).toBeUndefined();
    expect(second!.status.code).toBe(SpanStatusCode.ERROR);
  });

  it("reports fatal for a missing handler, and no parent without a trace_context", async () => {
    const id = await producer.enqueue("missing", {});
    await waitFor(() => spansOf(id).length === 1, 10_000, "span");
    const span = spansOf(id)[0]!;
    expect(span.attributes["rrq.outcome"]).toBe("fatal");
    expect(span.parentSpanContext).toBeUndefined();
  });

  it("is enabled by the standard OTLP variables (traces-specific wins; empty disables)", () => {
    expect(tracesEndpointFromEnv({})).toBeUndefined();
    expect(tracesEndpointFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toBe(
      "http://c:4318/v1/traces",
    );
    expect(
      tracesEndpointFromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t/x",
      }),
    ).toBe("http://t/x");
    expect(
      tracesEndpointFromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "",
      }),
    ).toBeUndefined();
  });
});
