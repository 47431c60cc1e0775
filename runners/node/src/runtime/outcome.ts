import { ErrorTypes, Messages, OUTCOME_STATUSES } from "../protocol/constants.js";
import { capTraceback } from "../protocol/traceback.js";
import { NonRetryableError } from "./errors.js";
import type {
  ExecutionOutcome,
  ExecutionRequest,
  OutcomeError,
} from "../protocol/generated/wire.js";

const OUTCOME_BRAND = Symbol.for("rrqkit.outcome");

/** An outcome a handler returns explicitly; job_id/request_id are filled in by the runtime. */
export interface HandlerOutcome {
  readonly [OUTCOME_BRAND]: true;
  readonly status: ExecutionOutcome["status"];
  readonly result?: unknown;
  readonly error?: OutcomeError | null;
  readonly retry_after_seconds?: number | null;
  /** Set by {@link snooze} only: run again later without counting the attempt (§7.2). */
  readonly snooze?: boolean;
}

function brand(fields: Omit<HandlerOutcome, typeof OUTCOME_BRAND>): HandlerOutcome {
  return { [OUTCOME_BRAND]: true, ...fields };
}

/** Constructors for the outcomes a handler may return instead of a plain value. */
export const Outcome = {
  /** Success with a result value. Returning the value itself means the same. */
  success: (result: unknown = null): HandlerOutcome => brand({ status: "success", result }),
  /** Ask for another attempt, after `afterSeconds` if given (else the orchestrator's backoff). */
  retry: (message?: string, afterSeconds?: number): HandlerOutcome =>
    brand({
      status: "retry",
      error: message === undefined ? null : { message },
      retry_after_seconds: afterSeconds ?? null,
    }),
  /** The attempt failed. `type` is an open set (see the protocol's reserved types). */
  error: (
    message: string,
    type?: string | null,
    code?: string | null,
    details?: unknown,
  ): HandlerOutcome =>
    brand({ status: "error", error: { message, type: type ?? null, code: code ?? null, details } }),
  /** The attempt ran out of time. */
  timeout: (message: string = Messages.executionTimedOut): HandlerOutcome =>
    brand({ status: "timeout", error: { message, type: ErrorTypes.timeout } }),
  /** Run the job again after `seconds` without counting the attempt; see {@link snooze}. */
  snooze: (seconds: number): HandlerOutcome => snooze(seconds),
  /** Fail the job permanently (not retried): the outcome {@link NonRetryableError} produces. */
  failPermanently: (message: string): HandlerOutcome =>
    brand({ status: "error", error: { message, type: ErrorTypes.nonRetryable } }),
};

/**
 * "Not yet": returned from a handler, asks for the job to run again after `seconds` without
 * consuming an attempt (RUNNER_PROTOCOL.md §7.2). On the wire it is a `retry` outcome with
 * `snooze: true`. rrqkit's orchestrator keeps the attempt count, counts the snooze and moves the
 * job to the DLQ once it snoozed more than `max_snoozes` times; RRQ's orchestrator treats it as an
 * ordinary retry after `seconds` (which does consume an attempt).
 *
 * ```ts
 * if (!(await isReady(params.order_id))) return snooze(30);
 * ```
 *
 * @param seconds delay before the next run, a finite number ≥ 0.
 * @throws RangeError when `seconds` is negative, NaN, infinite or not a number.
 */
export function snooze(seconds: number): HandlerOutcome {
  // Checked here, at the handler's call, so the mistake points at the handler's line.
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) {
    throw new RangeError(`snooze seconds must be a finite number >= 0, got ${String(seconds)}`);
  }
  return brand({
    status: "retry",
    error: { message: Messages.snoozed, type: null },
    retry_after_seconds: seconds,
    snooze: true,
  });
}

/**
 * True for a value that is an outcome rather than a result: one built with {@link Outcome}, or
 * an RRQ-style plain object with a valid string `status` and `job_id`/`request_id` keys.
 */
export function isOutcomeLike(value: unknown): value is HandlerOutcome | ExecutionOutcome {
  if (typeof value !== "object" || value === null) return false;
  if (OUTCOME_BRAND in value) return true;
  const v = value as Record<string, unknown>;
  return (
    typeof v.status === "string" &&
    (OUTCOME_STATUSES as readonly string[]).includes(v.status) &&
    typeof v.job_id === "string" &&
    "request_id" in v
  );
}

/** The full wire outcome for a handler's return value, answering `request`. */
export function outcomeFor(request: ExecutionRequest, value: unknown): ExecutionOutcome {
  if (!isOutcomeLike(value)) {
    return {
      job_id: request.job_id,
      request_id: request.request_id,
      status: "success",
      result: value ?? null,
    };
  }
  const v = value as Partial<ExecutionOutcome>;
  const status = v.status!;
  const outcome: ExecutionOutcome = {
    job_id: v.job_id || request.job_id,
    request_id: v.request_id || request.request_id,
    status,
    result: v.result ?? null,
    error: v.error ?? defaultError(status),
    retry_after_seconds: v.retry_after_seconds ?? null,
  };
  // Only a retry can be a snooze; elsewhere the flag would mean nothing, so it is dropped.
  if (v.snooze === true && status === "retry") outcome.snooze = true;
  return outcome;
}

/** The error a runtime fills in when a non-success outcome has none (RUNNER_PROTOCOL.md §7). */
function defaultError(status: ExecutionOutcome["status"]): OutcomeError | null {
  switch (status) {
    case "retry":
      return { message: Messages.retryRequested };
    case "timeout":
      return { message: Messages.executionTimedOut, type: ErrorTypes.timeout };
    case "error":
      return { message: Messages.jobFailed };
    default:
      return null;
  }
}

/** An error outcome answering `request`. */
export function errorOutcome(
  request: { job_id: string; request_id: string | null },
  status: "error" | "timeout",
  message: string,
  type: string | null = null,
  traceback: string | null = null,
): ExecutionOutcome {
  const error: OutcomeError = { message, type, code: null, details: null };
  if (traceback !== null) error.traceback = capTraceback(traceback);
  return {
    job_id: request.job_id,
    request_id: request.request_id,
    status,
    result: null,
    error,
    retry_after_seconds: null,
  };
}

/** The outcome for a handler that threw `thrown` (RUNNER_PROTOCOL.md §7). */
export function thrownOutcome(request: ExecutionRequest, thrown: unknown): ExecutionOutcome {
  const error = thrown instanceof Error ? thrown : undefined;
  const message = (error ? error.message : String(thrown)) || Messages.unhandledError;
  // The stack names the error and its frames; it holds params only if the message does.
  const stack = typeof error?.stack === "string" && error.stack !== "" ? error.stack : null;
  if (NonRetryableError.isNonRetryable(error)) {
    return errorOutcome(request, "error", message, ErrorTypes.nonRetryable, stack);
  }
  if (error?.name === "TimeoutError") {
    return errorOutcome(request, "timeout", message, ErrorTypes.timeout, stack);
  }
  const type = error ? error.name || error.constructor?.name || "Error" : typeof thrown;
  return errorOutcome(request, "error", message, type, stack);
}
