import type { Redis } from "ioredis";
import { RrqApi } from "../../src/api/index.js";
import type { ResolvedConfig } from "../../src/config/config.js";
import { Producer, producerConfigFrom } from "../../src/producer/producer.js";
import { startRedis, type TestRedis } from "./redis-server.js";
import { RunningWorker, testConfig, waitFor } from "./worker-harness.js";

/**
 * A real orchestrator with jobs in every state, for the dashboard's browser tests: a worker
 * (Node conformance runner) serves queue `work`; queue `parked` has no worker, so what is
 * enqueued there waits. Params, function names, queue names and error messages are hostile
 * markup, so every page doubles as an XSS check.
 */

/** Hostile strings: if any were parsed as HTML, an element or a dialog would appear. */
export const HOSTILE = {
  param: `<img src=x onerror="alert('param')">`,
  error: `<script>alert('error')</script><img src=x onerror=alert('err')>`,
  fn: `<img src=x onerror=alert('fn')>`,
  queue: `q"><svg onload=alert('queue')>`,
  traceback: `</pre><img src=x onerror=alert('tb')>`,
} as const;

/** The trace id given to the completed job (its detail page links it). */
export const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";

/** The ids of the seeded jobs, by state. */
export interface SeededJobs {
  completed: string;
  failed: string;
  /** A second DLQ entry, for the requeue action. */
  failedForRequeue: string;
  active: string;
  retrying: string;
  pending: string;
  deferred: string;
  cancelled: string;
  /** A waiting job for the cancel action. */
  toCancel: string;
  /** A waiting job with a hostile function name, in a hostile queue. */
  hostile: string;
}

/** What {@link seedOrchestrator} started; `stop()` ends all of it. */
export interface Seeded {
  redis: TestRedis;
  config: ResolvedConfig;
  worker: RunningWorker;
  producer: Producer;
  api: RrqApi;
  jobs: SeededJobs;
  stop(): Promise<void>;
}

const status = (client: Redis, id: string) => client.hget(`rrq:job:${id}`, "status");

async function reach(client: Redis, id: string, wanted: string): Promise<void> {
  await waitFor(async () => (await status(client, id)) === wanted, 20_000, `${id} ${wanted}`);
}

/** Starts Redis and a worker and leaves a job in each state. */
export async function seedOrchestrator(): Promise<Seeded> {
  const redis = await startRedis();
  const config = testConfig(redis.url, {
    cron_jobs: [
      { function_name: "echo", schedule: "0 0 3 * * *", queue_name: "parked", params: { cron: 1 } },
    ],
  });
  const producer = new Producer(producerConfigFrom(config));
  const worker = await new RunningWorker(config, ["work"]).start();
  const api = RrqApi.connect(redis.url);
  const client = redis.client;
  const work = { queueName: "work" };
  const parked = { queueName: "parked" };

  const completed = await producer.enqueue(
    "echo",
    { note: HOSTILE.param, nested: { html: HOSTILE.error } },
    { ...work, traceContext: { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` } },
  );
  const failed = await producer.enqueue(
    "fail_permanently",
    { message: HOSTILE.error },
    { ...work, maxRetries: 0 },
  );
  const failedForRequeue = await producer.enqueue(
    "fail_permanently",
    { message: "requeue me" },
    { ...work, maxRetries: 0 },
  );
  const active = await producer.enqueue(
    "sleep",
    { ms: 600_000 },
    { ...work, jobTimeoutSeconds: 900 },
  );
  const retrying = await producer.enqueue(
    "retry",
    { message: HOSTILE.error, after_seconds: 3600 },
    { ...work, maxRetries: 5 },
  );
  const pending = await producer.enqueue("echo", { note: HOSTILE.param }, parked);
  const deferred = await producer.enqueue("echo", {}, { ...parked, deferBySeconds: 3600 });
  const cancelled = await producer.enqueue("echo", {}, parked);
  const toCancel = await producer.enqueue("echo", { cancel: "from the UI" }, parked);
  const hostile = await producer.enqueue(
    HOSTILE.fn,
    { html: HOSTILE.param },
    { queueName: HOSTILE.queue },
  );
  // A traceback as a Python runner would record it (hostile too).
  await reach(client, failed, "FAILED");
  await client.hset(`rrq:job:${failed}`, "last_error_traceback", HOSTILE.traceback);
  await reach(client, completed, "COMPLETED");
  await reach(client, failedForRequeue, "FAILED");
  await reach(client, active, "ACTIVE");
  await reach(client, retrying, "RETRYING");
  const cancel = await api.jobs.cancel(cancelled);
  if (!cancel.ok) throw new Error(`seeding: cancel refused: ${JSON.stringify(cancel)}`);

  return {
    redis,
    config,
    worker,
    producer,
    api,
    jobs: {
      completed,
      failed,
      failedForRequeue,
      active,
      retrying,
      pending,
      deferred,
      cancelled,
      toCancel,
      hostile,
    },
    stop: async () => {
      await worker.stop().catch(() => undefined);
      await producer.close().catch(() => undefined);
      await api.close();
      await redis.stop();
    },
  };
}
