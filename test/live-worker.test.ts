/**
 * Live jobs end to end (issue 23): a real redis-server, a real orchestrator and real runner
 * subprocesses (test/fixtures/live-raw-runner.mjs speaks the live frames by hand).
 */
import { readFileSync } from "node:fs";
import { FRAME_TYPES, requestFrame } from "@rrqkit/runner/protocol";
import { describe, expect, it } from "vitest";
import { LiveStore } from "../src/store/live-store.js";
import { registerScripts } from "../src/store/scripts.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { useExecLogFixture } from "./support/exec-log.js";
import { useWorkers } from "./support/producer-fixture.js";
import {
  executionRequest,
  jobSettled,
  outputClosed,
  rawRunnerConfig,
} from "./support/worker-harness.js";

/** The orchestrator's frame decoder knows the live frames (the runner package's schemas). */
const liveFrames = (FRAME_TYPES as readonly string[]).includes("progress");
/** The runner package's request writer carries `live` (else the field is dropped on the wire). */
const liveRequests =
  (
    requestFrame({
      ...executionRequest("r"),
      live: { progress: true, output: true, progress_interval_ms: 200, output_max_bytes: 1 },
    }).payload as { live?: unknown }
  ).live !== undefined;

/** The raw runner logs each request it gets to this test's LIVE_LOG (fx.logPath). */
const fx = useExecLogFixture("live");
const workers = useWorkers();

/** The raw runner as "raw" over tcp with `env`, plus `extra` keys. */
const config = (env: Record<string, string>, extra: Record<string, unknown> = {}) =>
  rawRunnerConfig(fx.redis.url, extra, env);

const requests = (log: string) =>
  readFileSync(log, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe("hello on tcp and the live field", () => {
  it.skipIf(!liveRequests)(
    "an rrqkit runner's requests carry live; tags come from [rrq.runner_tags]",
    async () => {
      const log = fx.logPath;
      await workers.start(config({ LIVE_LOG: log }, { runner_tags: { raw: ["gpu"] } }));
      const id = await fx.producer.enqueue("echo", {});
      const hash = await jobSettled(fx.redis.client, id);
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
    const log = fx.logPath;
    const started = Date.now();
    await workers.start(
      config({ LIVE_LOG: log, LIVE_NO_HELLO: "1" }, { runner_hello_timeout_ms: 400 }),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    const id = await fx.producer.enqueue("echo", {});
    const hash = await jobSettled(fx.redis.client, id);
    expect(JSON.parse(hash.result!)).toEqual({ live: null });
    expect("live" in requests(log)[0]!).toBe(false);
  });
});

describe.skipIf(!liveFrames)("progress", () => {
  it("a handler reporting 100 times a second is coalesced to about 4 writes a second; the last value is stored", async () => {
    await workers.start(config({}));
    const sub = fx.redis.client.duplicate();
    const heard: Array<{ type: string; progress: number }> = [];
    await sub.psubscribe("rrq:live:*");
    sub.on("pmessage", (_p, _c, m: string) =>
      heard.push(JSON.parse(m) as { type: string; progress: number }),
    );
    const started = Date.now();
    const id = await fx.producer.enqueue("progress", { count: 150, every_ms: 10 });
    const hash = await jobSettled(fx.redis.client, id);
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
    const store = new LiveStore(fx.redis.client, registerScripts(fx.redis.client));
    expect((await store.readProgress(id))?.detail).toEqual({ i: 150 });
  });
});

describe.skipIf(!liveFrames)("output", () => {
  it("is stored up to the per-attempt cap with the truncation reported, then closed", async () => {
    await workers.start(config({}, { output_max_bytes_per_attempt: 100_000 }));
    const id = await fx.producer.enqueue("output", { bytes: 300_000, chunk: 1000 });
    await jobSettled(fx.redis.client, id);
    const page = await outputClosed(fx.redis.client, id);
    const data = page.entries.flatMap((e) => (e.kind === "log" ? [e.data] : []));
    expect(data.join("").length).toBe(100_000);
    expect(page.entries.at(-2)).toMatchObject({ kind: "truncated", dropped: 200_000 });
    expect(page.entries.at(-1)).toMatchObject({ kind: "closed", status: "completed" });
    expect(page.closed).toBe(true);
    const ttl = await fx.redis.client.ttl(`rrq:output:${id}:1`);
    expect(ttl).toBeGreaterThan(0);
  });
});

describe.skipIf(!liveFrames)("CLI and data API", () => {
  it("job watch prints monotonic progress until the job is final; job show has a progress line", async () => {
    await workers.start(config({}));
    const cli = writeConfig(fx.redis.url);
    const id = await fx.producer.enqueue("progress", { count: 100, every_ms: 10 });
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
    const api = new LiveStore(fx.redis.client, registerScripts(fx.redis.client));
    expect((await api.readProgress(id))?.progress).toBe(1);
    expect(await fx.producer.getJobStatus(id)).toMatchObject({
      status: "COMPLETED",
      progress: { progress: 1, message: "step 100", detail: { i: 100 } },
    });
  });

  it("job tail -f follows a large output up to the cap, reports the cap, and exits at the closed marker", async () => {
    await workers.start(config({}, { output_max_bytes_per_attempt: 200_000 }));
    const cli = writeConfig(fx.redis.url);
    const id = await fx.producer.enqueue("output", { bytes: 1_000_000, chunk: 2000 });
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
    const api = new RrqApi(fx.redis.client);
    const page = await api.output.read(id, { count: 5 });
    expect(page).toMatchObject({ attempt: 1, closed: false });
    expect(page.entries).toHaveLength(5);
    const seen: string[] = [];
    for await (const entry of api.output.follow(id, { cursor: page.cursor })) seen.push(entry.kind);
    expect(seen.at(-1)).toBe("closed");
    const tailed: string[] = [];
    for await (const entry of fx.producer.tail(id))
      if (entry.kind === "log") tailed.push(entry.data);
    expect(tailed.join("")).toHaveLength(200_000);
  });
});
