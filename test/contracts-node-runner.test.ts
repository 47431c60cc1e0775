/**
 * Runner-side job contracts end to end: a real redis-server, a real worker and a Node runner
 * process over a Unix socket with RRQ_JOB_CATALOG set. Bad params never reach the handler; the
 * runner answers `invalid_params` and the orchestrator sends the job to the DLQ at once.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { decide } from "../src/orchestrator/decisions.js";
import { parseJob } from "../src/store/job.js";
import { useProducerFixture } from "./support/producer-fixture.js";
import { jobSettled, RunningWorker, testConfig } from "./support/worker-harness.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const CATALOG_DIR = join(root, "conformance", "fixtures", "catalog");
const RUNNER = join(root, "runners", "node", "test", "fixtures", "contract-runner.ts");

const fx = useProducerFixture();
const dir = mkdtempSync(join(tmpdir(), "rrq-contracts-runner-"));
const callsFile = join(dir, "calls.log");
let running: RunningWorker | undefined;

afterEach(async () => {
  await running?.stop();
  running = undefined;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A worker whose "node" runner serves the fixture catalog's handlers, checking params. */
async function startWorker(): Promise<RunningWorker> {
  const node = {
    cmd: [process.execPath, "--import", "tsx", RUNNER],
    transport: "unix",
    pool_size: 1,
    max_in_flight: 8,
    env: { RRQ_JOB_CATALOG: CATALOG_DIR, RRQ_TEST_CALLS: callsFile },
  };
  const config = testConfig(fx.redis.url, { default_max_retries: 5 }, { node });
  running = await new RunningWorker(config).start();
  return running;
}

/** The handlers that ran, in order (one line per call). */
const calls = () =>
  (existsSync(callsFile) ? readFileSync(callsFile, "utf8").split("\n") : []).filter(Boolean);

describe("invalid params in a runner with RRQ_JOB_CATALOG", () => {
  it("go to the DLQ at once with type invalid_params; the handler never runs", async () => {
    await startWorker();
    const bad = await fx.producer.enqueue("send_email", { to: 1, subject: "s" });
    const hash = await jobSettled(fx.redis.client, bad);
    expect(hash.status).toBe("FAILED");
    expect(hash.last_error).toBe(
      "send_email: params/to must be string (not retried: error type 'invalid_params' is non-retryable)",
    );
    expect(hash.last_error_type).toBe("invalid_params");
    expect(await fx.redis.client.lrange("rrq:dlq:default", 0, -1)).toEqual([bad]);
    expect(calls()).toEqual([]);

    const good = await fx.producer.enqueue("send_email", { to: "a@b.c", subject: "s" });
    const done = await jobSettled(fx.redis.client, good);
    expect(done.status).toBe("COMPLETED");
    expect(JSON.parse(done.result!)).toEqual({ message_id: "<a@b.c>" });
    const free = await fx.producer.enqueue("echo_uncatalogued", { to: 1 });
    expect((await jobSettled(fx.redis.client, free)).status).toBe("COMPLETED");
    expect(calls()).toEqual(["send_email", "echo_uncatalogued"]);
  });
});

describe("the orchestrator's decision on invalid_params", () => {
  it("is the DLQ on the first attempt with attempts left, like non_retryable", () => {
    const job = parseJob("j1", {
      id: "j1",
      function_name: "send_email",
      status: "ACTIVE",
      current_retries: "0",
      max_retries: "5",
      enqueue_time: "2026-01-01T00:00:00+00:00",
    });
    const policy = { defaultMaxRetries: 5, baseRetryDelaySeconds: 0.5, maxRetryDelaySeconds: 5 };
    const error = { message: "send_email: params/to must be string", type: "invalid_params" };
    const decision = decide(
      job,
      { job_id: "j1", request_id: "r1", status: "error", error },
      policy,
      30,
    );
    expect(decision).toMatchObject({
      kind: "dlq",
      error: `${error.message} (not retried: error type 'invalid_params' is non-retryable)`,
      errorType: "invalid_params",
    });
    const other = decide(
      job,
      { job_id: "j1", request_id: "r1", status: "error", error: { ...error, type: "ValueError" } },
      policy,
      30,
    );
    expect(other.kind).toBe("retry");
  });
});
