import { describe, expect, it } from "vitest";
import {
  codecFor,
  FrameDecodeError,
  FrameDecoder,
  parseFrame,
  MAX_FRAME_BYTES,
  jsonCodec,
  FrameEncodeError,
  type Frame,
} from "../src/protocol/index.js";
import { loadVectors } from "./support/vectors.js";
import { frameValidator, FrameSchemaError } from "../../../src/protocol/validate.js";

const validateFrame = frameValidator();

const vectors = loadVectors();

/** Decodes a whole byte stream, feeding it in chunks of `chunkSize` (0 = all at once). */
function decodeStream(bytes: Buffer, encoding: "json" | "msgpack", chunkSize = 0) {
  const codec = codecFor(encoding);
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  const step = chunkSize || bytes.length;
  for (let offset = 0; offset < bytes.length; offset += step) {
    for (const body of decoder.push(bytes.subarray(offset, offset + step))) {
      frames.push(parseFrame(codec.decodeBody(body)));
    }
  }
  decoder.end();
  return frames;
}

function decodeError(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (error) {
    if (error instanceof FrameDecodeError) return error.code;
    throw error;
  }
}

describe("golden vectors: valid", () => {
  const valid = vectors.filter((v) => v.kind === "valid");
  it("covers both encodings", () => {
    expect(new Set(valid.map((v) => v.encoding))).toEqual(new Set(["json", "msgpack"]));
  });
  for (const v of valid) {
    it(`${v.encoding}/${v.name}: decodes whole and chunked, re-encodes byte-identically`, () => {
      for (const chunk of [0, 1, 3, 7]) {
        expect(decodeStream(v.bytes, v.encoding, chunk)).toEqual(v.frames);
      }
      for (const frame of v.frames!) expect(() => validateFrame(frame)).not.toThrow();
      const codec = codecFor(v.encoding);
      const reencoded = Buffer.concat(
        decodeStream(v.bytes, v.encoding).map((f) => codec.encodeFrame(f)),
      );
      expect(reencoded.equals(v.bytes)).toBe(true);
    });
  }
});

describe("golden vectors: invalid", () => {
  for (const v of vectors.filter((x) => x.kind === "invalid")) {
    it(`${v.encoding}/${v.name}: ${v.error ?? v.action}`, () => {
      expect(decodeError(() => decodeStream(v.bytes, v.encoding))).toBe(v.error ?? null);
      expect(decodeError(() => decodeStream(v.bytes, v.encoding, 1))).toBe(v.error ?? null);
      if (v.error === "invalid_frame") {
        // The schemas reject what the codec reports as invalid_frame.
        const body = v.bytes.subarray(4);
        expect(() => validateFrame(codecFor(v.encoding).decodeBody(body) as Frame)).toThrow(
          FrameSchemaError,
        );
      }
    });
  }
});

describe("golden vectors: accepted (RUNNER_PROTOCOL.md §3, §4)", () => {
  const accepted = vectors.filter((v) => v.kind === "accepted");
  it("exist in both encodings", () => {
    expect(new Set(accepted.map((v) => v.encoding))).toEqual(new Set(["json", "msgpack"]));
  });
  for (const v of accepted) {
    it(`${v.encoding}/${v.name}: decodes whole and chunked into the listed frames`, () => {
      for (const chunk of [0, 1, 5])
        expect(decodeStream(v.bytes, v.encoding, chunk)).toEqual(v.frames);
    });
  }
});

describe("frame size cap", () => {
  it("accepts a frame of exactly 16 MiB and rejects one byte more on encode", () => {
    const overhead = Buffer.byteLength(JSON.stringify({ type: "ping", payload: { nonce: "" } }));
    const exact = { type: "ping", payload: { nonce: "x".repeat(MAX_FRAME_BYTES - overhead) } };
    const bytes = jsonCodec.encodeFrame(exact);
    expect(bytes.readUInt32BE(0)).toBe(MAX_FRAME_BYTES);
    expect(decodeStream(bytes, "json", 1 << 20)).toEqual([exact]);
    const over = { type: "ping", payload: { nonce: "x".repeat(MAX_FRAME_BYTES - overhead + 1) } };
    expect(() => jsonCodec.encodeFrame(over)).toThrow(FrameEncodeError);
  });

  it("rejects an oversize header before any body byte arrives", () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME_BYTES + 1);
    expect(decodeError(() => new FrameDecoder().push(header))).toBe("frame_too_large");
  });
});

describe("nesting limit", () => {
  /** A ping whose body nests `levels` deep (the envelope is level 1) with a scalar at the bottom. */
  function pingNested(levels: number): Frame {
    let extra: unknown = 1;
    for (let i = 0; i < levels - 2; i++) extra = [extra];
    return { type: "ping", payload: { nonce: "n", extra } as never };
  }

  for (const encoding of ["json", "msgpack"] as const) {
    it(`${encoding}: encodes and decodes a body exactly 100 levels deep with scalars at the bottom, and refuses 101`, () => {
      const codec = codecFor(encoding);
      const deepest = pingNested(100);
      expect(decodeStream(codec.encodeFrame(deepest), encoding)).toEqual([deepest]);
      expect(() => codec.encodeFrame(pingNested(101))).toThrow(/nested deeper than 100 levels/);
    });
  }
});
