import { boundedTraceback, type ExecutionOutcome } from "@rrqkit/runner/protocol";
import type { JobRecord } from "../store/job.js";
import type { ErrorDetail } from "../store/job-store.js";

/** Retry and timeout settings the outcome table needs. */
export interface RetryPolicy {
  defaultMaxRetries: number;
  baseRetryDelaySeconds: number;
  maxRetryDelaySeconds: number;
}

/** What the worker does with an attempt's result. */
export type Decision =
  | { kind: "complete"; result: unknown }
  | ({
      kind: "retry";
      delaySeconds: number;
      error: string;
      outcome: SpanOutcome;
    } & Partial<FailureDetailFields>)
  | ({ kind: "dlq"; error: string; outcome: SpanOutcome } & Partial<FailureDetailFields>);

/**
 * What a failed attempt's error was beside its message: the runner's `error.type` and its
 * traceback (capped at 8 KiB again: runners are not trusted). Absent: see {@link failureDetail}.
 */
interface FailureDetailFields {
  errorType: string | null;
  traceback: string | null;
}

/** Error types the orchestrator gives failures it detects itself. */
const OWN_ERROR_TYPES: Partial<Record<SpanOutcome, string>> = {
  timeout: "timeout",
  transport_error: "transport_error",
};

/**
 * The error type and traceback of a retry or DLQ decision. A decision that names none (made by
 * the orchestrator, not from a runner's outcome) gets the type of its outcome: `timeout` or
 * `transport_error`, else none.
 */
export function failureDetail(decision: Exclude<Decision, { kind: "complete" }>): ErrorDetail {
  return {
    type: decision.errorType || OWN_ERROR_TYPES[decision.outcome] || null,
    traceback: decision.traceback ?? null,
  };
}

/** The outcome label of RRQ's rrq.job span and metrics. */
export type SpanOutcome = "success" | "retry" | "timeout" | "error" | "fatal" | "transport_error";

/**
 * Exponential backoff without jitter: min(base · 2^(k−1), max) with k = current_retries + 1
 * (k ≤ 0 counts as 1) and the exponent capped at 30 (rrq-0.11-facts §2.8).
 */
export function backoffSeconds(currentRetries: number, policy: RetryPolicy): number {
  const k = Math.max(currentRetries + 1, 1);
  const exponent = Math.min(k - 1, 30);
  return Math.min(policy.baseRetryDelaySeconds * 2 ** exponent, policy.maxRetryDelaySeconds);
}

/** RRQ's timeout message, e.g. "Job timed out after 1s." */
export const timedOutMessage = (seconds: number) => `Job timed out after ${seconds}s.`;

/**
 * Messages a runner uses for its own deadline expiry (RUNNER_PROTOCOL.md §7), and the variant
 * with a trailing period that RRQ 0.11's Python runtime sends (a known difference of it).
 */
const DEADLINE_MESSAGES = new Set([
  "Job execution timed out",
  "Job execution timed out.",
  "Job deadline exceeded",
]);

function retryOrDlq(
  job: JobRecord,
  policy: RetryPolicy,
  error: string,
  outcome: SpanOutcome,
  explicitDelay?: number | null,
  detail: Partial<FailureDetailFields> = {},
): Decision {
  const maxRetries = job.maxRetries ?? policy.defaultMaxRetries;
  if (job.currentRetries + 1 >= maxRetries) return { kind: "dlq", error, outcome, ...detail };
  const delaySeconds = explicitDelay ?? backoffSeconds(job.currentRetries, policy);
  return { kind: "retry", delaySeconds, error, outcome, ...detail };
}

/** The runner's error type and (re-capped, never trusted) traceback of an outcome. */
function detailOf(outcome: ExecutionOutcome): FailureDetailFields {
  return {
    errorType: outcome.error?.type || null,
    traceback: boundedTraceback(outcome.error?.traceback),
  };
}

/**
 * The outcome table (rrq-0.11-facts §2.6). `max_retries` is the total number of attempts.
 *
 * One deliberate difference: when a runner reports the protocol's own deadline timeout
 * ("Job execution timed out" / "Job deadline exceeded"), last_error is the orchestrator's
 * "Job timed out after Ns." — the same event as an orchestrator-side timeout, so the message
 * does not depend on which of the two clocks fired first.
 */
export function decide(
  job: JobRecord,
  outcome: ExecutionOutcome,
  policy: RetryPolicy,
  timeoutSeconds: number,
): Decision {
  const message = outcome.error?.message;
  switch (outcome.status) {
    case "success":
      return { kind: "complete", result: outcome.result ?? null };
    case "retry":
      return retryOrDlq(
        job,
        policy,
        message || "Job requested retry",
        "retry",
        outcome.retry_after_seconds,
        detailOf(outcome),
      );
    case "timeout": {
      const error =
        !message || DEADLINE_MESSAGES.has(message) ? timedOutMessage(timeoutSeconds) : message;
      return { kind: "dlq", error, outcome: "timeout", ...detailOf(outcome) };
    }
    case "error":
      if (outcome.error?.type === "handler_not_found") {
        const error = message || "Handler not found";
        return { kind: "dlq", error, outcome: "fatal", ...detailOf(outcome) };
      }
      return retryOrDlq(job, policy, message || "Job failed", "error", null, detailOf(outcome));
  }
}

/** A transport failure: like an error, with RRQ's message prefix. */
export function decideTransportError(
  job: JobRecord,
  detail: string,
  policy: RetryPolicy,
): Decision {
  return retryOrDlq(job, policy, `Runner transport error: ${detail}`, "transport_error");
}
