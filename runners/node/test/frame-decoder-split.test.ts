import { describe, expect, it } from "vitest";
import { FrameDecoder } from "../src/protocol/frame-decoder.js";

/** `bodies` as one framed byte stream (4-byte big-endian length, then the body). */
function framed(bodies: Buffer[]): Buffer {
  return Buffer.concat(
    bodies.flatMap((body) => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(body.length);
      return [header, body];
    }),
  );
}

describe("FrameDecoder over arbitrary chunking", () => {
  it("hands over every body, whatever the chunk boundaries (headers and bodies split too)", () => {
    let seed = 11;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let round = 0; round < 200; round++) {
      const bodies = Array.from({ length: 1 + next(20) }, (_, i) =>
        Buffer.from(`${round}:${i}:${"x".repeat(next(300))}`),
      );
      const stream = framed(bodies);
      const decoder = new FrameDecoder();
      const got: string[] = [];
      for (let at = 0; at < stream.length;) {
        const size = 1 + next(next(2) ? 7 : 400);
        decoder.feed(stream.subarray(at, at + size));
        at += size;
        for (let body = decoder.next(); body; body = decoder.next()) got.push(body.toString());
      }
      expect(got).toEqual(bodies.map(String));
      expect(decoder.idle).toBe(true);
      expect(() => decoder.end()).not.toThrow();
    }
  });

  it("still reports a stream that stops inside a frame", () => {
    const decoder = new FrameDecoder();
    decoder.feed(framed([Buffer.from("hello")]).subarray(0, 6));
    expect(decoder.next()).toBeUndefined();
    expect(() => decoder.end()).toThrow(/inside a frame/);
  });
});
