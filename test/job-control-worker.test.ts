/**
 * Job control end to end (README "Job control"): a real redis-server, a real worker and real
 * Node conformance runner processes (handlers fail, fail_permanently, snooze, sleep, timeout,
 * echo of conformance/handlers.md). Attempts are counted from the runner's execution log
 * (RRQ_TEST_EXEC_LOG: one line per handler start), so "ran once" means the runner saw it once.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ProducerError } from "../src/errors.js";
import type { EnqueueOptions } from "../src/producer/options.js";
import { loggingNodeRunner, readExecLog, useExecLogFixture } from "./support/exec-log.js";
import { jobSettled, RunningWorker, testConfig } from "./support/worker-harness.js";

const fx = useExecLogFixture("job-control");
let running: RunningWorker | undefined;

afterEach(async () => {
  await running?.stop();
  running = undefined;
});

/** Starts a worker with `extra` rrq.toml keys whose runner logs every handler start. */
async function startWorker(extra: Record<string, unknown> = {}): Promise<RunningWorker> {
  const config = testConfig(
    fx.redis.url,
    { default_job_timeout_seconds: 5, base_retry_delay_seconds: 0.01, ...extra },
    loggingNodeRunner(fx.logPath),
  );
  running = await new RunningWorker(config).start();
  return running;
}

/** The runner's handler starts for one job, in order. */
const executions = (jobId: string) =>
  readExecLog(fx.logPath).filter((entry) => entry.job_id === jobId);

const enqueue = (fn: string, params: Record<string, unknown>, options: EnqueueOptions = {}) =>
  fx.producer.enqueue(fn, params, options);

describe("permanent errors", () => {
  it("a NonRetryableError runs once and goes to the DLQ saying it was not retried", async () => {
    await startWorker();
    const id = await enqueue("fail_permanently", { message: "invalid card" }, { maxRetries: 5 });
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("FAILED");
    expect(hash.last_error).toBe(
      "invalid card (not retried: error type 'non_retryable' is non-retryable)",
    );
    expect(hash.last_error_type).toBe("non_retryable");
    expect(executions(id)).toHaveLength(1);
    expect(await fx.redis.client.lrange("rrq:dlq:default", 0, -1)).toEqual([id]);
  });

  it("non_retryable_error_types from a function policy in rrq.toml", async () => {
    await startWorker({ functions: { fail: { non_retryable_error_types: ["ValueError"] } } });
    const id = await enqueue("fail", { message: "bad", type: "ValueError" });
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.last_error).toBe("bad (not retried: error type 'ValueError' is non-retryable)");
    expect(executions(id)).toHaveLength(1);
    // another type is retried as before (max_retries 2: two runs)
    const other = await enqueue("fail", { message: "bad", type: "KeyError" }, { maxRetries: 2 });
    await jobSettled(fx.redis.client, other);
    expect(executions(other)).toHaveLength(2);
  });

  it("non_retryable_error_types from the job's retry option", async () => {
    await startWorker();
    const id = await enqueue(
      "fail",
      { message: "gone", type: "NotFound" },
      { retry: { non_retryable_error_types: ["NotFound"] } },
    );
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("FAILED");
    expect(hash.last_error).toContain("(not retried: error type 'NotFound' is non-retryable)");
    expect(executions(id)).toHaveLength(1);
  });
});

describe("retry policies", () => {
  it("a function policy of 4 attempts with a fixed 0.2 s backoff runs exactly 4 times", async () => {
    await startWorker({
      functions: { fail: { max_attempts: 4, backoff: "fixed", delay_seconds: 0.2 } },
    });
    // the producer's max_retries (5) is beaten by the function's max_attempts
    const id = await enqueue("fail", { message: "nope" });
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("FAILED");
    expect(hash.current_retries).toBe("4");
    const runs = executions(id);
    expect(runs.map((r) => r.attempt)).toEqual([1, 2, 3, 4]);
    for (let i = 1; i < runs.length; i++)
      expect(runs[i]!.ts_ms - runs[i - 1]!.ts_ms).toBeGreaterThanOrEqual(200);
  });

  it("retry_timeouts retries an orchestrator-side timeout instead of dead-lettering it", async () => {
    await startWorker();
    const id = await enqueue(
      "sleep",
      { ms: 10_000 },
      {
        jobTimeoutSeconds: 1,
        retry: { max_attempts: 2, retry_timeouts: true, backoff: "fixed", delay_seconds: 0 },
      },
    );
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("FAILED");
    expect(hash.last_error).toBe("Job timed out after 1s.");
    expect(executions(id)).toHaveLength(2);
  });

  it("retry_timeouts also covers a runner-reported timeout; without it one run", async () => {
    await startWorker();
    const retried = await enqueue(
      "timeout",
      {},
      { retry: { max_attempts: 3, retry_timeouts: true, delay_seconds: 0 } },
    );
    const once = await enqueue("timeout", {}, { maxRetries: 3 });
    await jobSettled(fx.redis.client, retried);
    await jobSettled(fx.redis.client, once);
    expect(executions(retried)).toHaveLength(3);
    expect(executions(once)).toHaveLength(1);
  });

  it("retry_for_seconds stops scheduling retries past the budget", async () => {
    await startWorker();
    const id = await enqueue(
      "fail",
      { message: "flaky upstream" },
      {
        retry: { max_attempts: 100, backoff: "fixed", delay_seconds: 0.3, retry_for_seconds: 1 },
      },
    );
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("FAILED");
    expect(hash.last_error).toBe("flaky upstream (retry budget of 1s exhausted)");
    const runs = executions(id);
    expect(runs.length).toBeGreaterThanOrEqual(2);
    expect(runs.length).toBeLessThan(100);
    // no retry was scheduled later than the first start + the budget
    const first = Date.parse(hash.run_1_started_at!);
    for (let n = 1; n < runs.length; n++)
      expect(Date.parse(hash[`retry_${n}_at`]!)).toBeLessThanOrEqual(first + 1000);
  });
});

describe("snooze", () => {
  it("a handler that snoozes 3 times then succeeds shows attempt 1", async () => {
    await startWorker();
    const id = await enqueue("snooze", { seconds: 0.05, times: 3 }, { maxRetries: 2 });
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("COMPLETED");
    expect(JSON.parse(hash.result!)).toEqual({ snoozed: 3, attempt: 1 });
    expect(hash.snoozes).toBe("3");
    expect(hash.current_retries).toBe("0");
    expect(hash.run_1_outcome).toBe("snoozed");
    expect(executions(id).map((r) => r.attempt)).toEqual([1, 1, 1, 1]);
    expect(running!.of("job:retry")).toHaveLength(0);
  });

  it("max_snoozes caps the snoozes of a job", async () => {
    await startWorker({ max_snoozes: 2 });
    const id = await enqueue("snooze", { seconds: 0, times: 10 });
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("FAILED");
    expect(hash.last_error).toBe("Job snoozed more than 2 times");
    expect(executions(id)).toHaveLength(3);
    // the job's own max_snoozes wins over the global one
    const own = await enqueue("snooze", { seconds: 0, times: 10 }, { retry: { max_snoozes: 0 } });
    expect((await jobSettled(fx.redis.client, own)).last_error).toBe(
      "Job snoozed more than 0 times",
    );
    expect(executions(own)).toHaveLength(1);
  });
});

describe("expiry", () => {
  it("an expired job never reaches a runner: FAILED, type expired, in no DLQ", async () => {
    await startWorker();
    // deferred past its expiry: when it becomes ready it has expired
    const id = await enqueue("echo", { x: 1 }, { expiresIn: 0.2, deferBySeconds: 0.6 });
    const live = await enqueue("echo", { x: 2 }, { expiresIn: 60 });
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("FAILED");
    expect(hash.last_error).toBe(`Job expired before it started (expires_at ${hash.expires_at})`);
    expect(hash.last_error_type).toBe("expired");
    expect(hash.current_retries).toBe("0");
    expect(await fx.redis.client.llen("rrq:dlq:default")).toBe(0);
    expect(await fx.redis.client.hget("rrq:stats:queue:default", "expired")).toBe("1");
    expect((await jobSettled(fx.redis.client, live)).status).toBe("COMPLETED");
    expect(executions(id)).toHaveLength(0);
    expect(executions(live)).toHaveLength(1);
    expect(running!.of("job:dlq")).toHaveLength(0);
  });
});

describe("producer options", () => {
  it("a refused option writes nothing", async () => {
    for (const options of [
      { retry: { jitter: 2 } },
      { retry: { max_attempts: 2 }, maxRetries: 3 },
      { expiresIn: 1, expiresAt: new Date(Date.now() + 5000) },
      { expiresAt: new Date(Date.now() - 1000) },
    ] satisfies EnqueueOptions[]) {
      await expect(enqueue("echo", {}, options)).rejects.toBeInstanceOf(ProducerError);
    }
    expect(await fx.redis.client.dbsize()).toBe(0);
  });

  it("stores retry_policy, max_retries and expires_at beside RRQ's fields", async () => {
    const id = await enqueue(
      "echo",
      {},
      { retry: { max_attempts: 3, delays: [1, 5] }, expiresIn: 60 },
    );
    const hash = await fx.redis.client.hgetall(`rrq:job:${id}`);
    expect(hash.retry_policy).toBe('{"delays":[1,5],"max_attempts":3}');
    expect(hash.max_retries).toBe("3");
    expect(Date.parse(hash.expires_at!)).toBeGreaterThan(Date.now() + 50_000);
  });
});
