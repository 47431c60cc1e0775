#!/usr/bin/env node
// Writes the golden byte vectors under protocol/vectors/ and their manifest.
// `--check` compares instead of writing and exits 1 on any difference (run by `npm test`).
//
// The vectors are data consumed by every binding's tests, so this script deliberately encodes
// with the plainest possible means (JSON.stringify, @msgpack/msgpack defaults) and hand-built
// byte arrays for the invalid cases; the expected decoded frames are stored in the manifest.
import { mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Encoder } from "@msgpack/msgpack";

// The library's default depth cap (100) would refuse the one-past-the-limit vector.
const msgpackEncoder = new Encoder({ maxDepth: 1000 });
const msgpackEncode = (value) => msgpackEncoder.encode(value);

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vectorsDir = join(root, "protocol", "vectors");
const MAX_FRAME_BYTES = 16 * 1024 * 1024;
const MAX_NESTING_DEPTH = 100;
const check = process.argv.includes("--check");

const context = (extra = {}) => ({
  job_id: "job-1",
  attempt: 1,
  enqueue_time: "2026-01-01T12:00:00Z",
  queue_name: "rrq:queue:default",
  deadline: null,
  trace_context: null,
  correlation_context: null,
  worker_id: null,
  ...extra,
});

const request = (extra = {}, ctx = {}) => ({
  type: "request",
  payload: {
    protocol_version: "2",
    request_id: "req-1",
    job_id: "job-1",
    function_name: "echo",
    params: {},
    context: context(ctx),
    ...extra,
  },
});

const outcome = (fields) => ({
  type: "response",
  payload: {
    job_id: "job-1",
    request_id: "req-1",
    status: "success",
    result: null,
    error: null,
    retry_after_seconds: null,
    ...fields,
  },
});

/** A request's `live` options (RUNNER_PROTOCOL.md §13.1), every field in schema order. */
const liveOptions = (extra = {}) => ({
  progress: true,
  output: true,
  progress_interval_ms: 200,
  output_max_bytes: 1048576,
  ...extra,
});

/** A `progress` frame, every field in schema order. */
const progress = (fields = {}) => ({
  type: "progress",
  payload: {
    job_id: "job-1",
    request_id: "req-1",
    progress: null,
    message: null,
    detail: null,
    ...fields,
  },
});

/** An `output` frame, every field in schema order. */
const output = (fields = {}) => ({
  type: "output",
  payload: {
    job_id: "job-1",
    request_id: "req-1",
    seq: 0,
    stream: "handler",
    data: "",
    truncated: false,
    dropped_bytes: 0,
    ...fields,
  },
});

/** `frame` without its payload's `field` (a frame missing a required field). */
const without = (frame, field) => {
  const { [field]: _omit, ...payload } = frame.payload;
  return { type: frame.type, payload };
};

/** The Node runner's hello; `extra` fields are added or replace these. */
const nodeHello = (extra = {}) => ({
  type: "hello",
  payload: {
    protocol_version: "2",
    runtime: "rrqkit-node",
    runtime_version: "0.1.0",
    pid: 4242,
    max_in_flight: 64,
    features: ["ping", "cancel_by_job", "stdout_guard"],
    ...extra,
  },
});

/** A hello frame with the given tags. */
const helloWithTags = (tags) => ({
  type: "hello",
  payload: { protocol_version: "2", runtime: "rrqkit-node", features: ["progress"], tags },
});

/** An array nested `levels` deep: [] is 1 level, [[]] is 2. */
const nestedArray = (levels) => (levels <= 1 ? [] : [nestedArray(levels - 1)]);

/** A request whose body nests exactly `depth` levels (envelope 1, payload 2, params 3). */
const requestNested = (depth) => request({ params: { deep: nestedArray(depth - 3) } });

/** The same, with scalars inside the deepest array (one level below it, yet no deeper body). */
const withScalars = (levels) => (levels <= 1 ? [1, "x", null] : [withScalars(levels - 1)]);
const requestNestedScalars = (depth) => request({ params: { deep: withScalars(depth - 3) } });

/** Valid frames: each file holds these frames back to back. */
const valid = [
  ["request-minimal", "A request with every optional context field null.", [request()]],
  [
    "request-full",
    "A request using every field: nested params, unicode and escapes, deadline, trace and correlation context.",
    [
      request(
        {
          request_id: "6f1c1a4e-3d3b-4f0e-9a51-2b9f0e7c1d2a",
          job_id: "0b8f5e52-8c1e-4a5e-8f5e-0c2b3b8f9a10",
          function_name: "send_email",
          params: {
            to: "ünïcødé@example.com",
            subject: 'He said "hi"\n\tand left \\ 😀',
            control: "\u0001\u001f",
            count: 3,
            ratio: 0.25,
            negative: -17,
            flags: [true, false, null],
            nested: { deeper: { list: [1, "two", { three: 3 }] } },
          },
        },
        {
          job_id: "0b8f5e52-8c1e-4a5e-8f5e-0c2b3b8f9a10",
          attempt: 3,
          enqueue_time: "2026-01-01T12:00:00.123456789Z",
          queue_name: "rrq:queue:emails",
          deadline: "2026-01-01T12:05:00.5Z",
          trace_context: {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            tracestate: "vendor=value",
          },
          correlation_context: { tenant: "acme", order_id: "42" },
          worker_id: "rrq_worker_4242_a1b2c3",
        },
      ),
    ],
  ],
  [
    "request-absent-optionals",
    'A request that omits protocol_version, params and every optional context field; readers treat absent as null and a missing protocol_version as "2".',
    [
      {
        type: "request",
        payload: {
          request_id: "req-1",
          job_id: "job-1",
          function_name: "echo",
          context: {
            job_id: "job-1",
            attempt: 1,
            enqueue_time: "2026-01-01T12:00:00Z",
            queue_name: "rrq:queue:default",
          },
        },
      },
    ],
  ],
  [
    "request-unknown-fields",
    "Unknown fields at the envelope, payload and context level must be ignored.",
    [
      {
        type: "request",
        payload: {
          ...request().payload,
          future_field: { anything: [1, 2] },
          context: { ...context(), future_context_field: "x" },
        },
        envelope_extra: 1,
      },
    ],
  ],
  [
    "response-success",
    "A success outcome with a result object.",
    [outcome({ result: { ok: true, n: 1 } })],
  ],
  ["response-success-null", "A success outcome whose result is null.", [outcome({})]],
  [
    "response-error-typed",
    "An error outcome with a reserved error type.",
    [
      outcome({
        status: "error",
        error: {
          message: "No handler registered for function 'missing'",
          type: "handler_not_found",
          code: null,
          details: null,
        },
      }),
    ],
  ],
  [
    "response-error-details",
    "An error outcome with code and structured details.",
    [
      outcome({
        status: "error",
        error: { message: "boom", type: "ValueError", code: "E42", details: { field: "email" } },
      }),
    ],
  ],
  [
    "response-error-traceback",
    "A thrown error's outcome with rrqkit's optional error.traceback (RUNNER_PROTOCOL.md §7.1), non-ASCII included.",
    [
      outcome({
        status: "error",
        error: {
          message: "kaboom",
          type: "RuntimeError",
          code: null,
          details: null,
          traceback:
            'Traceback (most recent call last):\n  File "handlers.py", line 12, in throw\n    raise RuntimeError("kaboom")\nRuntimeError: kaboom — ü\n',
        },
      }),
    ],
  ],
  [
    "response-retry",
    "A retry outcome with retry_after_seconds.",
    [
      outcome({
        status: "retry",
        error: { message: "later", type: null, code: null, details: null },
        retry_after_seconds: 2.5,
      }),
    ],
  ],
  [
    "response-retry-snooze",
    "A snooze (rrqkit addition, RUNNER_PROTOCOL.md §7.2): a retry outcome with snooze true, written last.",
    [
      outcome({
        status: "retry",
        error: { message: "Job snoozed", type: null, code: null, details: null },
        retry_after_seconds: 30,
        snooze: true,
      }),
    ],
  ],
  [
    "response-error-non-retryable",
    "A permanent error (rrqkit addition, RUNNER_PROTOCOL.md §7): the reserved error type non_retryable, with a traceback.",
    [
      outcome({
        status: "error",
        error: {
          message: "card number is invalid",
          type: "non_retryable",
          code: null,
          details: null,
          traceback:
            "NonRetryableError: card number is invalid\n    at charge (handlers.js:3:11)\n",
        },
      }),
    ],
  ],
  [
    "response-timeout",
    "A runner-side timeout.",
    [
      outcome({
        status: "timeout",
        error: { message: "Job execution timed out", type: "timeout", code: null, details: null },
      }),
    ],
  ],
  [
    "response-cancelled",
    "The reply to a cancelled request.",
    [
      outcome({
        status: "error",
        error: { message: "Job cancelled", type: "cancelled", code: null, details: null },
      }),
    ],
  ],
  [
    "response-omitted-nulls",
    "An outcome as RRQ's Rust runtime writes it: None fields omitted.",
    [
      {
        type: "response",
        payload: { job_id: "job-1", request_id: "req-1", status: "success", result: 7 },
      },
    ],
  ],
  [
    "cancel-request",
    "Cancel one request.",
    [
      {
        type: "cancel",
        payload: { protocol_version: "2", job_id: "job-1", request_id: "req-1", hard_kill: false },
      },
    ],
  ],
  [
    "cancel-job",
    "Cancel every in-flight request of a job: request_id omitted.",
    [{ type: "cancel", payload: { protocol_version: "2", job_id: "job-1", hard_kill: false } }],
  ],
  ["hello", "A runner's hello (rrqkit extension).", [nodeHello()]],
  ["ping", "A ping (rrqkit extension).", [{ type: "ping", payload: { nonce: "n-1" } }]],
  [
    "hello-tags",
    "A hello with capability tags and the live features (RUNNER_PROTOCOL.md §8.6).",
    [
      nodeHello({
        features: ["ping", "cancel_by_job", "stdout_guard", "progress", "output"],
        tags: ["gpu", "region:eu", "zone=a/1"],
      }),
    ],
  ],
  [
    "request-live",
    "A request enabling progress and output frames (RUNNER_PROTOCOL.md §13.1): live written last.",
    [request({ live: liveOptions() })],
  ],
  [
    "progress",
    "A progress frame with value, message and detail (RUNNER_PROTOCOL.md §13.2).",
    [progress({ progress: 0.5, message: "halfway", detail: { step: 2, of: 4 } })],
  ],
  [
    "progress-message-only",
    "A progress frame that only changes the message: progress and detail null.",
    [progress({ message: "downloading ünïcødé" })],
  ],
  [
    "output",
    "An output chunk from the handler's writer (RUNNER_PROTOCOL.md §13.3): a JSON line.",
    [output({ data: '{"rows":10}\n' })],
  ],
  [
    "output-truncated",
    "The single truncation frame: empty data, truncated true, the bytes dropped.",
    [output({ seq: 3, truncated: true, dropped_bytes: 12345 })],
  ],
  [
    "stream-live-then-response",
    "Live frames of a request, then its response: progress and output always precede the response.",
    [
      output({ data: "step 1\n" }),
      progress({ progress: 1, message: "done" }),
      output({ seq: 1, stream: "stderr", data: "warning\n" }),
      outcome({ result: { ok: true } }),
    ],
  ],

  ["pong", "A pong (rrqkit extension).", [{ type: "pong", payload: { nonce: "n-1" } }]],
  [
    "request-deepest-nesting",
    `A request nested exactly ${MAX_NESTING_DEPTH} levels deep (the envelope is level 1), the most a reader must accept.`,
    [requestNested(MAX_NESTING_DEPTH)],
  ],
  [
    "request-deepest-nesting-scalars",
    `A request nested exactly ${MAX_NESTING_DEPTH} levels deep whose deepest array holds scalars (a scalar adds no level).`,
    [requestNestedScalars(MAX_NESTING_DEPTH)],
  ],
  [
    "request-integer-widths",
    "Integers in each width: a MessagePack writer uses the smallest form, unsigned for values >= 0 (200 is uint8 0xcc, not int16).",
    [
      request(
        {
          params: {
            u8: 200,
            u16: 60000,
            u32: 4000000000,
            u64: 2 ** 53 - 1,
            i8: -100,
            i16: -30000,
            i32: -2000000000,
            float: 2.5,
          },
        },
        { attempt: 200 },
      ),
    ],
  ],
  [
    "stream-three-frames",
    "Three frames back to back in one buffer; readers must split them correctly whatever the chunking.",
    [
      request(),
      {
        type: "cancel",
        payload: { protocol_version: "2", job_id: "job-1", request_id: "req-1", hard_kill: false },
      },
      { type: "ping", payload: { nonce: "n-2" } },
    ],
  ],
];

const utf8 = (text) => Buffer.from(text, "utf8");
const header = (length) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length);
  return b;
};
const framed = (body) => Buffer.concat([header(body.length), body]);

/**
 * Invalid inputs. `error` is the decode error code; `action` is what a runner does:
 * "close" (decode error: close without reply), "reply_error" (valid frame, refused with an error
 * outcome, connection kept) or "ignore" (valid frame, silently ignored).
 */
const invalid = [
  ["empty-frame", "Length prefix 0.", () => header(0), "frame_empty"],
  [
    "oversize-frame",
    "Length prefix 16 MiB + 1: rejected from the header alone.",
    () => Buffer.concat([header(MAX_FRAME_BYTES + 1), utf8("{}")]),
    "frame_too_large",
  ],
  [
    "truncated-header",
    "The stream ends after 2 of the 4 header bytes.",
    () => Buffer.from([0, 0]),
    "frame_truncated",
  ],
  [
    "truncated-body",
    "The header announces 100 bytes; the stream ends after 10.",
    () => Buffer.concat([header(100), utf8('{"type":"r')]),
    "frame_truncated",
  ],
  [
    "too-deep",
    `A request nested ${MAX_NESTING_DEPTH + 1} levels deep: one past the limit.`,
    (enc) => framed(enc(requestNested(MAX_NESTING_DEPTH + 1))),
    "malformed_payload",
  ],
  [
    "unknown-type",
    "A frame type outside the closed set.",
    (enc) => framed(enc({ type: "shutdown", payload: {} })),
    "unknown_frame_type",
  ],
  [
    "not-a-map",
    "The body is an array, not an envelope.",
    (enc) => framed(enc([1, 2, 3])),
    "invalid_envelope",
  ],
  [
    "missing-payload",
    "An envelope without payload.",
    (enc) => framed(enc({ type: "request" })),
    "invalid_envelope",
  ],
  [
    "payload-not-map",
    "An envelope whose payload is a string.",
    (enc) => framed(enc({ type: "request", payload: "x" })),
    "invalid_envelope",
  ],
  [
    "type-not-string",
    "An envelope whose type is a number.",
    (enc) => framed(enc({ type: 1, payload: {} })),
    "invalid_envelope",
  ],
  [
    "request-missing-job-id",
    "A request without job_id.",
    (enc) => framed(enc(without(request(), "job_id"))),
    "invalid_frame",
  ],
  [
    "request-empty-request-id",
    "A request whose request_id is the empty string (the schema's minLength is 1).",
    (enc) => framed(enc(request({ request_id: "" }))),
    "invalid_frame",
  ],
  [
    "request-attempt-not-integer",
    "A request whose context.attempt is a string.",
    (enc) => framed(enc(request({}, { attempt: "1" }))),
    "invalid_frame",
  ],
  [
    "response-unknown-status",
    "An outcome whose status is outside the closed set.",
    (enc) => framed(enc(outcome({ status: "maybe" }))),
    "invalid_frame",
  ],
  [
    "cancel-missing-job-id",
    "A cancel without job_id.",
    (enc) =>
      framed(enc({ type: "cancel", payload: { protocol_version: "2", request_id: "req-1" } })),
    "invalid_frame",
  ],
  [
    "hello-bad-tag",
    "A hello whose tags hold a tag outside [A-Za-z0-9_.:/=-] (a space).",
    (enc) => framed(enc(helloWithTags(["gpu", "two words"]))),
    "invalid_frame",
  ],
  [
    "hello-too-many-tags",
    "A hello listing 33 tags (at most 32).",
    (enc) => framed(enc(helloWithTags(Array.from({ length: 33 }, (_, i) => `t${i}`)))),
    "invalid_frame",
  ],
  [
    "hello-tag-too-long",
    "A hello with a 65-character tag (at most 64).",
    (enc) => framed(enc(helloWithTags(["g".repeat(65)]))),
    "invalid_frame",
  ],
  [
    "request-live-not-map",
    "A request whose live is a string.",
    (enc) => framed(enc(request({ live: "yes" }))),
    "invalid_frame",
  ],
  [
    "request-live-negative-interval",
    "A request whose live.progress_interval_ms is negative.",
    (enc) => framed(enc(request({ live: liveOptions({ progress_interval_ms: -1 }) }))),
    "invalid_frame",
  ],
  [
    "request-live-progress-not-bool",
    "A request whose live.progress is a string.",
    (enc) => framed(enc(request({ live: liveOptions({ progress: "true" }) }))),
    "invalid_frame",
  ],
  [
    "progress-out-of-range",
    "A progress frame whose progress is 1.5 (0 to 1 only).",
    (enc) => framed(enc(progress({ progress: 1.5 }))),
    "invalid_frame",
  ],
  [
    "progress-missing-request-id",
    "A progress frame without request_id.",
    (enc) => framed(enc(without(progress(), "request_id"))),
    "invalid_frame",
  ],
  [
    "progress-message-too-long",
    "A progress frame whose message has 1025 characters (at most 1024).",
    (enc) => framed(enc(progress({ message: "m".repeat(1025) }))),
    "invalid_frame",
  ],
  [
    "output-missing-seq",
    "An output frame without seq.",
    (enc) => framed(enc(without(output({ data: "x" }), "seq"))),
    "invalid_frame",
  ],
  [
    "output-negative-seq",
    "An output frame whose seq is -1.",
    (enc) => framed(enc(output({ seq: -1, data: "x" }))),
    "invalid_frame",
  ],
  [
    "output-unknown-stream",
    'An output frame whose stream is outside "handler", "stdout", "stderr".',
    (enc) => framed(enc(output({ stream: "stdlog", data: "x" }))),
    "invalid_frame",
  ],
  [
    "output-data-too-large",
    "An output frame whose data is 65537 bytes of UTF-8 (at most 65536).",
    (enc) => framed(enc(output({ data: "x".repeat(65537) }))),
    "invalid_frame",
  ],
  [
    "wrong-protocol-version",
    'A request with protocol_version "3": a valid frame that the runner refuses with an error outcome, keeping the connection open.',
    (enc) => framed(enc(request({ protocol_version: "3" }))),
    null,
    "reply_error",
    {
      job_id: "job-1",
      request_id: "req-1",
      status: "error",
      error: { message: "Unsupported protocol version", type: null },
    },
  ],
  [
    "cancel-wrong-protocol-version",
    'A cancel with protocol_version "1": ignored silently.',
    (enc) =>
      framed(
        enc({
          type: "cancel",
          payload: { protocol_version: "1", job_id: "job-1", hard_kill: false },
        }),
      ),
    null,
    "ignore",
  ],
];

/** How deep the hostile nesting vectors go: far past any decoder's stack, still a small file. */
const FAR_TOO_DEEP = 10_000;

const jsonOnlyInvalid = [
  [
    "far-too-deep",
    `A request whose params nest ${FAR_TOO_DEEP} arrays: rejected without exhausting the stack.`,
    () =>
      framed(
        utf8(
          `{"type":"request","payload":{"params":{"deep":${"[".repeat(FAR_TOO_DEEP)}${"]".repeat(FAR_TOO_DEEP)}}}}`,
        ),
      ),
    "malformed_payload",
  ],
  [
    "bad-utf8",
    "A JSON body containing the byte 0xFF inside a string.",
    () =>
      framed(
        Buffer.concat([
          utf8('{"type":"ping","payload":{"nonce":"'),
          Buffer.from([0xff]),
          utf8('"}}'),
        ]),
      ),
    "invalid_utf8",
  ],
  [
    "malformed-json",
    "A JSON body cut in the middle of an object.",
    () => framed(utf8('{"type":"request",')),
    "malformed_payload",
  ],
  [
    "json-trailing-garbage",
    "A JSON value followed by more text.",
    () => framed(utf8('{"type":"ping","payload":{"nonce":"a"}} x')),
    "malformed_payload",
  ],
  [
    "json-nan-literal",
    "NaN is not JSON.",
    () => framed(utf8('{"type":"ping","payload":{"nonce":NaN}}')),
    "malformed_payload",
  ],
];

const msgpackOnlyInvalid = [
  // fixmap(2) "type" "request" "payload" fixmap(1) "params" fixmap(1) "deep", then fixarray(1)
  // repeated, ending in nil.
  [
    "far-too-deep",
    `A request whose params nest ${FAR_TOO_DEEP} arrays: rejected without exhausting the stack.`,
    () => {
      const prefix = Buffer.from(
        msgpackEncode({ type: "request", payload: { params: { deep: 0 } } }),
      );
      return framed(
        Buffer.concat([
          prefix.subarray(0, prefix.length - 1),
          Buffer.alloc(FAR_TOO_DEEP, 0x91),
          Buffer.from([0xc0]),
        ]),
      );
    },
    "malformed_payload",
  ],
  // fixmap(2), fixstr "type", fixstr "ping", fixstr "payload", fixmap(1), fixstr "nonce", fixstr(1) 0xFF
  [
    "bad-utf8",
    "A MessagePack str containing the byte 0xFF.",
    () =>
      framed(
        Buffer.concat([
          Buffer.from([0x82, 0xa4]),
          utf8("type"),
          Buffer.from([0xa4]),
          utf8("ping"),
          Buffer.from([0xa7]),
          utf8("payload"),
          Buffer.from([0x81, 0xa5]),
          utf8("nonce"),
          Buffer.from([0xa1, 0xff]),
        ]),
      ),
    "invalid_utf8",
  ],
  [
    "malformed-msgpack",
    "A map header announcing 2 entries followed by one key only.",
    () => framed(Buffer.concat([Buffer.from([0x82, 0xa4]), utf8("type")])),
    "malformed_payload",
  ],
  [
    "msgpack-trailing-bytes",
    "One complete value followed by another.",
    () =>
      framed(
        Buffer.concat([
          Buffer.from(msgpackEncode({ type: "ping", payload: { nonce: "a" } })),
          Buffer.from([0xc0]),
        ]),
      ),
    "malformed_payload",
  ],
];

/** A ping whose payload holds one extra field `x` encoded as the raw MessagePack bytes given. */
const pingWithRaw = (raw) => {
  const prefix = Buffer.from(msgpackEncode({ type: "ping", payload: { nonce: "a", x: null } }));
  return framed(Buffer.concat([prefix.subarray(0, prefix.length - 1), Buffer.from(raw)]));
};
const float64 = (value) => {
  const b = Buffer.alloc(9);
  b[0] = 0xcb;
  b.writeDoubleBE(value, 1);
  return b;
};

// MessagePack values with no JSON equivalent (RUNNER_PROTOCOL.md §4): malformed_payload.
msgpackOnlyInvalid.push(
  [
    "msgpack-bin",
    "A bin 8 value (0xc4).",
    () => pingWithRaw([0xc4, 2, 0x61, 0x62]),
    "malformed_payload",
  ],
  ["msgpack-ext", "A fixext 1 value (0xd4).", () => pingWithRaw([0xd4, 1, 0]), "malformed_payload"],
  [
    "msgpack-int-key",
    "A map with an integer key.",
    () => pingWithRaw([0x81, 0x01, 0xc0]),
    "malformed_payload",
  ],
  ["msgpack-nan", "A float 64 NaN.", () => pingWithRaw(float64(NaN)), "malformed_payload"],
  [
    "msgpack-infinity",
    "A float 64 negative infinity.",
    () => pingWithRaw(float64(-Infinity)),
    "malformed_payload",
  ],
);

/**
 * Accepted inputs: bytes no rrqkit writer produces but every reader MUST decode into `frames`
 * (other escapings, integral floats, null for an optional field the schema does not make
 * nullable). `bytes` builds the file for an encoding; entries with only one encoding say so.
 */
const accepted = [
  [
    "json-escapes",
    "Characters escaped as a Go or HTML-safe encoder escapes them (\\u003c, \\u0026, \\u2028), \\/ and a surrogate pair, plus a raw U+2028.",
    {
      json: () =>
        framed(
          utf8(
            '{"type":"request","payload":{"protocol_version":"2","request_id":"req-1","job_id":"job-1",' +
              '"function_name":"echo","params":{"html":"\\u003cb\\u003e \\u0026 \\u003e","sep":"a\\u2028b\\u2029c",' +
              '"raw":"a\u2028b","slash":"\\/","astral":"\\u00e9\\ud83d\\ude00"},"context":' +
              JSON.stringify(context()) +
              "}}",
          ),
        ),
    },
    [
      request({
        params: {
          html: "<b> & >",
          sep: "a\u2028b\u2029c",
          raw: "a\u2028b",
          slash: "/",
          astral: "é😀",
        },
      }),
    ],
  ],
  [
    "integral-float-attempt",
    "context.attempt written as a float with an integral value (JSON 2.0, MessagePack float 64): the integer 2.",
    {
      json: () =>
        framed(
          utf8(JSON.stringify(request({}, { attempt: 2 })).replace('"attempt":2', '"attempt":2.0')),
        ),
      msgpack: () => {
        const body = Buffer.from(msgpackEncode(request({}, { attempt: 999 })));
        const at = body.indexOf(Buffer.from([0xcd, 0x03, 0xe7])); // uint16 999
        return framed(Buffer.concat([body.subarray(0, at), float64(2), body.subarray(at + 3)]));
      },
    },
    [request({}, { attempt: 2 })],
  ],
  [
    "null-for-absent",
    "null where the schema has no null (request protocol_version, cancel hard_kill): read as absent.",
    {
      json: (enc) => acceptedNulls(enc),
      msgpack: (enc) => acceptedNulls(enc),
    },
    [
      request({ protocol_version: null }),
      {
        type: "cancel",
        payload: { protocol_version: null, job_id: "job-2", request_id: "req-2", hard_kill: null },
      },
    ],
  ],
  [
    "live-absent-fields",
    "Live fields left out or null, read as their defaults: a request's live with progress only, live null, an output frame without truncated and dropped_bytes, a progress frame with only its ids.",
    {
      json: (enc) => acceptedLive(enc),
      msgpack: (enc) => acceptedLive(enc),
    },
    acceptedLiveFrames(),
  ],
];
const acceptedNulls = (enc) =>
  Buffer.concat([
    framed(enc(request({ protocol_version: null }))),
    framed(
      enc({
        type: "cancel",
        payload: { protocol_version: null, job_id: "job-2", request_id: "req-2", hard_kill: null },
      }),
    ),
  ]);

function acceptedLiveFrames() {
  return [
    request({ live: { progress: true } }),
    request({ request_id: "req-2", live: null }),
    {
      type: "output",
      payload: { job_id: "job-1", request_id: "req-1", seq: 0, stream: "handler", data: "x" },
    },
    { type: "progress", payload: { job_id: "job-1", request_id: "req-1" } },
  ];
}
const acceptedLive = (enc) => Buffer.concat(acceptedLiveFrames().map((f) => framed(enc(f))));

const encoders = {
  json: (value) => utf8(JSON.stringify(value)),
  msgpack: (value) => Buffer.from(msgpackEncode(value)),
};

function buildAll() {
  const files = new Map();
  const manifest = {
    format: 1,
    max_frame_bytes: MAX_FRAME_BYTES,
    max_nesting_depth: MAX_NESTING_DEPTH,
    description:
      "Golden frames. valid: decode every frame in order, compare with `frames`, re-encode and compare bytes with the file. invalid: feed the bytes to a reader; `error` is the decode error code (null = decodes fine), `action` what a runner does. accepted: bytes no writer produces that a reader MUST decode into `frames` (not re-encoded).",
    vectors: [],
  };
  for (const [encoding, enc] of Object.entries(encoders)) {
    for (const [name, description, frames] of valid) {
      const file = `valid/${encoding}/${name}.bin`;
      files.set(file, Buffer.concat(frames.map((f) => framed(enc(f)))));
      manifest.vectors.push({ name, encoding, kind: "valid", file, description, frames });
    }
    const extra = encoding === "json" ? jsonOnlyInvalid : msgpackOnlyInvalid;
    for (const [name, description, make, error, action = "close", reply = null] of [
      ...invalid,
      ...extra,
    ]) {
      const file = `invalid/${encoding}/${name}.bin`;
      files.set(file, make(enc));
      const entry = { name, encoding, kind: "invalid", file, description, error, action };
      if (reply) entry.reply = reply;
      manifest.vectors.push(entry);
    }
    for (const [name, description, builders, frames] of accepted) {
      if (!builders[encoding]) continue;
      const file = `accepted/${encoding}/${name}.bin`;
      files.set(file, builders[encoding](enc));
      manifest.vectors.push({ name, encoding, kind: "accepted", file, description, frames });
    }
  }
  files.set("manifest.json", utf8(JSON.stringify(manifest, null, 2) + "\n"));
  return files;
}

function listExisting(dir, prefix = "") {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? listExisting(join(dir, e.name), `${prefix}${e.name}/`)
      : e.name.endsWith(".bin") || e.name === "manifest.json"
        ? [`${prefix}${e.name}`]
        : [],
  );
}

const files = buildAll();
if (check) {
  const problems = [];
  for (const [rel, bytes] of files) {
    const path = join(vectorsDir, rel);
    if (!existsSync(path)) problems.push(`missing ${rel}`);
    else if (!readFileSync(path).equals(bytes)) problems.push(`differs ${rel}`);
  }
  for (const rel of listExisting(vectorsDir)) if (!files.has(rel)) problems.push(`stale ${rel}`);
  if (problems.length) {
    console.error(
      `protocol/vectors is out of date (run \`npm run gen\`):\n  ${problems.join("\n  ")}`,
    );
    process.exit(1);
  }
  console.log(`protocol/vectors: ${files.size} files up to date`);
} else {
  for (const sub of ["valid", "invalid", "accepted"])
    rmSync(join(vectorsDir, sub), { recursive: true, force: true });
  for (const [rel, bytes] of files) {
    const path = join(vectorsDir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bytes);
  }
  console.log(`protocol/vectors: wrote ${files.size} files`);
}
