/** The in-process frame channel pair: ordering, asynchrony, close, and the writer's checks. */
import { describe, expect, it } from "vitest";
import {
  FrameEncodeError,
  memoryChannelPair,
  type CloseReason,
  type Frame,
  type FrameChannel,
} from "../src/protocol/index.js";

function record(channel: FrameChannel) {
  const frames: Frame[] = [];
  const closes: CloseReason[] = [];
  channel.on({ frame: (f) => frames.push(f), close: (r) => closes.push(r) });
  return { frames, closes };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const ping = (nonce: string): Frame => ({ type: "ping", payload: { nonce } });
const response = (result: unknown): Frame => ({
  type: "response",
  payload: { job_id: "j", request_id: "r", status: "success", result },
});

function nested(levels: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

describe("memoryChannelPair", () => {
  it("delivers frames in order, later (never inside send)", async () => {
    const [a, b] = memoryChannelPair();
    const got = record(b);
    expect(a.send(ping("1"))).toBe(true);
    expect(a.send(ping("2"))).toBe(true);
    expect(got.frames).toEqual([]);
    await settle();
    expect(got.frames).toEqual([ping("1"), ping("2")]);
  });

  it("hands a response over as its JSON round trip", async () => {
    const [a, b] = memoryChannelPair();
    const got = record(b);
    const result = { at: new Date(0), gone: undefined, list: [1, undefined] };
    a.send(response(result));
    await settle();
    expect(got.frames).toEqual([response({ at: "1970-01-01T00:00:00.000Z", list: [1, null] })]);
  });

  it("refuses what a socket writer refuses, sending nothing", async () => {
    const [a, b] = memoryChannelPair();
    const got = record(b);
    expect(() => a.send(response({ n: 1n }))).toThrow(FrameEncodeError);
    // A response's envelope is 2 levels deep, so a 99-level result is one too many.
    expect(() => a.send(response(nested(99)))).toThrow(/nested deeper than 100 levels/);
    expect(() => a.send(response("x".repeat(17 * 1024 * 1024)))).toThrow(/frame_too_large/);
    const deepPing: Frame = { type: "ping", payload: { nonce: "n", extra: nested(99) } as never };
    expect(() => a.send(deepPing)).toThrow(FrameEncodeError);
    a.send(response(nested(98)));
    await settle();
    expect(got.frames).toHaveLength(1);
  });

  it("a close delivers what was sent first, then EOF to the peer; later sends return false", async () => {
    const [a, b] = memoryChannelPair();
    const fromA = record(a);
    const atB = record(b);
    a.send(ping("last"));
    a.close();
    expect(a.closed).toBe(true);
    expect(fromA.closes).toEqual([{ kind: "local" }]);
    expect(a.send(ping("late"))).toBe(false);
    expect(b.closed).toBe(false);
    await settle();
    expect(atB.frames).toEqual([ping("last")]);
    expect(atB.closes).toEqual([{ kind: "eof" }]);
    expect(b.closeReason).toEqual({ kind: "eof" });
    expect(b.send(ping("after EOF"))).toBe(false);
  });
});
