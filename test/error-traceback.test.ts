/**
 * Errors keep their type and traceback end to end (RUNNER_PROTOCOL.md §7.1): a handler that
 * throws in Node, Python or Rust leaves last_error_type, last_error_traceback and
 * run_<k>_error_type in the job hash; `rrq job show` / `job trace` and the data API show them;
 * the rrq.job span gets the traceback. Real runner processes, a real redis-server.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsFrom } from "../src/api/settings.js";
import { RrqApi } from "../src/index.js";
import { Producer } from "../src/producer/producer.js";
import type { JobSpanResult, JobTelemetry } from "../src/telemetry/otel.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { GOLDEN_SETTINGS, RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const root = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const PYTHON_RUNNER = root(".venv/bin/rrqkit-conformance-runner");
const RUST_RUNNER = ["release", "debug"]
  .map((profile) => root(`runners/rust/target/${profile}/examples/conformance_runner`))
  .find((path) => existsSync(path));

let redis: TestRedis;
let worker: RunningWorker;
let api: RrqApi;
let producer: Producer;
let cliConfig: string;
const spans: JobSpanResult[] = [];
const ids: Record<string, string> = {};

/** rrq.job spans as plain results, so a test can see what each attempt's span was given. */
const recordingTelemetry: JobTelemetry = {
  startJob: () => ({ end: (result) => void spans.push(result) }),
  shutdown: async () => {},
};

const hash = (id: string) => redis.client.hgetall(`rrq:job:${id}`);

beforeAll(async () => {
  if (!RUST_RUNNER)
    throw new Error("build the Rust conformance runner first (cargo build --examples)");
  redis = await startRedis();
  const config = testConfig(
    redis.url,
    { ...GOLDEN_SETTINGS, default_job_timeout_seconds: 20 },
    {
      python: { cmd: [PYTHON_RUNNER], pool_size: 1 },
      rust: { cmd: [RUST_RUNNER], pool_size: 1 },
    },
  );
  cliConfig = writeConfig(redis.url);
  api = new RrqApi(redis.client.duplicate(), apiSettingsFrom(config), true);
  producer = new Producer({ redisDsn: redis.url });
  const message = { message: "kaboom" };
  // Two attempts each: the first is a retry write, the second the DLQ write.
  ids.python = await producer.enqueue("python#throw", message, { maxRetries: 2 });
  ids.node = await producer.enqueue("throw", message, { maxRetries: 2 });
  ids.rust = await producer.enqueue("rust#throw", message, { maxRetries: 1 });
  // A returned error without a type replaces an earlier attempt's type and traceback.
  ids.untyped = await producer.enqueue("fail", { message: "plain" }, { maxRetries: 1 });
  await redis.client.hset(`rrq:job:${ids.untyped}`, {
    last_error_type: "OldError",
    last_error_traceback: "old traceback",
  });
  worker = await new RunningWorker(config, undefined, false, recordingTelemetry).start();
  await waitFor(
    async () => {
      const statuses = await Promise.all(
        Object.values(ids).map((id) => redis.client.hget(`rrq:job:${id}`, "status")),
      );
      return statuses.every((s) => s === "FAILED");
    },
    60_000,
    "jobs to fail",
  );
  await worker.stop();
}, 90_000);

afterAll(async () => {
  await producer?.close();
  await api?.close();
  await redis?.stop();
});

describe("the job hash", () => {
  it("Python: RuntimeError with the traceback of the raise line, on retry and DLQ writes", async () => {
    const h = await hash(ids.python!);
    expect(h).toMatchObject({
      last_error: "kaboom",
      last_error_type: "RuntimeError",
      run_1_outcome: "retry",
      run_1_error_type: "RuntimeError",
      run_2_outcome: "failed",
      run_2_error_type: "RuntimeError",
    });
    expect(h.last_error_traceback).toMatch(/^Traceback \(most recent call last\):\n/);
    expect(h.last_error_traceback).toContain('raise RuntimeError(_param(request, "message"');
    expect(h.last_error_traceback).toMatch(/RuntimeError: kaboom\n$/);
    expect(h.job_params).toBeDefined(); // ...and the traceback carries no params
    expect(h.last_error_traceback).not.toContain(h.job_params!);
  });

  it("Node: Error with its stack", async () => {
    const h = await hash(ids.node!);
    expect(h).toMatchObject({ last_error_type: "Error", run_1_error_type: "Error" });
    expect(h.last_error_traceback).toMatch(/^Error: kaboom\n {4}at .*conformance-handlers\.js:\d+/);
  });

  it("Rust: Error with the place the error was made", async () => {
    const h = await hash(ids.rust!);
    expect(h).toMatchObject({ last_error_type: "Error", run_1_error_type: "Error" });
    expect(h.last_error_traceback).toMatch(
      /^Error: kaboom\n {2}at examples\/conformance_runner\.rs:\d+:\d+/,
    );
  });

  it("a failure without a type removes the type and traceback of an earlier one", async () => {
    const h = await hash(ids.untyped!);
    expect(h.last_error).toBe("plain");
    expect(h).not.toHaveProperty("last_error_type");
    expect(h).not.toHaveProperty("last_error_traceback");
    expect(h).not.toHaveProperty("run_1_error_type");
  });
});

describe("read side", () => {
  it("api.jobs.get and the trace carry the type and traceback", async () => {
    const job = (await api.jobs.get(ids.python!))!;
    expect(job.lastErrorType).toBe("RuntimeError");
    expect(job.lastErrorTraceback).toContain("RuntimeError: kaboom");
    const failed = (await api.jobs.trace(ids.python!))!.filter((e) => e.event === "Failed");
    expect(failed.map((e) => [e.details, e.errorType])).toEqual([
      ["Run 1 failed, will retry: RuntimeError: kaboom", "RuntimeError"],
      ["Run 2 failed, moved to DLQ: RuntimeError: kaboom", "RuntimeError"],
    ]);
  });

  it("rrq job show prints the type, then the traceback indented after the other fields", async () => {
    const shown = await runCli(cliConfig, ["job", "show", ids.python!]);
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(/^last_error_type +RuntimeError$/m);
    const [fields, traceback] = shown.out.split("last_error_traceback:\n");
    expect(fields).toContain("run_2_error_type");
    expect(traceback).toMatch(/^ {4}Traceback \(most recent call last\):\n/);
    expect(traceback).toMatch(/\n {4}RuntimeError: kaboom\n?$/);
    const json = await runCli(cliConfig, ["job", "show", ids.python!, "--json"]);
    const parsed = JSON.parse(json.out) as { job: Record<string, unknown> };
    expect(parsed.job.lastErrorType).toBe("RuntimeError");
    expect(parsed.job.lastErrorTraceback).toContain("RuntimeError: kaboom");
  });

  it("rrq job trace prints each run's error type and the last traceback (and --json has them)", async () => {
    const traced = await runCli(cliConfig, ["job", "trace", ids.rust!]);
    expect(traced.out).toContain("Run 1 failed, moved to DLQ: Error: kaboom");
    expect(traced.out).toMatch(/\nLast error traceback:\n {4}Error: kaboom\n {6}at examples\//);
    const json = await runCli(cliConfig, ["job", "trace", ids.rust!, "--json"]);
    const parsed = JSON.parse(json.out) as {
      events: Array<Record<string, unknown>>;
      lastErrorTraceback?: string;
    };
    expect(parsed.events.find((e) => e.event === "Failed")).toMatchObject({ errorType: "Error" });
    expect(parsed.lastErrorTraceback).toMatch(/^Error: kaboom\n/);
  });
});

describe("rrq.job spans", () => {
  it("get the error type and the traceback (for the exception event)", () => {
    const thrown = spans.filter((s) => s.errorMessage === "kaboom");
    expect(thrown).toHaveLength(5);
    for (const span of thrown) {
      expect(span.errorType).toMatch(/^(RuntimeError|Error)$/);
      expect(span.traceback).toContain("kaboom");
    }
    const plain = spans.find((s) => s.errorMessage === "plain")!;
    expect(plain.errorType).toBeNull();
    expect(plain.traceback).toBeNull();
  });
});
