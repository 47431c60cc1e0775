import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  codecFor,
  FrameDecodeError,
  FrameDecoder,
  MAX_FRAME_BYTES,
  parseFrame,
  type EncodingName,
  type Frame,
} from "@rrqkit/runner/protocol";
import { VECTORS_DIR } from "../lib/paths.js";
import type { Rng } from "../lib/rng.js";

/** Where inputs that showed a problem are saved (CHAOS_FUZZ_OUT, default a temp folder). */
export const FUZZ_OUT = process.env.CHAOS_FUZZ_OUT ?? join(tmpdir(), "rrq-chaos-fuzz");

/** Saves an input for reproduction; returns its path. */
export function saveInput(prefix: string, input: Buffer): string {
  mkdirSync(FUZZ_OUT, { recursive: true });
  const name = `${prefix}-${createHash("sha1").update(input).digest("hex").slice(0, 12)}.bin`;
  const path = join(FUZZ_OUT, name);
  writeFileSync(path, input);
  return path;
}

/** Handlers a fuzzed request must never name (they sleep, crash or block a runner). */
export const UNSAFE_HANDLERS = new Set([
  "sleep",
  "crash",
  "ignore_cancel",
  "large",
  "noise",
  "timeout",
  "throw",
  "fail",
  "retry",
  "flaky",
]);

/** The golden vectors of one encoding, as seed inputs. */
export function vectorSeeds(encoding: EncodingName): Buffer[] {
  const manifest = JSON.parse(readFileSync(join(VECTORS_DIR, "manifest.json"), "utf8")) as {
    vectors: Array<{ encoding: string; file: string }>;
  };
  return manifest.vectors
    .filter((v) => v.encoding === encoding)
    .map((v) => readFileSync(join(VECTORS_DIR, v.file)));
}

const STRINGS = [
  "",
  "echo",
  "inspect",
  "ünïcødé",
  "😀 emoji",
  'quote " and \\ backslash',
  "\u0000nul",
  "\u2028\u2029",
  "x".repeat(300),
  "rrq:queue:default",
  "2026-01-01T00:00:00Z",
  "null",
];

/** A random JSON value (JSON data model only: safe integers, finite floats, string keys). */
export function randomJson(rng: Rng, depth = 0): unknown {
  const kind = rng.int(0, depth > 3 ? 4 : 7);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([
        0,
        -1,
        1,
        127,
        128,
        255,
        256,
        65535,
        65536,
        2 ** 31,
        -(2 ** 31),
        2 ** 53 - 1,
        -(2 ** 53 - 1),
        rng.int(-1e6, 1e6),
      ]);
    case 3:
      return rng.pick([0.5, -0.25, 1e-300, 1.7976931348623157e308, rng.next() * 1e6]);
    case 4:
      return rng.chance(0.7) ? rng.pick(STRINGS) : randomString(rng, rng.int(0, 40));
    case 5:
    case 6:
      return Array.from({ length: rng.int(0, 5) }, () => randomJson(rng, depth + 1));
    default:
      return randomObject(rng, depth + 1);
  }
}

export function randomObject(rng: Rng, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = rng.int(0, 5); i > 0; i--)
    out[randomString(rng, rng.int(1, 12))] = randomJson(rng, depth);
  return out;
}

/** A random valid string: ASCII, Latin, CJK and astral characters (never lone surrogates). */
export function randomString(rng: Rng, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    if (r < 0.7) s += String.fromCharCode(rng.int(0x20, 0x7e));
    else if (r < 0.8) s += String.fromCharCode(rng.int(0, 0x1f));
    else if (r < 0.9) s += String.fromCharCode(rng.int(0xa0, 0x2fff));
    else s += String.fromCodePoint(rng.int(0x1f300, 0x1f64f));
  }
  return s;
}

const id = (rng: Rng) =>
  rng.chance(0.8)
    ? `${rng.int(0, 0xffffffff).toString(16)}-${rng.int(0, 0xffffff).toString(16)}`
    : randomString(rng, rng.int(1, 40));

const timestamp = (rng: Rng, future = false) => {
  const ms = future ? Date.now() + rng.int(60_000, 3_600_000) : rng.int(0, 4102444800000);
  const iso = new Date(ms).toISOString();
  return rng.pick([
    iso,
    iso.replace("Z", "+00:00"),
    iso.replace(/\.\d+Z$/, "Z"),
    iso.replace("Z", "123Z"),
  ]);
};

const stringMap = (rng: Rng) =>
  rng.chance(0.5)
    ? null
    : Object.fromEntries(
        Array.from({ length: rng.int(0, 3) }, () => [randomString(rng, 6), randomString(rng, 10)]),
      );

/**
 * A random frame that is valid by the wire schema. Requests name only `echo`, `inspect` or a
 * handler nobody registers, so a runner answers each at once; deadlines are null or in the future.
 */
export function randomFrame(rng: Rng, type?: Frame["type"]): Frame {
  const t =
    type ??
    rng.weighted<Frame["type"]>([
      [6, "request"],
      [2, "response"],
      [2, "cancel"],
      [1, "ping"],
      [1, "pong"],
      [1, "hello"],
    ]);
  switch (t) {
    case "request": {
      const jobId = id(rng);
      return {
        type: "request",
        payload: {
          protocol_version: "2",
          request_id: id(rng),
          job_id: jobId,
          function_name: rng.pick(["echo", "inspect", "echo", `nope_${rng.int(0, 999)}`]),
          params: randomObject(rng),
          context: {
            job_id: rng.chance(0.9) ? jobId : id(rng),
            attempt: rng.pick([0, 1, 2, 7, 2 ** 31]),
            enqueue_time: timestamp(rng),
            queue_name: rng.pick(["rrq:queue:default", "q", "", randomString(rng, 10)]),
            deadline: rng.chance(0.5) ? null : timestamp(rng, true),
            trace_context: stringMap(rng),
            correlation_context: stringMap(rng),
            worker_id: rng.chance(0.5) ? null : `rrq_worker_${rng.int(1, 99999)}_abcdef`,
          },
        },
      };
    }
    case "response":
      return {
        type: "response",
        payload: {
          job_id: id(rng),
          request_id: rng.chance(0.8) ? id(rng) : null,
          status: rng.pick(["success", "retry", "timeout", "error"] as const),
          result: randomJson(rng),
          error: rng.chance(0.5)
            ? null
            : {
                message: randomString(rng, 20),
                type: rng.chance(0.5) ? null : "Error",
                code: null,
                details: rng.chance(0.5) ? null : randomObject(rng),
              },
          retry_after_seconds: rng.chance(0.5) ? null : rng.next() * 100,
        },
      };
    case "cancel":
      return {
        type: "cancel",
        payload: {
          protocol_version: "2",
          job_id: id(rng),
          ...(rng.chance(0.5) ? { request_id: id(rng) } : {}),
          hard_kill: rng.chance(0.5),
        },
      };
    case "hello":
      return {
        type: "hello",
        payload: {
          protocol_version: "2",
          runtime: "fuzz",
          runtime_version: "0",
          pid: rng.int(1, 99999),
          max_in_flight: rng.int(1, 64),
          features: ["ping"],
        },
      };
    case "ping":
    case "pong":
      return { type: t, payload: { nonce: id(rng) } };
    case "progress":
      return {
        type: "progress",
        payload: {
          job_id: id(rng),
          request_id: id(rng),
          progress: rng.chance(0.3) ? null : rng.next(),
          message: rng.chance(0.5) ? null : randomString(rng, 20),
          detail: rng.chance(0.5) ? null : randomObject(rng),
        },
      };
    case "output":
      return {
        type: "output",
        payload: {
          job_id: id(rng),
          request_id: id(rng),
          seq: rng.int(0, 1000),
          stream: rng.pick(["handler", "stdout", "stderr"] as const),
          data: randomString(rng, 40),
          truncated: false,
          dropped_bytes: 0,
        },
      };
  }
}

/** Frame bytes: 4-byte big-endian length, then the body. */
export function prefixed(body: Buffer, length = body.length): Buffer {
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(length >>> 0, 0);
  return Buffer.concat([header, body]);
}

const INTERESTING = [
  0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0xc0, 0xc1, 0xc3, 0xd9, 0xdc, 0xde, 0xed, 0xf4, 0xf8, 0x22,
  0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c, 0x30, 0x2d, 0x2e, 0x65, 0x6e,
];
const LENGTHS = [
  0,
  1,
  2,
  3,
  4,
  5,
  MAX_FRAME_BYTES,
  MAX_FRAME_BYTES + 1,
  MAX_FRAME_BYTES - 1,
  0x7fffffff,
  0x80000000,
  0xffffffff,
];

/** A value at a random path of a decoded envelope replaced by something of another type. */
function structuralMutation(rng: Rng, value: unknown): unknown {
  const replacement = () =>
    rng.pick<() => unknown>([
      () => null,
      () => randomJson(rng),
      () => "",
      () => -1,
      () => 1.5,
      () => [],
      () => ({}),
      () => "x".repeat(rng.int(0, 2000)),
      () =>
        rng.pick(["request", "response", "cancel", "hello", "ping", "pong", "Request", "bogus"]),
      () => "3",
    ])();
  const root = JSON.parse(JSON.stringify(value ?? null)) as unknown;
  if (typeof root !== "object" || root === null) return replacement();
  let node = root as Record<string, unknown>;
  for (let depth = 0; depth < 4; depth++) {
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const key = rng.pick(keys);
    const child = node[key];
    if (typeof child === "object" && child !== null && rng.chance(0.6)) {
      node = child as Record<string, unknown>;
      continue;
    }
    const r = rng.next();
    if (r < 0.6) node[key] = replacement();
    else if (r < 0.8) delete node[key];
    else node[randomString(rng, 5)] = replacement();
    return root;
  }
  node[rng.pick(["type", "payload", "status", "request_id", "job_id", "context"])] = replacement();
  return root;
}

/** Deeply nested JSON or MessagePack (a stack-depth attack). */
function deepNesting(rng: Rng, encoding: EncodingName): Buffer {
  const depth = rng.pick([100, 1000, 5000, 20_000, 100_000]);
  if (encoding === "json") {
    const open = rng.chance(0.5) ? "[" : '{"a":';
    const close = open === "[" ? "]" : "}";
    const inner = `{"type":"ping","payload":{"nonce":${open.repeat(depth)}1${close.repeat(depth)}}}`;
    return prefixed(Buffer.from(inner));
  }
  // fixarray of one element, nested
  const body = Buffer.concat([
    Buffer.from([
      0x82,
      0xa4,
      ...Buffer.from("type"),
      0xa4,
      ...Buffer.from("ping"),
      0xa7,
      ...Buffer.from("payload"),
      0x81,
      0xa5,
      ...Buffer.from("nonce"),
    ]),
    Buffer.alloc(depth, 0x91),
    Buffer.from([0x01]),
  ]);
  return prefixed(body);
}

/**
 * Generates fuzz inputs for one encoding: mutated golden vectors and mutated random valid
 * frames (bit flips, interesting bytes, inserted/deleted/duplicated ranges, splices, length
 * prefixes, truncation, structural changes to the decoded envelope, deep nesting, raw noise).
 */
export class Mutator {
  private readonly codec;
  private readonly seeds: Buffer[];
  /** Random valid frames, regenerated in part as inputs are drawn (generation is costly). */
  private readonly pool: Buffer[] = [];
  private drawn = 0;

  constructor(
    private readonly rng: Rng,
    readonly encoding: EncodingName,
  ) {
    this.codec = codecFor(encoding);
    this.seeds = vectorSeeds(encoding);
  }

  /** A valid encoded frame (random content). */
  validFrame(type?: Frame["type"]): Buffer {
    if (type) return this.codec.encodeFrame(randomFrame(this.rng, type));
    if (this.pool.length < 4096 || this.drawn++ % 8 === 0) {
      const fresh = this.codec.encodeFrame(randomFrame(this.rng));
      if (this.pool.length < 4096) this.pool.push(fresh);
      else this.pool[this.rng.int(0, this.pool.length - 1)] = fresh;
      return fresh;
    }
    return this.rng.pick(this.pool);
  }

  private seed(): Buffer {
    return this.rng.chance(0.35) ? this.rng.pick(this.seeds) : this.validFrame();
  }

  /** One fuzz input. */
  next(): Buffer {
    const rng = this.rng;
    const roll = rng.next();
    if (roll < 0.04) return rng.bytes(rng.int(0, 64));
    if (roll < 0.041) return deepNesting(rng, this.encoding);
    if (roll < 0.2) return this.structural();
    let input: Buffer = Buffer.from(this.seed()); // a copy: mutations write in place
    for (let n = rng.int(1, 4); n > 0; n--) input = this.mutateOnce(input);
    return input;
  }

  /** A frame whose envelope was decoded, changed at one path, and re-encoded. */
  structural(): Buffer {
    const value = this.codec.decodeBody(this.validFrame().subarray(4));
    const changed = structuralMutation(this.rng, value);
    try {
      return this.codec.encodeFrame(changed);
    } catch {
      return this.validFrame();
    }
  }

  private mutateOnce(input: Buffer): Buffer {
    const rng = this.rng;
    const at = () => rng.int(0, Math.max(0, input.length - 1));
    switch (rng.int(0, 11)) {
      case 0: {
        if (input.length === 0) return input;
        const i = at();
        input[i] = input[i]! ^ (1 << rng.int(0, 7));
        return input;
      }
      case 1: {
        if (input.length === 0) return input;
        input[at()] = rng.pick(INTERESTING);
        return input;
      }
      case 2: {
        const i = at();
        return Buffer.concat([input.subarray(0, i), rng.bytes(rng.int(1, 16)), input.subarray(i)]);
      }
      case 3: {
        const i = at();
        return Buffer.concat([input.subarray(0, i), input.subarray(i + rng.int(1, 16))]);
      }
      case 4: {
        const i = at();
        const j = Math.min(input.length, i + rng.int(1, 32));
        return Buffer.concat([input.subarray(0, j), input.subarray(i, j), input.subarray(j)]);
      }
      case 5:
        return input.subarray(0, at());
      case 6: {
        const other = this.seed();
        return Buffer.concat([
          input.subarray(0, at()),
          other.subarray(rng.int(0, other.length - 1)),
        ]);
      }
      case 7: {
        // Rewrite the length prefix.
        const out = Buffer.from(
          input.length >= 4 ? input : Buffer.concat([input, Buffer.alloc(4)]),
        );
        const body = out.length - 4;
        const length = rng.pick([...LENGTHS, body - 1, body + 1, body * 2, rng.int(0, 0xffffffff)]);
        out.writeUInt32BE(Math.max(0, Math.min(0xffffffff, length)) >>> 0, 0);
        return out;
      }
      case 8:
        return Buffer.concat([this.validFrame(), input]);
      case 9:
        return Buffer.concat([input, this.validFrame()]);
      case 10: {
        // Fix up the length prefix after a body mutation, so the body itself is what breaks.
        if (input.length < 4) return input;
        const out = Buffer.from(input);
        out.writeUInt32BE(out.length - 4, 0);
        return out;
      }
      default: {
        if (input.length < 5) return input;
        const i = rng.int(4, input.length - 1);
        input[i] = rng.pick(INTERESTING);
        const out = Buffer.from(input);
        out.writeUInt32BE(out.length - 4, 0);
        return out;
      }
    }
  }
}

/** What a reader should make of an input (RUNNER_PROTOCOL.md §2, §11), frame by frame. */
export type Verdict =
  | { kind: "valid"; frames: Frame[] }
  | { kind: "error"; frames: Frame[]; code: string; message: string }
  | { kind: "incomplete"; frames: Frame[] };

/**
 * The ideal reading of an input, in stream order: each frame's length prefix, then its body
 * (decoded by the shared codec and parseFrame); the first error ends the stream. Frames before
 * the error count as delivered, however the bytes were chunked.
 */
export function classify(input: Buffer, encoding: EncodingName): Verdict {
  const codec = codecFor(encoding);
  const frames: Frame[] = [];
  let at = 0;
  while (at < input.length) {
    if (input.length - at < 4) return { kind: "incomplete", frames };
    const length = input.readUInt32BE(at);
    if (length === 0) return { kind: "error", frames, code: "frame_empty", message: "length 0" };
    if (length > MAX_FRAME_BYTES)
      return { kind: "error", frames, code: "frame_too_large", message: `length ${length}` };
    if (input.length - at - 4 < length) return { kind: "incomplete", frames };
    try {
      frames.push(parseFrame(codec.decodeBody(input.subarray(at + 4, at + 4 + length))));
    } catch (error) {
      if (error instanceof FrameDecodeError)
        return { kind: "error", frames, code: error.code, message: error.message };
      throw error;
    }
    at += 4 + length;
  }
  return { kind: "valid", frames };
}

/** The same input through the shared FrameDecoder fed whole (for the chunking comparison). */
export function decodeWhole(input: Buffer, encoding: EncodingName): Verdict {
  const decoder = new FrameDecoder();
  const codec = codecFor(encoding);
  const frames: Frame[] = [];
  try {
    for (const body of decoder.push(input)) frames.push(parseFrame(codec.decodeBody(body)));
  } catch (error) {
    if (error instanceof FrameDecodeError)
      return { kind: "error", frames, code: error.code, message: error.message };
    throw error;
  }
  return decoder.idle ? { kind: "valid", frames } : { kind: "incomplete", frames };
}

/**
 * An independent model of the framing layer only (RUNNER_PROTOCOL.md §2): the complete bodies,
 * then the first framing error (empty or oversized prefix), or a truncated tail.
 */
export function frameModel(input: Buffer): {
  bodies: Buffer[];
  error: "frame_empty" | "frame_too_large" | undefined;
  truncated: boolean;
} {
  const bodies: Buffer[] = [];
  let at = 0;
  while (at < input.length) {
    if (input.length - at < 4) return { bodies, error: undefined, truncated: true };
    const length = input.readUInt32BE(at);
    if (length === 0) return { bodies, error: "frame_empty", truncated: false };
    if (length > MAX_FRAME_BYTES) return { bodies, error: "frame_too_large", truncated: false };
    if (input.length - at - 4 < length) return { bodies, error: undefined, truncated: true };
    bodies.push(input.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return { bodies, error: undefined, truncated: false };
}
