/**
 * Live jobs in the Node runtime (RUNNER_PROTOCOL.md §8, §13): hello features and tags, progress
 * coalescing, streamed output with seq and the byte cap, and nothing live for a request that did
 * not ask for it. Runs the runtime over an in-process channel pair (no process).
 */
import { afterEach, describe, expect, it } from "vitest";
import { Registry, runnerTags, type Handler } from "../src/index.js";
import {
  memoryChannelPair,
  type Frame,
  type FrameChannel,
  type LiveOptions,
} from "../src/protocol/index.js";
import { RunnerRuntime } from "../src/runtime/runtime.js";
import { cancel, request } from "./support/requests.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const LIVE: LiveOptions = {
  progress: true,
  output: true,
  progress_interval_ms: 200,
  output_max_bytes: 1 << 20,
};

const open: FrameChannel[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
  delete process.env.RRQ_RUNNER_TAGS;
});

/** A runtime serving `handlers` on one end of a pair; the test drives the other end. */
function serve(handlers: Record<string, Handler>, options: { tags?: string[] } = {}) {
  const registry = new Registry();
  for (const [name, handler] of Object.entries(handlers)) registry.register(name, handler);
  const logs: string[] = [];
  const runtime = new RunnerRuntime(registry, {
    hello: true,
    tags: options.tags,
    log: (m) => logs.push(m),
  });
  const [client, server] = memoryChannelPair();
  open.push(client);
  const frames: Frame[] = [];
  let wake: (() => void) | undefined;
  client.on({
    frame: (f) => {
      frames.push(f);
      wake?.();
    },
  });
  runtime.serve(server);
  /** Waits until a response frame has arrived; returns every frame so far, hello dropped. */
  const untilResponse = async (count = 1): Promise<Frame[]> => {
    const deadline = Date.now() + 5000;
    while (frames.filter((f) => f.type === "response").length < count) {
      if (Date.now() > deadline) throw new Error(`no response; frames: ${JSON.stringify(frames)}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return frames.filter((f) => f.type !== "hello");
  };
  return { client, frames, logs, untilResponse };
}

const progressOf = (frames: Frame[]) =>
  frames.filter((f) => f.type === "progress").map((f) => f.payload);
const outputOf = (frames: Frame[]) =>
  frames.filter((f) => f.type === "output").map((f) => f.payload);

describe("hello", () => {
  it("announces the progress and output features, and no tags key without tags", async () => {
    const { frames } = serve({});
    await sleep(0);
    expect(frames[0]!.type).toBe("hello");
    expect(frames[0]!.payload).toMatchObject({
      features: expect.arrayContaining(["progress", "output"]),
    });
    expect(frames[0]!.payload).not.toHaveProperty("tags");
  });

  it("lists tags from code and RRQ_RUNNER_TAGS, deduplicated and sorted", async () => {
    process.env.RRQ_RUNNER_TAGS = " region:eu, gpu ,,zone=a/1";
    const { frames } = serve({}, { tags: ["gpu", "cuda.12"] });
    await sleep(0);
    expect(frames[0]!.payload).toMatchObject({ tags: ["cuda.12", "gpu", "region:eu", "zone=a/1"] });
  });

  it("refuses an invalid tag or more than 32 at construction", () => {
    expect(() => runnerTags(["two words"])).toThrow(RangeError);
    expect(() => runnerTags([], "ok,b@d")).toThrow(RangeError);
    expect(() => runnerTags(["g".repeat(65)])).toThrow(RangeError);
    expect(() => runnerTags(Array.from({ length: 33 }, (_, i) => `t${i}`))).toThrow(/at most 32/);
    expect(runnerTags(["g".repeat(64)])).toHaveLength(1);
  });
});

describe("progress", () => {
  it("coalesces a burst to the first report and the latest, flushed before the response", async () => {
    const s = serve({
      burst: (_r, _s, ctx) => {
        for (let i = 1; i <= 10; i++) ctx.progress(i / 10, `step ${i}`, { i });
        return "done";
      },
    });
    const r = request("burst", {}, { live: LIVE });
    s.client.send(r.frame);
    const frames = await s.untilResponse();
    expect(frames.map((f) => f.type)).toEqual(["progress", "progress", "response"]);
    expect(progressOf(frames)).toEqual([
      {
        job_id: r.jobId,
        request_id: r.requestId,
        progress: 0.1,
        message: "step 1",
        detail: { i: 1 },
      },
      {
        job_id: r.jobId,
        request_id: r.requestId,
        progress: 1,
        message: "step 10",
        detail: { i: 10 },
      },
    ]);
  });

  it("sends the pending report when the interval has passed, while the handler still runs", async () => {
    let seenBeforeEnd = 0;
    const s = serve({
      slow: async (_r, _s, ctx) => {
        ctx.progress(0.1);
        ctx.progress(0.2); // pending
        ctx.progress(0.3); // replaces it
        await sleep(120);
        seenBeforeEnd = progressOf(s.frames).length;
        return null;
      },
    });
    s.client.send(request("slow", {}, { live: { ...LIVE, progress_interval_ms: 40 } }).frame);
    const frames = await s.untilResponse();
    expect(seenBeforeEnd).toBe(2);
    expect(progressOf(frames).map((p) => p.progress)).toEqual([0.1, 0.3]);
    expect(frames.at(-1)!.type).toBe("response");
  });

  it("sends every report with progress_interval_ms 0", async () => {
    const s = serve({
      each: (_r, _s, ctx) => {
        for (const v of [0, 0.5, 1]) ctx.progress(v);
      },
    });
    s.client.send(request("each", {}, { live: { ...LIVE, progress_interval_ms: 0 } }).frame);
    expect(progressOf(await s.untilResponse()).map((p) => p.progress)).toEqual([0, 0.5, 1]);
  });

  it("clamps the value, cuts the message, leaves out an oversized detail, refuses a non-number", async () => {
    let refused: unknown;
    const s = serve({
      odd: (_r, _s, ctx) => {
        ctx.progress(7, "é".repeat(1100), { blob: "x".repeat(5000) });
        ctx.progress(-1, null, null);
        ctx.progress(NaN, "unknown");
        try {
          ctx.progress("half" as unknown as number);
        } catch (error) {
          refused = error;
        }
      },
    });
    s.client.send(request("odd", {}, { live: { ...LIVE, progress_interval_ms: 0 } }).frame);
    const p = progressOf(await s.untilResponse());
    expect(p.map((x) => x.progress)).toEqual([1, 0, null]);
    expect([...p[0]!.message!]).toHaveLength(1024);
    expect(p[0]!.detail).toBeNull();
    expect(s.logs.some((l) => l.includes("progress detail left out"))).toBe(true);
    expect(refused).toBeInstanceOf(TypeError);
  });

  it("loses only the report whose detail cannot be encoded, with a log line", async () => {
    const s = serve({
      nan: (_r, _s, ctx) => {
        ctx.progress(0.5, "bad", { ratio: NaN }); // JSON.stringify says null; the codec refuses
        ctx.progress(0.6, "good", { at: new Date(0) });
        return "ok";
      },
    });
    s.client.send(request("nan", {}, { live: { ...LIVE, progress_interval_ms: 0 } }).frame);
    const frames = await s.untilResponse();
    expect(progressOf(frames)).toMatchObject([
      { progress: 0.6, message: "good", detail: { at: "1970-01-01T00:00:00.000Z" } },
    ]);
    expect(frames.at(-1)).toMatchObject({ type: "response", payload: { result: "ok" } });
    expect(s.logs.some((l) => l.includes("progress frame not sent"))).toBe(true);
  });

  it("flushes the pending report before a cancel's outcome and ignores later calls", async () => {
    let after: (() => void) | undefined;
    const s = serve({
      wait: async (_r, signal, ctx) => {
        ctx.progress(0.1);
        ctx.progress(0.4); // pending: the cancel's outcome must not overtake it
        after = () => {
          ctx.progress(0.9);
          ctx.output.write("late\n");
        };
        await new Promise((resolve) => signal.addEventListener("abort", resolve));
      },
    });
    const r = request("wait", {}, { live: LIVE });
    s.client.send(r.frame);
    await sleep(20);
    s.client.send(cancel(r.jobId, r.requestId));
    const frames = await s.untilResponse();
    after!();
    await sleep(20);
    expect(s.frames.filter((f) => f.type !== "hello").map((f) => f.type)).toEqual([
      "progress",
      "progress",
      "response",
    ]);
    expect(progressOf(frames).map((p) => p.progress)).toEqual([0.1, 0.4]);
    expect(frames.at(-1)!.payload).toMatchObject({ error: { type: "cancelled" } });
  });
});

describe("output", () => {
  it("streams writes and JSON lines with consecutive seq, before the response", async () => {
    const s = serve({
      talk: async (_r, _s, ctx) => {
        ctx.output.write("a\n");
        ctx.output.write("b\n");
        ctx.output.json({ n: 1, s: "ü" });
        await sleep(5);
        ctx.output.write("c\n");
        ctx.output.write(""); // nothing
        return ctx.output.enabled;
      },
    });
    s.client.send(request("talk", {}, { live: { ...LIVE, progress: false } }).frame);
    const frames = await s.untilResponse();
    const out = outputOf(frames);
    expect(out.map((o) => o.seq)).toEqual(out.map((_, i) => i));
    expect(out.map((o) => o.data).join("")).toBe('a\nb\n{"n":1,"s":"ü"}\nc\n');
    expect(out.every((o) => o.stream === "handler" && !o.truncated && o.dropped_bytes === 0)).toBe(
      true,
    );
    // One event-loop turn's writes travel in one frame.
    expect(out[0]!.data).toBe('a\nb\n{"n":1,"s":"ü"}\n');
    expect(frames.at(-1)).toMatchObject({ type: "response", payload: { result: true } });
  });

  it("cuts at output_max_bytes on a character boundary and sends one truncation frame last", async () => {
    const s = serve({
      flood: async (_r, _s, ctx) => {
        for (let i = 0; i < 3; i++) {
          ctx.output.write("é".repeat(30)); // 60 bytes
          await sleep(1);
        }
      },
    });
    s.client.send(request("flood", {}, { live: { ...LIVE, output_max_bytes: 101 } }).frame);
    const frames = await s.untilResponse();
    const out = outputOf(frames);
    const data = out.filter((o) => !o.truncated).map((o) => o.data);
    expect(Buffer.byteLength(data.join(""))).toBe(100); // 101 would split a character
    const last = out.at(-1)!;
    expect(last).toMatchObject({ data: "", truncated: true, dropped_bytes: 80, stream: "handler" });
    expect(out.filter((o) => o.truncated)).toHaveLength(1);
    expect(out.map((o) => o.seq)).toEqual(out.map((_, i) => i));
    expect(frames.at(-1)!.type).toBe("response");
  });

  it("splits a write above 64 KiB into frames of at most 65536 bytes", async () => {
    const text = "€".repeat(50_000); // 150,000 bytes
    const s = serve({ big: (_r, _s, ctx) => ctx.output.write(text) });
    s.client.send(request("big", {}, { live: LIVE }).frame);
    const out = outputOf(await s.untilResponse());
    expect(out.length).toBe(3);
    for (const o of out) expect(Buffer.byteLength(o.data)).toBeLessThanOrEqual(65536);
    expect(out.map((o) => o.data).join("")).toBe(text);
  });

  it("refuses a non-string write and a value JSON cannot hold, even when output is off", async () => {
    const errors: unknown[] = [];
    const s = serve({
      bad: (_r, _s, ctx) => {
        for (const f of [
          () => ctx.output.write(42 as unknown as string),
          () => ctx.output.json(undefined),
          () => ctx.output.json({ n: 1n }),
        ]) {
          try {
            f();
          } catch (error) {
            errors.push(error);
          }
        }
      },
    });
    s.client.send(request("bad").frame);
    await s.untilResponse();
    expect(errors).toHaveLength(3);
    expect(errors.every((e) => e instanceof TypeError)).toBe(true);
  });
});

describe("without live", () => {
  it.each([
    ["absent", undefined],
    ["all false", { ...LIVE, progress: false, output: false }],
  ])("sends no live frame for a request whose live is %s", async (_name, live) => {
    const s = serve({
      both: (_r, _s, ctx) => {
        ctx.progress(0.5, "half");
        ctx.output.write("text\n");
        return { progress: ctx.progressEnabled, output: ctx.output.enabled };
      },
    });
    s.client.send(request("both", {}, live ? { live } : {}).frame);
    const frames = await s.untilResponse();
    await sleep(10);
    expect(s.frames.filter((f) => f.type !== "hello").map((f) => f.type)).toEqual(["response"]);
    expect(frames[0]!.payload).toMatchObject({ result: { progress: false, output: false } });
  });

  it("sends only the enabled kind", async () => {
    const s = serve({
      both: (_r, _s, ctx) => {
        ctx.progress(0.5);
        ctx.output.write("text\n");
      },
    });
    s.client.send(request("both", {}, { live: { ...LIVE, output: false } }).frame);
    const frames = await s.untilResponse();
    expect(frames.map((f) => f.type)).toEqual(["progress", "response"]);
  });
});
