/** Live jobs units (issue 23): progress coalescing, the output writer, frame routing. */
import { memoryChannelPair, requestFrame, type Frame } from "@rrqkit/runner/protocol";
import { describe, expect, it } from "vitest";
import { LiveAttempt, type LiveContext } from "../src/live/attempt.js";
import type { OutputPayload, ProgressPayload } from "../src/live/frames.js";
import { OutputBudget, OutputWriter, utf8Prefix } from "../src/live/output.js";
import { progressValue, ProgressCoalescer } from "../src/live/progress.js";
import { RunnerConnection } from "../src/runner/runner-connection.js";
import type { LiveStore, OutputFields, ProgressValue } from "../src/store/live-store.js";
import { executionRequest } from "./support/worker-harness.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const report = (i: number): ProgressPayload => ({
  job_id: "j",
  request_id: "r",
  progress: i / 100,
  message: `m${i}`,
  detail: null,
});
const chunk = (data: string, extra: Partial<OutputPayload> = {}): OutputPayload => ({
  job_id: "j",
  request_id: "r",
  seq: 0,
  stream: "handler",
  data,
  truncated: false,
  dropped_bytes: 0,
  ...extra,
});

describe("ProgressCoalescer", () => {
  it("writes at most writesPerSecond (+1 for the first) of 100 reports a second, the last one included", async () => {
    const writes: Array<{ value: ProgressValue; at: number }> = [];
    const c = new ProgressCoalescer(async (value) => {
      writes.push({ value, at: Date.now() });
      await sleep(5);
    }, 4);
    const start = Date.now();
    for (let i = 1; i <= 100; i++) {
      c.report(report(i));
      await sleep(10);
    }
    const elapsed = (Date.now() - start) / 1000;
    await c.close();
    expect(c.received).toBe(100);
    expect(writes.length).toBeLessThanOrEqual(Math.ceil(elapsed * 4) + 2);
    expect(writes.length).toBeGreaterThanOrEqual(3);
    expect(writes.at(-1)!.value.message).toBe("m100");
    for (let i = 1; i < writes.length - 1; i++)
      expect(writes[i]!.at - writes[i - 1]!.at).toBeGreaterThanOrEqual(240);
    c.report(report(1));
    await sleep(300);
    expect(writes.at(-1)!.value.message).toBe("m100");
  });

  it("clamps progress, cuts the message, drops an oversized detail", () => {
    const v = progressValue(
      { ...report(0), progress: 7, message: "x".repeat(2000), detail: { big: "y".repeat(5000) } },
      new Date(0),
    );
    expect(v).toEqual({
      progress: 1,
      message: "x".repeat(1024),
      detail: null,
      at: new Date(0).toISOString(),
    });
  });

  it("survives a failing sink", async () => {
    const errors: unknown[] = [];
    const c = new ProgressCoalescer(
      () => Promise.reject(new Error("down")),
      100,
      (e) => errors.push(e),
    );
    c.report(report(1));
    await c.close();
    expect(errors).toHaveLength(1);
  });
});

describe("OutputWriter", () => {
  it("batches a turn's chunks, cuts at the cap, then reports the truncation before closed", async () => {
    const batches: OutputFields[][] = [];
    const budget = new OutputBudget();
    const w = new OutputWriter(
      (e) => {
        batches.push([...e]);
        return Promise.resolve();
      },
      10,
      budget,
    );
    w.write(chunk("abcd"));
    w.write(chunk("efgh", { stream: "stderr" }));
    w.write(chunk("ijklmn", { stream: "stdout" }));
    w.write(chunk("zzz"));
    await w.close("completed");
    expect(batches).toEqual([
      [
        { k: "log", d: "abcd" },
        { k: "err", d: "efgh" },
        { k: "out", d: "ij" },
      ],
      [
        { k: "truncated", dropped: "7" },
        { k: "closed", status: "completed" },
      ],
    ]);
    expect(budget.buffered).toBe(0);
  });

  it("drops chunks beyond the connection's buffer and counts them", async () => {
    const budget = new OutputBudget(5);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const batches: OutputFields[][] = [];
    const w = new OutputWriter(
      async (e) => {
        batches.push([...e]);
        await gate;
      },
      100,
      budget,
    );
    w.write(chunk("abcd"));
    w.write(chunk("efgh"));
    expect(w.overflowDropped).toBe(4);
    release();
    await w.close("failed");
    expect(batches.at(-1)).toEqual([
      { k: "truncated", dropped: "4" },
      { k: "closed", status: "failed" },
    ]);
  });

  it("counts the runner's own drops and never cuts a character", () => {
    expect(utf8Prefix("aé", 2)).toBe("a");
    const w = new OutputWriter(async () => {}, 100, new OutputBudget());
    w.write(chunk("", { truncated: true, dropped_bytes: 50 }));
    expect(w.dropped).toBe(50);
  });
});

describe("RunnerConnection live routing", () => {
  const request = (id: string) => executionRequest(id, { protocol_version: "2" });

  it("routes progress and output by request id; frames of unknown or finished requests are counted", async () => {
    const [ours, theirs] = memoryChannelPair();
    const conn = new RunnerConnection(ours);
    const got: string[] = [];
    theirs.on({ frame: () => {}, close: () => {} });
    const done = conn.execute(request("a"), {
      progress: (p) => got.push(`p:${p.progress}`),
      output: (o) => got.push(`o:${o.data}`),
    });
    const send = (frame: unknown) => theirs.send(frame as Frame);
    send({
      type: "progress",
      payload: { job_id: "job-a", request_id: "a", progress: 0.5, message: null, detail: null },
    });
    send({ type: "output", payload: { ...chunk("hi"), job_id: "job-a", request_id: "a" } });
    send({
      type: "progress",
      payload: { job_id: "job-x", request_id: "x", progress: 1, message: null, detail: null },
    });
    send({
      type: "progress",
      payload: { job_id: "job-b", request_id: "a", progress: 1, message: null, detail: null },
    });
    send({
      type: "response",
      payload: { job_id: "job-a", request_id: "a", status: "success", result: 1 },
    });
    send({
      type: "progress",
      payload: { job_id: "job-a", request_id: "a", progress: 1, message: null, detail: null },
    });
    await done;
    await sleep(10);
    expect(got).toEqual(["p:0.5", "o:hi"]);
    expect(conn.ignoredLiveFrames).toBe(3);
    expect(requestFrame(request("z")).type).toBe("request");
  });
});

describe("LiveAttempt", () => {
  it("sets live only for offered features and reports output dropped for a full connection buffer", async () => {
    const dropped: unknown[] = [];
    const written: OutputFields[][] = [];
    const store = {
      appendOutput: (_j: string, _r: number, entries: readonly OutputFields[]) => {
        written.push([...entries]);
        return Promise.resolve();
      },
      addDroppedBytes: (...args: unknown[]) => {
        dropped.push(["hash", ...args]);
        return Promise.resolve();
      },
      writeProgress: () => Promise.resolve(true),
    } as unknown as LiveStore;
    const ctx: LiveContext = {
      store,
      config: { progressWritesPerSecond: 4, outputMaxBytesPerAttempt: 8 * 1024 * 1024 },
      onError: (e) => {
        throw e;
      },
      dropped: (...args) => dropped.push(["metric", ...args]),
    };
    const ref = { jobId: "j", fence: "1", run: 1, resultTtlSeconds: 0, runner: "py" };
    const connection = {} as RunnerConnection;
    expect(new LiveAttempt(ctx, ref, new Set(["ping"]), connection).request).toBeUndefined();
    const live = new LiveAttempt(ctx, ref, new Set(["output"]), connection);
    expect(live.request).toEqual({
      progress: false,
      output: true,
      progress_interval_ms: 200,
      output_max_bytes: 8 * 1024 * 1024,
    });
    live.listener.output!(chunk("x".repeat(4 * 1024 * 1024 + 1)));
    live.listener.output!(chunk("ok"));
    await live.afterOutcome("completed");
    expect(written.flat()).toEqual([
      { k: "log", d: "ok" },
      { k: "truncated", dropped: String(4 * 1024 * 1024 + 1) },
      { k: "closed", status: "completed" },
    ]);
    expect(dropped).toEqual([
      ["metric", "j", "py", 4 * 1024 * 1024 + 1],
      ["hash", "j", "1", 4 * 1024 * 1024 + 1],
    ]);
  });
});
