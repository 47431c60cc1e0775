/**
 * The error taxonomy. Every error rrqkit raises on purpose is an {@link RrqError} with a stable
 * `code` that scripts and tests can rely on; the message says what is wrong in words.
 */
export type ErrorCode =
  // configuration
  | "config_not_found"
  | "invalid_config"
  // producer input (protocol/PRODUCER.md §6)
  | "invalid_argument"
  | "invalid_params"
  | "payload_too_large"
  | "conflicting_options"
  | "duplicate_job_id"
  | "rate_limited"
  | "enqueue_vetoed"
  // infrastructure
  | "redis_error"
  | "redis_unavailable"
  | "runner_unavailable"
  | "runner_transport"
  | "runner_spawn_failed";

/** Base class of every deliberate rrqkit error. */
export class RrqError extends Error {
  override name = "RrqError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The configuration cannot be found or is invalid. Nothing was started. */
export class ConfigError extends RrqError {
  override name = "ConfigError";
}

/** An enqueue or status call was refused. Nothing was written to Redis. */
export class ProducerError extends RrqError {
  override name = "ProducerError";
}

/**
 * Params that break the job's contract in the producer's catalog (code `invalid_params`,
 * protocol/PRODUCER.md §6). `field` is the JSON Pointer into the params of the first failing
 * location (`""` for the params object itself), so every binding reports the same field.
 * Nothing was written to Redis.
 */
export class InvalidParamsError extends ProducerError {
  override name = "InvalidParamsError";
  constructor(
    readonly functionName: string,
    readonly field: string,
    message: string,
  ) {
    super("invalid_params", message);
  }
}

/**
 * A producer middleware's `beforeEnqueue` refused the job (code `enqueue_vetoed`,
 * protocol/PRODUCER.md §6, docs/middleware.md). Throw it from a hook with just the reason; the
 * producer rethrows it with the function name, message `enqueue of <fn> vetoed: <reason>`.
 * Nothing was written to Redis and later hooks did not run.
 */
export class EnqueueVetoedError extends ProducerError {
  override name = "EnqueueVetoedError";
  /** The function whose enqueue was refused; undefined until the producer sets it. */
  readonly functionName: string | undefined;

  constructor(
    readonly reason: string,
    options?: { functionName?: string; cause?: unknown },
  ) {
    const fn = options?.functionName;
    super(
      "enqueue_vetoed",
      fn === undefined ? `enqueue vetoed: ${reason}` : `enqueue of ${fn} vetoed: ${reason}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.functionName = fn;
  }
}

/** Talking to a runner failed (connection closed, spawn failed, no process available). */
export class RunnerError extends RrqError {
  override name = "RunnerError";
}

/** Turns any thrown value into an Error, keeping the original as `cause`. */
export function coerceError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : JSON.stringify(value), { cause: value });
}

/**
 * Replaces the password (and user) of a Redis URL with "***", for logs and errors; also of a
 * mistyped DSN without a scheme ("user:pw@host:6379").
 */
export function redactDsn(dsn: string): string {
  return dsn.replace(
    /^(\w[\w+.-]*:\/\/)?([^@/]*)@/,
    (_m, scheme: string | undefined, auth: string) => `${scheme ?? ""}${auth ? "***" : ""}@`,
  );
}
