import { isUtf8 } from "node:buffer";
import { Decoder, Encoder, DecodeError } from "@msgpack/msgpack";
import { MAX_FRAME_BYTES, MAX_NESTING_DEPTH } from "./constants.js";
import { FrameDecodeError, FrameEncodeError } from "./errors.js";

/** Name of a payload encoding (RUNNER_PROTOCOL.md §4). */
export type EncodingName = "json" | "msgpack";

/** Turns envelope values into framed bytes and frame bodies back into values. */
export interface PayloadCodec {
  readonly name: EncodingName;
  /** Encodes `value` as one complete frame (length prefix included). */
  encodeFrame(value: unknown): Buffer;
  /** Decodes one frame body (without its length prefix) into a plain value. */
  decodeBody(body: Buffer): unknown;
}

/**
 * True when `value` nests arrays or objects more than `levels` deep (a scalar is 0 levels, `{}`
 * is 1). Stops at the first container past the limit, so the recursion never exceeds
 * `levels` + 1 frames; a cyclic value counts as too deep.
 */
export function nestsDeeperThan(value: unknown, levels: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (levels === 0) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (nestsDeeperThan(item, levels - 1)) return true;
    return false;
  }
  for (const key in value) {
    if (nestsDeeperThan((value as Record<string, unknown>)[key], levels - 1)) return true;
  }
  return false;
}

const tooDeepMessage = `nested deeper than ${MAX_NESTING_DEPTH} levels`;

/**
 * What a writer must know about a value before encoding it (RUNNER_PROTOCOL.md §4): "deep" when
 * it nests past `levels` (or is cyclic), "non-finite" when it holds NaN or ±Infinity, which JSON
 * cannot carry; "convert" when it holds objects that are not plain (Date, Buffer, class
 * instances), which JSON writes through toJSON but MessagePack would write as ext or bin.
 */
function writeCheck(value: unknown, levels: number): "deep" | "non-finite" | "convert" | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? undefined : "non-finite";
  if (value === null || typeof value !== "object") return undefined;
  if (levels === 0) return "deep";
  let found: "convert" | undefined;
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = writeCheck(item, levels - 1);
      if (problem === "deep" || problem === "non-finite") return problem;
      found ??= problem;
    }
    return found;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return "convert";
  for (const key in value) {
    const problem = writeCheck((value as Record<string, unknown>)[key], levels - 1);
    if (problem === "deep" || problem === "non-finite") return problem;
    found ??= problem;
  }
  return found;
}

/**
 * Refuses to write a value that readers must reject (RUNNER_PROTOCOL.md §4): nested past the
 * limit, or holding NaN or ±Infinity. Returns true when the value holds non-plain objects.
 */
export function checkEncodableDepth(value: unknown): boolean {
  const problem = writeCheck(value, MAX_NESTING_DEPTH);
  if (problem === "deep")
    throw new FrameEncodeError("not_encodable", `value is ${tooDeepMessage} (or cyclic)`);
  if (problem === "non-finite")
    throw new FrameEncodeError(
      "not_encodable",
      "value holds NaN or Infinity, which JSON cannot carry",
    );
  return problem === "convert";
}

/** Rejects a decoded body past the nesting limit (RUNNER_PROTOCOL.md §4). */
function checkDecodedDepth<T>(value: T): T {
  if (nestsDeeperThan(value, MAX_NESTING_DEPTH)) {
    throw new FrameDecodeError("malformed_payload", `body is ${tooDeepMessage}`);
  }
  return value;
}

function frameHeaderFor(length: number): void {
  if (length > MAX_FRAME_BYTES) {
    throw new FrameEncodeError(
      "frame_too_large",
      `frame payload is ${length} bytes; the limit is ${MAX_FRAME_BYTES}`,
    );
  }
}

/**
 * The JSON text of one frame body, with the checks every writer makes: nesting limit, JSON
 * encodability and the frame size limit. Throws {@link FrameEncodeError}.
 */
export function frameJson(value: unknown): string {
  checkEncodableDepth(value);
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (cause) {
    throw new FrameEncodeError("not_encodable", "value is not JSON-serializable", { cause });
  }
  if (text === undefined) throw new FrameEncodeError("not_encodable", "value is not JSON");
  // UTF-8 takes at most 3 bytes per UTF-16 unit: count bytes only when that could matter.
  if (text.length * 3 > MAX_FRAME_BYTES) frameHeaderFor(Buffer.byteLength(text, "utf8"));
  return text;
}

/** RRQ's encoding: compact UTF-8 JSON. */
export const jsonCodec: PayloadCodec = {
  name: "json",
  encodeFrame(value: unknown): Buffer {
    const text = frameJson(value);
    const length = Buffer.byteLength(text, "utf8");
    const frame = Buffer.allocUnsafe(4 + length);
    frame.writeUInt32BE(length, 0);
    frame.write(text, 4, "utf8");
    return frame;
  },
  decodeBody(body: Buffer): unknown {
    if (!isUtf8(body)) throw new FrameDecodeError("invalid_utf8", "JSON body is not valid UTF-8");
    let value: unknown;
    try {
      value = JSON.parse(body.toString("utf8"));
    } catch (cause) {
      throw new FrameDecodeError("malformed_payload", "body is not a JSON value", { cause });
    }
    return checkDecodedDepth(value);
  },
};

// @msgpack/msgpack decodes invalid UTF-8 leniently. The protocol requires `invalid_utf8`, so
// every str is checked with Node's native validator before the library decodes it. This hooks a
// method that the library's typings mark private; the msgpack vectors test guards it.
interface DecoderInternals {
  bytes: Uint8Array;
  pos: number;
  decodeUtf8String: (this: DecoderInternals, byteLength: number, headerOffset: number) => string;
}
class StrictUtf8Decoder extends Decoder {}
{
  const base = (Decoder.prototype as unknown as DecoderInternals).decodeUtf8String;
  (StrictUtf8Decoder.prototype as unknown as DecoderInternals).decodeUtf8String = function (
    this: DecoderInternals,
    byteLength: number,
    headerOffset: number,
  ): string {
    const start = this.pos + headerOffset;
    if (this.bytes.byteLength >= start + byteLength) {
      const view = this.bytes.subarray(start, start + byteLength);
      if (!isUtf8(view)) throw new FrameDecodeError("invalid_utf8", "a msgpack str is not UTF-8");
    }
    return base.call(this, byteLength, headerOffset);
  };
}

// Map keys must be str (RUNNER_PROTOCOL.md §4); the library also takes integers, which the
// Python and Rust codecs refuse (found by the chaos fuzzer).
const msgpackDecoder = new StrictUtf8Decoder({
  keyDecoder: null,
  mapKeyConverter: (key: unknown) => {
    if (typeof key === "string") return key;
    throw new DecodeError(`map keys must be strings, got ${typeof key}`);
  },
});
// The library counts every value, scalars included, and starts at 1: a body 100 containers deep
// (the protocol's limit, checked before encoding) has its scalars at depth 101, which its default
// maxDepth of 100 refused.
const msgpackEncoder = new Encoder({ ignoreUndefined: true, maxDepth: MAX_NESTING_DEPTH + 1 });

/**
 * Why a decoded MessagePack value is outside what readers accept (RUNNER_PROTOCOL.md §4): nested
 * past the limit, or holding a value JSON has no equivalent for (bin, ext, a NaN or infinite
 * float). One walk, bounded like {@link nestsDeeperThan}; undefined when the value is fine.
 */
function msgpackProblem(value: unknown, levels: number): string | undefined {
  if (typeof value === "number")
    return Number.isFinite(value) ? undefined : "holds a NaN or infinite float";
  if (value === null || typeof value !== "object") return undefined;
  if (levels === 0) return `is ${tooDeepMessage}`;
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = msgpackProblem(item, levels - 1);
      if (problem) return problem;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null)
    return `holds ${value instanceof Uint8Array ? "a bin" : "an ext"} value, outside the JSON data model`;
  for (const key in value) {
    const problem = msgpackProblem((value as Record<string, unknown>)[key], levels - 1);
    if (problem) return problem;
  }
  return undefined;
}

/** MessagePack encoding of the same envelope (rrqkit extension). */
export const msgpackCodec: PayloadCodec = {
  name: "msgpack",
  encodeFrame(value: unknown): Buffer {
    // Non-plain objects (a Date in a result) go as their JSON form, never as ext or bin, so both
    // encodings carry the same data and every reader accepts it.
    if (checkEncodableDepth(value)) value = JSON.parse(frameJson(value)) as unknown;
    let body: Uint8Array;
    try {
      body = msgpackEncoder.encode(value);
    } catch (cause) {
      throw new FrameEncodeError("not_encodable", "value is not MessagePack-encodable", { cause });
    }
    frameHeaderFor(body.byteLength);
    const frame = Buffer.allocUnsafe(4 + body.byteLength);
    frame.writeUInt32BE(body.byteLength, 0);
    frame.set(body, 4);
    return frame;
  },
  decodeBody(body: Buffer): unknown {
    let value: unknown;
    try {
      value = msgpackDecoder.decode(body);
    } catch (cause) {
      if (cause instanceof FrameDecodeError) throw cause;
      const detail = cause instanceof DecodeError || cause instanceof RangeError;
      throw new FrameDecodeError(
        "malformed_payload",
        detail ? cause.message : "body is not one MessagePack value",
        { cause },
      );
    }
    const problem = msgpackProblem(value, MAX_NESTING_DEPTH);
    if (problem) throw new FrameDecodeError("malformed_payload", `body ${problem}`);
    return value;
  },
};

/** The codec for an encoding name. */
export function codecFor(name: EncodingName): PayloadCodec {
  return name === "msgpack" ? msgpackCodec : jsonCodec;
}
