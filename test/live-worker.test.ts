/**
 * Live jobs end to end (issue 23): a real redis-server, a real orchestrator and real runner
 * subprocesses (test/fixtures/live-raw-runner.mjs speaks the live frames by hand).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FRAME_TYPES, requestFrame } from "@rrqkit/runner/protocol";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { resolveConfig, type ResolvedConfig } from "../src/config/config.js";
import { Producer } from "../src/producer/producer.js";
import { LiveStore } from "../src/store/live-store.js";
import { registerScripts } from "../src/store/scripts.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { jobSettled, outputClosed, RunningWorker } from "./support/worker-harness.js";

const RAW = fileURLToPath(new URL("./fixtures/live-raw-runner.mjs", import.meta.url));
/** The orchestrator's frame decoder knows the live frames (the runner package's schemas). */
const liveFrames = (FRAME_TYPES as readonly string[]).includes("progress");
/** The runner package's request writer carries `live` (else the field is dropped on the wire). */
const liveRequests =
  (
    requestFrame({
      request_id: "r",
      job_id: "j",
      function_name: "f",
      params: {},
      context: { job_id: "j", attempt: 1, enqueue_time: "2026-01-01T00:00:00Z", queue_name: "q" },
      live: { progress: true, output: true, progress_interval_ms: 200, output_max_bytes: 1 },
    }).payload as { live?: unknown }
  ).live !== undefined;

let redis: TestRedis;
let producer: Producer;
let dir: string;
let workers: RunningWorker[] = [];
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
  dir = mkdtempSync(join(tmpdir(), "rrq-live-"));
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

function config(env: Record<string, string>, extra: Record<string, unknown> = {}): ResolvedConfig {
  return resolveConfig({
    redis_dsn: redis.url,
    default_runner_name: "raw",
    default_job_timeout_seconds: 20,
    worker_shutdown_grace_period_seconds: 2,
    runner_shutdown_term_grace_seconds: 1,
    runners: {
      raw: {
        cmd: [process.execPath, RAW],
        transport: "tcp",
        tcp_port: 20000 + Math.floor(Math.random() * 20000),
        pool_size: 1,
        max_in_flight: 8,
        env,
      },
    },
    ...extra,
  });
}

async function start(c: ResolvedConfig): Promise<RunningWorker> {
  const worker = await new RunningWorker(c).start();
  workers.push(worker);
  return worker;
}

const requests = (log: string) =>
  readFileSync(log, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe("hello on tcp and the live field", () => {
  it.skipIf(!liveRequests)(
    "an rrqkit runner's requests carry live; tags come from [rrq.runner_tags]",
    async () => {
      const log = join(dir, `req-${++n}.log`);
      await start(config({ LIVE_LOG: log }, { runner_tags: { raw: ["gpu"] } }));
      const id = await producer.enqueue("echo", {});
      const hash = await jobSettled(redis.client, id);
      expect(JSON.parse(hash.result!)).toEqual({
        live: {
          progress: true,
          output: true,
          progress_interval_ms: 200,
          output_max_bytes: 8388608,
        },
      });
      expect(requests(log)[0]!.live).toBeDefined();
    },
  );

  it("a managed runner that sends no hello is waited for runner_hello_timeout_ms, then gets plain v2", async () => {
    const log = join(dir, `req-${++n}.log`);
    const started = Date.now();
    await start(config({ LIVE_LOG: log, LIVE_NO_HELLO: "1" }, { runner_hello_timeout_ms: 400 }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    const id = await producer.enqueue("echo", {});
    const hash = await jobSettled(redis.client, id);
    expect(JSON.parse(hash.result!)).toEqual({ live: null });
    expect("live" in requests(log)[0]!).toBe(false);
  });
});

describe.skipIf(!liveFrames)("progress", () => {
  it("a handler reporting 100 times a second is coalesced to about 4 writes a second; the last value is stored", async () => {
    await start(config({}));
    const sub = redis.client.duplicate();
    const heard: Array<{ type: string; progress: number }> = [];
    await sub.psubscribe("rrq:live:*");
    sub.on("pmessage", (_p, _c, m: string) =>
      heard.push(JSON.parse(m) as { type: string; progress: number }),
    );
    const started = Date.now();
    const id = await producer.enqueue("progress", { count: 150, every_ms: 10 });
    const hash = await jobSettled(redis.client, id);
    const seconds = (Date.now() - started) / 1000;
    await sub.quit();
    const writes = heard.filter((m) => m.type === "progress");
    // 4 writes a second, the first at once and the last before the outcome
    expect(writes.length).toBeGreaterThanOrEqual(3);
    expect(writes.length).toBeLessThanOrEqual(Math.ceil(seconds * 4) + 2);
    const values = writes.map((w) => w.progress);
    expect([...values].sort((a, b) => a - b)).toEqual(values);
    expect(hash.progress).toBe("1");
    expect(hash.progress_message).toBe("step 150");
    const store = new LiveStore(redis.client, registerScripts(redis.client));
    expect((await store.readProgress(id))?.detail).toEqual({ i: 150 });
  });
});

describe.skipIf(!liveFrames)("output", () => {
  it("is stored up to the per-attempt cap with the truncation reported, then closed", async () => {
    await start(config({}, { output_max_bytes_per_attempt: 100_000 }));
    const id = await producer.enqueue("output", { bytes: 300_000, chunk: 1000 });
    await jobSettled(redis.client, id);
    const page = await outputClosed(redis.client, id);
    const data = page.entries.flatMap((e) => (e.kind === "log" ? [e.data] : []));
    expect(data.join("").length).toBe(100_000);
    expect(page.entries.at(-2)).toMatchObject({ kind: "truncated", dropped: 200_000 });
    expect(page.entries.at(-1)).toMatchObject({ kind: "closed", status: "completed" });
    expect(page.closed).toBe(true);
    const ttl = await redis.client.ttl(`rrq:output:${id}:1`);
    expect(ttl).toBeGreaterThan(0);
  });
});

describe.skipIf(!liveFrames)("CLI and data API", () => {
  it("job watch prints monotonic progress until the job is final; job show has a progress line", async () => {
    await start(config({}));
    const cli = writeConfig(redis.url);
    const id = await producer.enqueue("progress", { count: 100, every_ms: 10 });
    const watched = await runCli(cli, ["job", "watch", id]);
    expect(watched.code).toBe(0);
    const lines = watched.out.trim().split("\n");
    expect(lines.at(-1)).toMatch(/COMPLETED 100% step 100$/);
    const pcts = lines.flatMap((l) => {
      const m = / (\d+(?:\.\d+)?)%/.exec(l);
      return m ? [Number(m[1])] : [];
    });
    expect(pcts.length).toBeGreaterThanOrEqual(2);
    expect([...pcts].sort((a, b) => a - b)).toEqual(pcts);
    const shown = await runCli(cli, ["job", "show", id]);
    expect(shown.out).toMatch(/Progress: 100% step 100 \(/);
    const api = new LiveStore(redis.client, registerScripts(redis.client));
    expect((await api.readProgress(id))?.progress).toBe(1);
    expect(await producer.getJobStatus(id)).toMatchObject({
      status: "COMPLETED",
      progress: { progress: 1, message: "step 100", detail: { i: 100 } },
    });
  });

  it("job tail -f follows a large output up to the cap, reports the cap, and exits at the closed marker", async () => {
    await start(config({}, { output_max_bytes_per_attempt: 200_000 }));
    const cli = writeConfig(redis.url);
    const id = await producer.enqueue("output", { bytes: 1_000_000, chunk: 2000 });
    const tail = runCli(cli, ["job", "tail", id, "-f"]);
    const result = await tail;
    expect(result.code).toBe(0);
    const text = result.out;
    expect(text).toMatch(/\[output truncated: 800000 bytes dropped\]\n$/);
    expect(text.length - "[output truncated: 800000 bytes dropped]\n".length).toBe(200_000);
    expect(result.err).toMatch(/\[attempt ended: completed\]/);
    const again = await runCli(cli, ["job", "tail", id]);
    expect(again.out).toBe(text);
    const { RrqApi } = await import("../src/api/index.js");
    const api = new RrqApi(redis.client);
    const page = await api.output.read(id, { count: 5 });
    expect(page).toMatchObject({ attempt: 1, closed: false });
    expect(page.entries).toHaveLength(5);
    const seen: string[] = [];
    for await (const entry of api.output.follow(id, { cursor: page.cursor })) seen.push(entry.kind);
    expect(seen.at(-1)).toBe("closed");
    const tailed: string[] = [];
    for await (const entry of producer.tail(id)) if (entry.kind === "log") tailed.push(entry.data);
    expect(tailed.join("")).toHaveLength(200_000);
  });
});
