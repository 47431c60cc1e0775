/* eslint-disable */
/**
 * GENERATED FILE, DO NOT EDIT. Source: schemas/v2/*.schema.json.
 * Regenerate with `npm run gen`; `npm test` fails when this file drifts from the schemas.
 */
/**
 * Every frame body, in either encoding, is one envelope: a frame type tag and its payload. The set of frame types is closed: a reader that meets an unknown type MUST treat the frame as undecodable and close the connection (RRQ runners do). A writer MUST NOT send hello, ping or pong to a peer that has not announced the matching feature, nor progress or output frames for a request that did not enable them (see protocol/RUNNER_PROTOCOL.md §8, §13).
 */
export type Frame =
  | RequestFrame
  | ResponseFrame
  | CancelFrame
  | HelloFrame
  | PingFrame
  | PongFrame
  | ProgressFrame
  | OutputFrame;

/**
 * Orchestrator to runner: run one attempt of a job.
 */
export interface RequestFrame {
  type: "request";
  payload: ExecutionRequest;
}
/**
 * One attempt of one job, sent by the orchestrator. Field order here is the order writers emit. Writers emit every field (null for none) except `live`, which is written only when something is enabled; readers ignore unknown fields and treat absent like null.
 */
export interface ExecutionRequest {
  /**
   * Protocol version. Writers send "2". A runner that receives any other value replies with an error outcome (message "Unsupported protocol version") and keeps the connection open. Absent, or null on read, means "2"; writers never send null.
   */
  protocol_version?: string;
  /**
   * Unique id of this dispatch (a new UUIDv4 per attempt). Never reused; the outcome MUST echo it.
   */
  request_id: string;
  /**
   * Id of the job; the outcome MUST echo it.
   */
  job_id: string;
  /**
   * Handler name with any "runner#" prefix already removed.
   */
  function_name: string;
  /**
   * The job's params object (the job_params field of the job hash). Absent or null means {}.
   */
  params?: {
    [k: string]: unknown | undefined;
  } | null;
  context: ExecutionContext;
  /**
   * Since rrqkit 0.1, live jobs (RUNNER_PROTOCOL.md §13.1): the live frames the runner may send for this request. An orchestrator writes it only on a connection whose hello listed the matching feature ("progress", "output"), and only when at least one of them is enabled; otherwise it leaves the field out, so a request to an RRQ runner is byte-for-byte RRQ's. Absent or null: the runner sends no progress and no output frame for the request.
   */
  live?: LiveOptions | null;
}
/**
 * What the orchestrator knows about the job and this attempt.
 */
export interface ExecutionContext {
  /**
   * Same as the request's job_id.
   */
  job_id: string;
  /**
   * 1-based attempt number: the job's current_retries + 1. Orchestrators write >= 1; readers also accept 0 (as RRQ's types do) and pass it on unchanged. An integral float (2.0) is the integer 2.
   */
  attempt: number;
  /**
   * When the job was enqueued, RFC 3339 (writers use UTC with a "Z" suffix).
   */
  enqueue_time: string;
  /**
   * The full queue key the job was claimed from, e.g. "rrq:queue:default".
   */
  queue_name: string;
  /**
   * Absolute time by which the attempt must finish, RFC 3339 with "Z". A runner that receives a deadline at or before its clock's now replies timeout without running the handler. Null means no deadline. A value that is not an RFC 3339 date-time makes the frame invalid_frame (RUNNER_PROTOCOL.md §10.6).
   */
  deadline?: string | null;
  /**
   * W3C trace-context carrier (e.g. traceparent, tracestate) copied from the job; the runner's rrq.runner span uses it as parent.
   */
  trace_context?: {
    [k: string]: string | undefined;
  } | null;
  /**
   * Correlation attributes extracted from params at enqueue time (attribute name to string value).
   */
  correlation_context?: {
    [k: string]: string | undefined;
  } | null;
  /**
   * Id of the orchestrator worker that claimed the job.
   */
  worker_id?: string | null;
}
/**
 * Since rrqkit 0.1, live jobs (RUNNER_PROTOCOL.md §13.1): which live frames a request enables and their bounds. Writers emit all four fields in this order. Readers treat an absent or null field as its default: progress and output false, progress_interval_ms 200, output_max_bytes 8388608.
 */
export interface LiveOptions {
  /**
   * The runner may send progress frames for this request (§13.2).
   */
  progress?: boolean;
  /**
   * The runner may send output frames for this request (§13.3).
   */
  output?: boolean;
  /**
   * The runner sends at most one progress frame per this many milliseconds per request, keeping the latest value; 0 means no coalescing.
   */
  progress_interval_ms?: number;
  /**
   * Output bytes (UTF-8 of the data fields) the runner sends for this request; beyond them chunks are dropped and one output frame with truncated true reports how many bytes were dropped (§13.3). 0 drops everything.
   */
  output_max_bytes?: number;
}
/**
 * Runner to orchestrator: the single outcome of one request.
 */
export interface ResponseFrame {
  type: "response";
  payload: ExecutionOutcome;
}
/**
 * The one and only reply to a request. Writers emit every field in this order, null for none.
 */
export interface ExecutionOutcome {
  /**
   * MUST equal the request's job_id. The only exception: a runner answering an unexpected response frame uses "unknown".
   */
  job_id: string;
  /**
   * MUST equal the request's request_id. Null only when no request is being answered (an unexpected response frame).
   */
  request_id: string | null;
  /**
   * Closed set. success: result holds the value. retry: run again later (after retry_after_seconds if given). timeout: the attempt ran out of time. error: the attempt failed; error says why.
   */
  status: "success" | "retry" | "timeout" | "error";
  /**
   * Any JSON value; meaningful for success only. Absent or null is stored as JSON null.
   */
  result?: unknown;
  error?: OutcomeError | null;
  /**
   * For status retry: seconds until the next attempt, used verbatim by the orchestrator. Ignored for other statuses.
   */
  retry_after_seconds?: number | null;
  /**
   * Since rrqkit 0.1 (RUNNER_PROTOCOL.md §7.2): for status retry, true means the handler snoozed: run again after retry_after_seconds without counting the attempt (rrqkit's orchestrator keeps current_retries, counts the job's snoozes and applies max_snoozes). Writers emit it last and only when true; absent means false. Readers that do not know it (RRQ's orchestrator) ignore it and treat the outcome as an ordinary retry.
   */
  snooze?: boolean;
}
/**
 * Why an attempt did not succeed.
 */
export interface OutcomeError {
  /**
   * Human-readable reason; becomes the job's last_error.
   */
  message: string;
  /**
   * Open set. Reserved values: "handler_not_found" (no handler registered; the orchestrator moves the job to the DLQ), "cancelled" (the request was cancelled), "timeout" (the deadline passed), "non_retryable" (since rrqkit 0.1, RUNNER_PROTOCOL.md §7: the handler failed permanently; rrqkit's orchestrator moves the job to the DLQ without a retry, RRQ's retries it like any error). Other values are free (runtimes use the exception class name); unknown values are treated as an ordinary error.
   */
  type?: string | null;
  /**
   * Optional machine-readable code chosen by the handler.
   */
  code?: string | null;
  /**
   * Optional structured details (any JSON; RRQ's Python runtime requires an object).
   */
  details?: unknown;
  /**
   * rrqkit addition (RUNNER_PROTOCOL.md §7.1): the thrown error's stack trace / traceback / backtrace as text, at most 8192 bytes of UTF-8. A longer text is cut to its first 4096 and last 4000 bytes (whole UTF-8 characters only) joined by the line "\n... [N bytes truncated] ...\n". Absent or null when there is none. Never contains the job's params. Readers that do not know it ignore it.
   */
  traceback?: string | null;
}
/**
 * Orchestrator to runner: abort one request, or every request of a job.
 */
export interface CancelFrame {
  type: "cancel";
  payload: CancelRequest;
}
/**
 * Abort in-flight work. A runner answers each cancelled request that is still running with one error outcome of type "cancelled", on the connection that carried the request. A cancel with protocol_version other than "2" is ignored silently.
 */
export interface CancelRequest {
  /**
   * Writers send "2". Absent, or null on read, means "2"; writers never send null.
   */
  protocol_version?: string;
  /**
   * The job whose work is cancelled.
   */
  job_id: string;
  /**
   * Cancel only this request. Absent or null: cancel every in-flight request of job_id, on every connection of the runner process. Writers omit the field (rather than send null) for a job-wide cancel, as RRQ does.
   */
  request_id?: string | null;
  /**
   * Reserved; ignored by every runtime. Writers send false; readers treat absent or null as false.
   */
  hard_kill?: boolean;
}
/**
 * Runner to orchestrator, first frame of a connection, only when the orchestrator asked for it (RRQ_RUNNER_HELLO=1). Since rrqkit 0.1; unknown to RRQ 0.11.
 */
export interface HelloFrame {
  type: "hello";
  payload: Hello;
}
/**
 * A runner's announcement of what it supports. Since rrqkit 0.1. Sent by the runner as the first frame of each connection, on every transport (stdio, unix, tcp), in the connection's encoding, only when its environment has RRQ_RUNNER_HELLO=1. An rrqkit orchestrator always sets that variable for the runners it launches: on stdio the hello is then its readiness signal (RUNNER_PROTOCOL.md §5); on unix and tcp it waits a bounded time for it before the first request (§8.4). Without the variable a runner sends no hello on any transport. Optional fields (runtime_version, max_in_flight, tags) are written with a value or left out, never null; readers treat null like absent.
 */
export interface Hello {
  /**
   * Always "2".
   */
  protocol_version: string;
  /**
   * Implementation name, e.g. "rrqkit-node", "rrqkit-python", "rrqkit-rust".
   */
  runtime: string;
  /**
   * Implementation version.
   */
  runtime_version?: string;
  /**
   * The runner's process id.
   */
  pid?: number | null;
  /**
   * Per-connection in-flight cap the runner enforces (64 for every rrqkit runtime).
   */
  max_in_flight?: number;
  /**
   * Open set of optional protocol features; readers ignore values they do not know. Known: "ping" (answers ping with pong), "cancel_by_job" (job-wide cancel across connections), "stdout_guard" (stdout is protected from handler output on stdio), "progress" (since rrqkit 0.1, live jobs: sends progress frames for a request whose live.progress is true, §13.2), "output" (sends output frames for a request whose live.output is true, §13.3).
   */
  features: string[];
  /**
   * Capability tags of this runner process (since rrqkit 0.1, RUNNER_PROTOCOL.md §8.6): the tags given in code merged with the comma-separated RRQ_RUNNER_TAGS environment variable, deduplicated and sorted (byte order). A job whose `requires` is not a subset of a process's tags is never dispatched to it. Absent means no tags; writers leave the field out rather than send an empty array.
   *
   * @maxItems 32
   */
  tags?: string[];
}
/**
 * Orchestrator to runner liveness probe. Only sent to a runner whose hello listed the "ping" feature. Since rrqkit 0.1.
 */
export interface PingFrame {
  type: "ping";
  payload: Ping;
}
/**
 * Payload of ping and pong frames. Since rrqkit 0.1. A runner answers a ping promptly with a pong carrying the same nonce, even while handlers run.
 */
export interface Ping {
  /**
   * Opaque string chosen by the sender of the ping.
   */
  nonce: string;
}
/**
 * Runner to orchestrator answer to a ping, carrying the same nonce. Since rrqkit 0.1.
 */
export interface PongFrame {
  type: "pong";
  payload: Ping;
}
/**
 * Runner to orchestrator: progress of an in-flight request, only when the request's live.progress is true. Since rrqkit 0.1 (live jobs); unknown to RRQ 0.11.
 */
export interface ProgressFrame {
  type: "progress";
  payload: Progress;
}
/**
 * Since rrqkit 0.1, live jobs (RUNNER_PROTOCOL.md §13.2). Runner to orchestrator: the latest progress of one in-flight request. Sent only for a request whose live.progress is true, at most one per live.progress_interval_ms per request, and always before the request's response frame. Writers emit every field in this order, null for none.
 */
export interface Progress {
  /**
   * The request's job_id.
   */
  job_id: string;
  /**
   * The request's request_id.
   */
  request_id: string;
  /**
   * Fraction done, 0 to 1 inclusive; null when only the message or detail changed.
   */
  progress?: number | null;
  /**
   * Short human-readable status, at most 1024 characters (runners cut a longer one).
   */
  message?: string | null;
  /**
   * Any JSON value the handler attached; null for none. Writers never send one whose compact JSON encoding exceeds 4096 bytes of UTF-8 (runners refuse it at the handler's call); readers need not check the size and may store null instead of a larger one.
   */
  detail?: unknown;
}
/**
 * Runner to orchestrator: a chunk of an in-flight request's output, only when the request's live.output is true. Since rrqkit 0.1 (live jobs); unknown to RRQ 0.11.
 */
export interface OutputFrame {
  type: "output";
  payload: Output;
}
/**
 * Since rrqkit 0.1, live jobs (RUNNER_PROTOCOL.md §13.3). Runner to orchestrator: one chunk of a request's streamed output. Sent only for a request whose live.output is true, always before the request's response frame. Writers emit every field in this order.
 */
export interface Output {
  /**
   * The request's job_id.
   */
  job_id: string;
  /**
   * The request's request_id.
   */
  request_id: string;
  /**
   * Position of this frame among the request's output frames: 0 for the first, then consecutive.
   */
  seq: number;
  /**
   * Where the chunk came from: "handler" (the handler's output writer), "stdout" or "stderr" (captured process output, where a runtime supports capture).
   */
  stream: "handler" | "stdout" | "stderr";
  /**
   * The text, at most 65536 bytes of UTF-8 (so at most 65536 characters; longer writes are split across frames at character boundaries). Empty in the truncation frame.
   */
  data: string;
  /**
   * True only in the request's single truncation frame: output beyond live.output_max_bytes was dropped. Absent or null on read means false.
   */
  truncated?: boolean;
  /**
   * In the truncation frame, the bytes of UTF-8 dropped for this request; 0 otherwise. Absent or null on read means 0.
   */
  dropped_bytes?: number;
}
