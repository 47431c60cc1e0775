/** The protocol version every frame carries, exactly RRQ 0.11's. */
export const PROTOCOL_VERSION = "2";

/** Largest frame payload in bytes (16 MiB). A length prefix above this is a decoding error. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Deepest allowed nesting of arrays and maps in a frame body, the envelope map being level 1
 * (RUNNER_PROTOCOL.md §4). Deeper bodies are `malformed_payload` on read and not encodable on
 * write.
 */
export const MAX_NESTING_DEPTH = 100;

/** Deepest nesting a request's params may have (`{}` is 1): they sit at level 3 of the body. */
export const MAX_PARAMS_DEPTH = MAX_NESTING_DEPTH - 2;

/** Requests a runner must accept concurrently on one connection; the next one is refused. */
export const MAX_IN_FLIGHT_PER_CONNECTION = 64;

/** Environment variable with which an orchestrator asks runners for a hello frame. */
export const HELLO_ENV = "RRQ_RUNNER_HELLO";

/** The closed set of frame types (RUNNER_PROTOCOL.md §3). */
export const FRAME_TYPES = [
  "request",
  "response",
  "cancel",
  "hello",
  "ping",
  "pong",
  "progress",
  "output",
] as const;

/** Environment variable holding extra capability tags, comma-separated (§8.6). */
export const TAGS_ENV = "RRQ_RUNNER_TAGS";

/** A capability tag: 1 to 64 characters of `[A-Za-z0-9_.:/=-]` (§8.6). */
export const TAG_PATTERN = /^[A-Za-z0-9_.:/=-]{1,64}$/;

/** Most tags a hello may list (§8.6). */
export const MAX_TAGS = 32;

/** Where an output chunk came from (§13.3). */
export const OUTPUT_STREAMS = ["handler", "stdout", "stderr"] as const;

/** `live.progress_interval_ms` when the request leaves it out (§13.1). */
export const DEFAULT_PROGRESS_INTERVAL_MS = 200;

/** `live.output_max_bytes` when the request leaves it out (§13.1): 8 MiB. */
export const DEFAULT_OUTPUT_MAX_BYTES = 8 * 1024 * 1024;

/** Longest progress message, in characters (§13.2); runners cut longer ones. */
export const MAX_PROGRESS_MESSAGE_CHARS = 1024;

/** Largest progress detail, in bytes of compact JSON (§13.2). */
export const MAX_PROGRESS_DETAIL_BYTES = 4096;

/** Largest `data` of one output frame, in bytes of UTF-8 (§13.3); longer writes are split. */
export const MAX_OUTPUT_DATA_BYTES = 65536;

/** The closed set of outcome statuses. */
export const OUTCOME_STATUSES = ["success", "retry", "timeout", "error"] as const;

/** Reserved error types with a protocol meaning. */
export const ErrorTypes = {
  handlerNotFound: "handler_not_found",
  cancelled: "cancelled",
  timeout: "timeout",
  /** rrqkit addition: the handler failed permanently; the job is not retried (§7). */
  nonRetryable: "non_retryable",
  /** rrqkit addition: the params break the job's contract (catalog); not retried (§7). */
  invalidParams: "invalid_params",
} as const;

/** Error type of the outcome sent when a handler's outcome cannot be framed (too large). */
export const OUTCOME_TOO_LARGE = "OutcomeTooLarge";

/** Exact error messages shared by every runtime (RUNNER_PROTOCOL.md §7). */
export const Messages = {
  busy: "Runner busy: too many in-flight requests",
  unsupportedVersion: "Unsupported protocol version",
  cancelled: "Job cancelled",
  deadlineExceeded: "Job deadline exceeded",
  executionTimedOut: "Job execution timed out",
  unexpectedResponse: "Unexpected response message",
  unhandledError: "Unhandled handler error",
  retryRequested: "Job requested retry",
  jobFailed: "Job failed",
  snoozed: "Job snoozed",
  handlerNotFound: (name: string) => `No handler registered for function '${name}'`,
} as const;
