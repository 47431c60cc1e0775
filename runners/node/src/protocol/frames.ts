import { FrameDecodeError } from "./errors.js";
import type {
  CancelRequest,
  ExecutionOutcome,
  ExecutionRequest,
  Frame,
  Hello,
  OutcomeError,
  Output,
  Ping,
  Progress,
} from "./generated/wire.js";
import {
  DEFAULT_OUTPUT_MAX_BYTES,
  DEFAULT_PROGRESS_INTERVAL_MS,
  FRAME_TYPES,
  MAX_OUTPUT_DATA_BYTES,
  MAX_PROGRESS_MESSAGE_CHARS,
  MAX_TAGS,
  OUTCOME_STATUSES,
  OUTPUT_STREAMS,
  TAG_PATTERN,
} from "./constants.js";

type Fields = Record<string, unknown>;

/** Matches RFC 3339 date-times (the form every binding must accept for context timestamps). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Collects the first rule a payload breaks, so the error names the field. */
class PayloadRules {
  private problem: string | undefined;
  constructor(
    private readonly fields: Fields,
    private readonly where: string,
  ) {}

  private fail(field: string, rule: string): this {
    this.problem ??= `${this.where}.${field} ${rule}`;
    return this;
  }
  string(field: string): this {
    return typeof this.fields[field] === "string" ? this : this.fail(field, "must be a string");
  }
  nonEmptyString(field: string): this {
    const v = this.fields[field];
    return typeof v === "string" && v !== ""
      ? this
      : this.fail(field, "must be a non-empty string");
  }
  optionalString(field: string): this {
    const v = this.fields[field];
    return v == null || typeof v === "string" ? this : this.fail(field, "must be a string or null");
  }
  optionalObject(field: string): this {
    const v = this.fields[field];
    return v == null || isFields(v) ? this : this.fail(field, "must be an object or null");
  }
  optionalStringMap(field: string): this {
    const v = this.fields[field];
    if (v == null) return this;
    const ok = isFields(v) && Object.values(v).every((x) => typeof x === "string");
    return ok ? this : this.fail(field, "must map strings to strings");
  }
  timestamp(field: string, optional = false): this {
    const v = this.fields[field];
    if (optional && v == null) return this;
    const ok = typeof v === "string" && RFC3339.test(v) && !Number.isNaN(Date.parse(v));
    return ok ? this : this.fail(field, "must be an RFC 3339 timestamp");
  }
  integer(field: string, min = 0, optional = false): this {
    const v = this.fields[field];
    if (optional && v == null) return this;
    return typeof v === "number" && Number.isInteger(v) && v >= min
      ? this
      : this.fail(field, `must be an integer >= ${min}`);
  }
  optionalNumber(field: string): this {
    const v = this.fields[field];
    return v == null || (typeof v === "number" && Number.isFinite(v))
      ? this
      : this.fail(field, "must be a number or null");
  }
  optionalBoolean(field: string): this {
    const v = this.fields[field];
    return v == null || typeof v === "boolean" ? this : this.fail(field, "must be a boolean");
  }
  oneOf(field: string, values: readonly string[]): this {
    return values.includes(this.fields[field] as string)
      ? this
      : this.fail(field, `must be one of ${values.join(", ")}`);
  }
  check(rule: (fields: Fields) => string | undefined): this {
    const problem = rule(this.fields);
    if (problem) this.problem ??= `${this.where}.${problem}`;
    return this;
  }
  done(): void {
    if (this.problem) throw new FrameDecodeError("invalid_frame", this.problem);
  }
}

function checkRequest(p: Fields): void {
  new PayloadRules(p, "request")
    .optionalString("protocol_version")
    .nonEmptyString("request_id")
    .nonEmptyString("job_id")
    .string("function_name")
    .optionalObject("params")
    .check((f) => (isFields(f.context) ? undefined : "context must be an object"))
    .optionalObject("live")
    .done();
  if (isFields(p.live)) {
    new PayloadRules(p.live, "request.live")
      .optionalBoolean("progress")
      .optionalBoolean("output")
      .integer("progress_interval_ms", 0, true)
      .integer("output_max_bytes", 0, true)
      .done();
  }
  new PayloadRules(p.context as Fields, "request.context")
    .string("job_id")
    .integer("attempt")
    .timestamp("enqueue_time")
    .string("queue_name")
    .timestamp("deadline", true)
    .optionalStringMap("trace_context")
    .optionalStringMap("correlation_context")
    .optionalString("worker_id")
    .done();
}

function checkOutcomeError(error: unknown): string | undefined {
  if (error == null) return undefined;
  if (!isFields(error)) return "error must be an object or null";
  if (typeof error.message !== "string") return "error.message must be a string";
  if (error.type != null && typeof error.type !== "string") return "error.type must be a string";
  if (error.code != null && typeof error.code !== "string") return "error.code must be a string";
  if (error.traceback != null && typeof error.traceback !== "string")
    return "error.traceback must be a string";
  return undefined;
}

function checkResponse(p: Fields): void {
  new PayloadRules(p, "response")
    .optionalString("job_id")
    .optionalString("request_id")
    .oneOf("status", OUTCOME_STATUSES)
    .check((f) => checkOutcomeError(f.error))
    .optionalNumber("retry_after_seconds")
    .optionalBoolean("snooze")
    .done();
}

function checkCancel(p: Fields): void {
  new PayloadRules(p, "cancel")
    .optionalString("protocol_version")
    .string("job_id")
    .optionalString("request_id")
    .optionalBoolean("hard_kill")
    .done();
}

function checkHello(p: Fields): void {
  new PayloadRules(p, "hello")
    .string("protocol_version")
    .string("runtime")
    .optionalString("runtime_version")
    .integer("pid", 0, true)
    .integer("max_in_flight", 1, true)
    .check((f) =>
      Array.isArray(f.features) && f.features.every((x) => typeof x === "string")
        ? undefined
        : "features must be an array of strings",
    )
    .check((f) => checkTags(f.tags))
    .done();
}

/** A hello's `tags`: absent/null, or at most 32 distinct tags of the tag alphabet (§8.6). */
function checkTags(tags: unknown): string | undefined {
  if (tags == null) return undefined;
  if (!Array.isArray(tags)) return "tags must be an array of strings";
  if (tags.length > MAX_TAGS) return `tags must hold at most ${MAX_TAGS} tags`;
  const list = tags as unknown[];
  const bad = list.findIndex((t) => typeof t !== "string" || !TAG_PATTERN.test(t));
  if (bad >= 0) return `tags holds an invalid tag ${JSON.stringify(list[bad])}`;
  if (new Set(tags).size !== tags.length) return "tags must not repeat a tag";
  return undefined;
}

/** Characters as JSON Schema counts them (code points), not UTF-16 units. */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function checkProgress(p: Fields): void {
  new PayloadRules(p, "progress")
    .string("job_id")
    .nonEmptyString("request_id")
    .check((f) => {
      const v = f.progress;
      if (v == null) return undefined;
      return typeof v === "number" && v >= 0 && v <= 1
        ? undefined
        : "progress must be a number from 0 to 1 or null";
    })
    .optionalString("message")
    .check((f) =>
      typeof f.message === "string" &&
      f.message.length > MAX_PROGRESS_MESSAGE_CHARS &&
      codePoints(f.message) > MAX_PROGRESS_MESSAGE_CHARS
        ? `message must hold at most ${MAX_PROGRESS_MESSAGE_CHARS} characters`
        : undefined,
    )
    .done();
}

function checkOutput(p: Fields): void {
  new PayloadRules(p, "output")
    .string("job_id")
    .nonEmptyString("request_id")
    .integer("seq")
    .oneOf("stream", OUTPUT_STREAMS)
    .string("data")
    .check((f) =>
      typeof f.data === "string" &&
      f.data.length > MAX_OUTPUT_DATA_BYTES / 3 &&
      Buffer.byteLength(f.data) > MAX_OUTPUT_DATA_BYTES
        ? `data must hold at most ${MAX_OUTPUT_DATA_BYTES} bytes of UTF-8`
        : undefined,
    )
    .optionalBoolean("truncated")
    .integer("dropped_bytes", 0, true)
    .done();
}

function checkPing(p: Fields, type: string): void {
  new PayloadRules(p, type).string("nonce").done();
}

const payloadChecks: Record<Frame["type"], (payload: Fields, type: string) => void> = {
  request: checkRequest,
  response: checkResponse,
  cancel: checkCancel,
  hello: checkHello,
  ping: checkPing,
  pong: checkPing,
  progress: checkProgress,
  output: checkOutput,
};

/**
 * Turns a decoded envelope value into a typed frame, applying the schema's `required` and
 * `type` rules. Unknown fields are kept but ignored. Throws {@link FrameDecodeError} with code
 * `invalid_envelope`, `unknown_frame_type` or `invalid_frame`.
 */
export function parseFrame(value: unknown): Frame {
  if (!isFields(value)) throw new FrameDecodeError("invalid_envelope", "frame body is not a map");
  const { type, payload } = value;
  if (typeof type !== "string")
    throw new FrameDecodeError("invalid_envelope", "type must be a string");
  if (!isFields(payload)) throw new FrameDecodeError("invalid_envelope", "payload must be a map");
  if (!(FRAME_TYPES as readonly string[]).includes(type)) {
    throw new FrameDecodeError("unknown_frame_type", `unknown frame type '${type}'`);
  }
  payloadChecks[type as Frame["type"]](payload, type);
  return value as unknown as Frame;
}

/**
 * Builds the wire form of an outcome error: every RRQ field, null for none, then `traceback`
 * only when there is one (rrqkit's addition, so an outcome without one is byte-for-byte RRQ's).
 */
export function wireError(error: OutcomeError | null | undefined): OutcomeError | null {
  if (!error) return null;
  const wire: OutcomeError = {
    message: error.message,
    type: error.type ?? null,
    code: error.code ?? null,
    details: error.details ?? null,
  };
  if (typeof error.traceback === "string") wire.traceback = error.traceback;
  return wire;
}

/**
 * Builds a `response` frame with every field in schema order (null for none), then `snooze: true`
 * only for a snooze (rrqkit's addition, so every other outcome is byte-for-byte RRQ's).
 */
export function responseFrame(outcome: ExecutionOutcome): Frame {
  const payload: ExecutionOutcome = {
    job_id: outcome.job_id,
    request_id: outcome.request_id,
    status: outcome.status,
    result: outcome.result ?? null,
    error: wireError(outcome.error),
    retry_after_seconds: outcome.retry_after_seconds ?? null,
  };
  if (outcome.snooze === true) payload.snooze = true;
  return { type: "response", payload };
}

/**
 * Builds a `request` frame with every field in schema order (null for none), then `live` only
 * when it is set (§13.1), so a request without live frames is byte-for-byte RRQ's.
 */
export function requestFrame(request: ExecutionRequest): Frame {
  const c = request.context;
  const frame: Frame = {
    type: "request",
    payload: {
      protocol_version: request.protocol_version ?? "2",
      request_id: request.request_id,
      job_id: request.job_id,
      function_name: request.function_name,
      params: request.params ?? {},
      context: {
        job_id: c.job_id,
        attempt: c.attempt,
        enqueue_time: c.enqueue_time,
        queue_name: c.queue_name,
        deadline: c.deadline ?? null,
        trace_context: c.trace_context ?? null,
        correlation_context: c.correlation_context ?? null,
        worker_id: c.worker_id ?? null,
      },
    },
  };
  const live = request.live;
  if (live != null) {
    frame.payload.live = {
      progress: live.progress ?? false,
      output: live.output ?? false,
      progress_interval_ms: live.progress_interval_ms ?? DEFAULT_PROGRESS_INTERVAL_MS,
      output_max_bytes: live.output_max_bytes ?? DEFAULT_OUTPUT_MAX_BYTES,
    };
  }
  return frame;
}

/** Builds a `cancel` frame; a job-wide cancel omits request_id, as RRQ does. */
export function cancelFrame(cancel: CancelRequest): Frame {
  const payload: CancelRequest = { protocol_version: "2", job_id: cancel.job_id };
  if (cancel.request_id != null) payload.request_id = cancel.request_id;
  payload.hard_kill = cancel.hard_kill ?? false;
  return { type: "cancel", payload };
}

/** Builds a `hello` frame. */
export function helloFrame(hello: Hello): Frame {
  return { type: "hello", payload: hello };
}

/** Builds a `progress` frame with every field in schema order (null for none). */
export function progressFrame(progress: Progress): Frame {
  return {
    type: "progress",
    payload: {
      job_id: progress.job_id,
      request_id: progress.request_id,
      progress: progress.progress ?? null,
      message: progress.message ?? null,
      detail: progress.detail ?? null,
    },
  };
}

/** Builds an `output` frame with every field in schema order. */
export function outputFrame(output: Output): Frame {
  return {
    type: "output",
    payload: {
      job_id: output.job_id,
      request_id: output.request_id,
      seq: output.seq,
      stream: output.stream,
      data: output.data,
      truncated: output.truncated ?? false,
      dropped_bytes: output.dropped_bytes ?? 0,
    },
  };
}

/** Builds a `ping` or `pong` frame. */
export function pingFrame(type: "ping" | "pong", ping: Ping): Frame {
  return { type, payload: { nonce: ping.nonce } };
}
