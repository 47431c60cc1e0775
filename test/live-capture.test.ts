/**
 * Captured runner output (issue 23, `[rrq.runner_capture]`): the lines a managed runner process
 * prints go to the output stream of its request in flight (stdout as `out`, stderr as `err`)
 * when it has exactly one; the config keys; end to end with the Node conformance runner and
 * RRQ's own rrq-runner (handler `noise`, conformance/handlers.md).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { memoryChannelPair, type FrameChannel } from "@rrqkit/runner/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import { LiveAttempt, type LiveContext } from "../src/live/attempt.js";
import { captureLine, soleInFlight, type CaptureTarget } from "../src/live/capture.js";
import { RunnerConnection } from "../src/runner/runner-connection.js";
import type { LiveStore, OutputEntry, OutputFields } from "../src/store/live-store.js";
import { useProducerFixture, useWorkers } from "./support/producer-fixture.js";
import {
  executionRequest,
  jobSettled,
  NODE_RUNNER,
  outputClosed,
  tcpPort,
  testConfig,
} from "./support/worker-harness.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RRQ_RUNNER = join(ROOT, ".venv", "bin", "rrq-runner");

describe("attribution", () => {
  const target = (got: string[]): CaptureTarget => ({
    live: { captured: (stream, data) => got.push(`${stream}:${data}`) },
  });

  it("goes to the only request in flight; with none or two the line is not captured", () => {
    const a: string[] = [];
    const b: string[] = [];
    const inFlight = new Map<string, CaptureTarget>();
    expect(soleInFlight(inFlight)).toBeUndefined();
    expect(captureLine(inFlight, "stdout", "none")).toBe(false);
    inFlight.set("a", target(a));
    expect(captureLine(inFlight, "stdout", "one")).toBe(true);
    expect(captureLine(inFlight, "stderr", "one err")).toBe(true);
    inFlight.set("b", target(b));
    expect(soleInFlight(inFlight)).toBeUndefined();
    expect(captureLine(inFlight, "stdout", "two")).toBe(false);
    inFlight.delete("a");
    expect(captureLine(inFlight, "stderr", "b alone")).toBe(true);
    expect(a).toEqual(["stdout:one\n", "stderr:one err\n"]);
    expect(b).toEqual(["stderr:b alone\n"]);
  });

  it("a request without a capture listener takes nothing", () => {
    const inFlight = new Map<string, CaptureTarget>([["a", { live: undefined }]]);
    expect(captureLine(inFlight, "stdout", "x")).toBe(false);
    inFlight.set("a", { live: {} });
    expect(captureLine(inFlight, "stdout", "x")).toBe(false);
  });
});

describe("RunnerConnection.captureLine", () => {
  const open = (capture: boolean): [RunnerConnection, FrameChannel] => {
    const [ours, theirs] = memoryChannelPair();
    theirs.on({ frame: () => {}, close: () => {} });
    return [new RunnerConnection(ours, { capture }), theirs];
  };

  it("captures only once enabled for a managed process, and only with one request in flight", () => {
    const [conn] = open(true);
    const got: string[] = [];
    conn
      .execute(executionRequest("a"), { captured: (s, d) => got.push(`${s}:${d}`) })
      .catch(() => {});
    expect(conn.captures).toBe(false);
    expect(conn.captureLine("stdout", "before")).toBe(false);
    conn.enableCapture();
    expect(conn.captures).toBe(true);
    expect(conn.captureLine("stdout", "one")).toBe(true);
    conn
      .execute(executionRequest("b"), { captured: (s, d) => got.push(`b ${s}:${d}`) })
      .catch(() => {});
    expect(conn.captureLine("stderr", "two")).toBe(false);
    conn.abandon("a");
    expect(conn.captureLine("stderr", "b")).toBe(true);
    expect(got).toEqual(["stdout:one\n", "b stderr:b\n"]);
    conn.close();
  });

  it("stays off when the runner's config does not ask for it", () => {
    const [conn] = open(false);
    conn.enableCapture();
    conn
      .execute(executionRequest("a"), { captured: () => expect.fail("captured") })
      .catch(() => {});
    expect(conn.captures).toBe(false);
    expect(conn.captureLine("stdout", "x")).toBe(false);
    conn.close();
  });
});

/** A listener's handler, read as data (not called). */
const handler = (listener: object, name: string): unknown =>
  (listener as Record<string, unknown>)[name];

describe("LiveAttempt with capture", () => {
  const written: OutputFields[][] = [];
  const store = {
    appendOutput: (_j: string, _r: number, entries: readonly OutputFields[]) => {
      written.push([...entries]);
      return Promise.resolve();
    },
    addDroppedBytes: () => Promise.resolve(),
    writeProgress: () => Promise.resolve(true),
  } as unknown as LiveStore;
  const ctx = (outputMaxBytesPerAttempt: number): LiveContext => ({
    store,
    config: { progressWritesPerSecond: 4, outputMaxBytesPerAttempt },
    onError: (e) => {
      throw e;
    },
  });
  const ref = { jobId: "j", fence: "1", run: 1, resultTtlSeconds: 0, runner: "rrq" };
  const capturing = { captures: true } as RunnerConnection;
  beforeEach(() => void (written.length = 0));

  it("a runner without hello gets no live field, yet its lines are stored, under the same cap", async () => {
    const live = new LiveAttempt(ctx(10), ref, new Set(), capturing);
    expect(live.request).toBeUndefined();
    expect(live.active).toBe(true);
    expect(handler(live.listener, "output")).toBeUndefined();
    expect(handler(live.listener, "progress")).toBeUndefined();
    live.listener.captured!("stdout", "hello\n");
    live.listener.captured!("stderr", "world\n");
    await live.afterOutcome("completed");
    expect(written.flat()).toEqual([
      { k: "out", d: "hello\n" },
      { k: "err", d: "worl" },
      { k: "truncated", dropped: "2" },
      { k: "closed", status: "completed" },
    ]);
  });

  it("a runner that offered output keeps the request's live field as it was", () => {
    const live = new LiveAttempt(ctx(100), ref, new Set(["output"]), capturing);
    expect(live.request).toMatchObject({ progress: false, output: true, output_max_bytes: 100 });
    expect(handler(live.listener, "output")).toBeDefined();
    expect(handler(live.listener, "captured")).toBeDefined();
  });

  it("nothing without output enabled orchestrator-side, or without capture", () => {
    const off = new LiveAttempt(ctx(0), ref, new Set(), capturing);
    expect(off.active).toBe(false);
    expect(handler(off.listener, "captured")).toBeUndefined();
    const plain = new LiveAttempt(ctx(100), ref, new Set(), {} as RunnerConnection);
    expect(plain.active).toBe(false);
    const offered = new LiveAttempt(ctx(100), ref, new Set(["output"]), {} as RunnerConnection);
    expect(handler(offered.listener, "captured")).toBeUndefined();
  });
});

describe("config", () => {
  const runners = { node: { cmd: ["node", "r.js"] } };

  it("is off by default and reads [rrq.runner_capture]", () => {
    expect(resolveConfig({ runners }).runnerCapture.size).toBe(0);
    const c = resolveConfig({ runners, runner_capture: { node: true } });
    expect(c.runnerCapture.get("node")).toBe(true);
  });

  it("rejects a value that is not a boolean and names an unknown runner", () => {
    expect(() => resolveConfig({ runners, runner_capture: { node: "yes" } })).toThrow(
      /runner_capture\.node/,
    );
    expect(() => resolveConfig({ runners, runner_capture: { gpu: true } })).toThrow(
      /runner_capture\.gpu: no runner 'gpu' is configured \(configured runners: node\)/,
    );
    expect(() => resolveConfig({ runners, runner_capture: true })).toThrow(
      /runner_capture must be a table/,
    );
  });
});

describe("end to end", () => {
  const fx = useProducerFixture();
  const workers = useWorkers();
  afterEach(() => void vi.restoreAllMocks());

  function start(extra: Record<string, unknown>, runner: Record<string, unknown>) {
    const c = testConfig(
      fx.redis.url,
      { default_job_timeout_seconds: 20, ...extra },
      { node: { pool_size: 1, max_in_flight: 1, ...runner } },
    );
    return workers.start(c);
  }

  /** Starts the Node conformance runner over `transport` with its prints captured. */
  const startCapturing = (transport: string) =>
    start({ runner_capture: { node: true } }, { cmd: [process.execPath, NODE_RUNNER], transport });

  async function noise(lines: number): Promise<OutputEntry[]> {
    const id = await fx.producer.enqueue("noise", { lines });
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("COMPLETED");
    return (await outputClosed(fx.redis.client, id)).entries;
  }
  const text = (entries: OutputEntry[], kind: "out" | "err") =>
    entries.flatMap((e) => (e.kind === kind ? [e.data] : [])).join("");
  const lines = (n: number, times = 1) =>
    Array.from({ length: n }, (_, i) => `noise ${i}\n`.repeat(times)).join("");

  it("Node conformance runner over unix: printed lines are stored as out / err", async () => {
    await startCapturing("unix");
    const entries = await noise(3);
    // the Node handler prints each stdout line twice (console.log and process.stdout.write)
    expect(text(entries, "out")).toBe(lines(3, 2));
    expect(text(entries, "err")).toBe(lines(3));
    expect(entries.at(-1)).toMatchObject({ kind: "closed", status: "completed" });
  });

  it("Node conformance runner over stdio: stdout is the frame channel, the prints arrive as err", async () => {
    await startCapturing("stdio");
    const entries = await noise(2);
    expect(text(entries, "out")).toBe("");
    // the runtime sends a handler's stdout to stderr on stdio (RUNNER_PROTOCOL §5)
    expect(text(entries, "err").split("\n").sort().join("\n")).toBe(
      lines(2, 3).split("\n").sort().join("\n"),
    );
  });

  it("with capture off the printed lines are not stored: the attempt, without output, has no stream", async () => {
    await start({}, { cmd: [process.execPath, NODE_RUNNER], transport: "unix" });
    const id = await fx.producer.enqueue("noise", { lines: 3 });
    expect((await jobSettled(fx.redis.client, id)).status).toBe("COMPLETED");
    // a stream would be written right after the outcome; give a wrong one the time to appear
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await fx.redis.client.exists(`rrq:output:${id}:1`)).toBe(0);
  });

  it.skipIf(!existsSync(RRQ_RUNNER))(
    "RRQ's rrq-runner (no hello): lines captured, requests still plain v2",
    async () => {
      // the worker dispatches with the attempt as the waiter (RunnerConnection.dispatch)
      const execute = vi.spyOn(RunnerConnection.prototype, "dispatch");
      await start(
        { runner_capture: { node: true }, runner_hello_timeout_ms: 200 },
        {
          cmd: [RRQ_RUNNER, "--settings", "rrq_conformance_handlers.settings"],
          transport: "tcp",
          tcp_port: tcpPort(),
          env: { PYTHONPATH: join(ROOT, "conformance", "interop") },
        },
      );
      const entries = await noise(2);
      expect(text(entries, "out")).toBe(lines(2));
      expect(text(entries, "err")).toBe(lines(2));
      expect(entries.at(-1)).toMatchObject({ kind: "closed", status: "completed" });
      expect(execute).toHaveBeenCalled();
      for (const [sent] of execute.mock.calls) expect("live" in sent).toBe(false);
    },
  );
});
