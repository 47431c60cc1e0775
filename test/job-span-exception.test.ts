/** The rrq.job span of an attempt whose handler threw: error type and OTel exception event. */
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Producer } from "../src/producer/producer.js";
import { createJobTelemetry } from "../src/telemetry/otel-sdk.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

let redis: TestRedis;
let worker: RunningWorker;
let producer: Producer;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  redis = await startRedis();
  const telemetry = createJobTelemetry(new SimpleSpanProcessor(exporter));
  worker = new RunningWorker(testConfig(redis.url), undefined, false, telemetry);
  await worker.start();
  producer = new Producer({ redisDsn: redis.url });
});
afterAll(async () => {
  await worker?.stop();
  await producer?.close();
  await redis?.stop();
});

const spansOf = (jobId: string) =>
  exporter.getFinishedSpans().filter((s) => s.attributes["rrq.job_id"] === jobId);

describe("rrq.job span of a thrown error", () => {
  it("has rrq.error_type and an exception event with the stored traceback", async () => {
    const id = await producer.enqueue("throw", { message: "kaboom" }, { maxRetries: 1 });
    await waitFor(() => spansOf(id).length === 1, 10_000, "span");
    // the span ends just before the DLQ write
    const failed = async () => (await redis.client.hget(`rrq:job:${id}`, "status")) === "FAILED";
    await waitFor(failed, 10_000, "DLQ write");
    const span = spansOf(id)[0]!;
    expect(span.attributes).toMatchObject({ "rrq.error_type": "Error", "rrq.outcome": "error" });
    const traceback = await redis.client.hget(`rrq:job:${id}`, "last_error_traceback");
    const events = span.events.filter((e) => e.name === "exception");
    expect(events).toHaveLength(1);
    expect(events[0]!.attributes).toEqual({
      "exception.type": "Error",
      "exception.message": "kaboom",
      "exception.stacktrace": traceback,
    });
  });

  it("has no exception event for a returned error outcome", async () => {
    const id = await producer.enqueue("fail", { message: "nope" }, { maxRetries: 1 });
    await waitFor(() => spansOf(id).length === 1, 10_000, "span");
    expect(spansOf(id)[0]!.events).toEqual([]);
  });
});
