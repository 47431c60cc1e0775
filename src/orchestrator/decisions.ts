import { boundedTraceback, type ExecutionOutcome } from "@rrqkit/runner/protocol";
import {
  maxAttemptsOf,
  policyBackoffSeconds,
  resolvePolicy,
  type EffectivePolicy,
} from "../policy/index.js";
import { parseTimestamp } from "../store/encoding.js";
import type { JobRecord } from "../store/job.js";
import type { ErrorDetail } from "../store/job-store.js";

/** Retry and timeout settings the outcome table needs. */
export interface RetryPolicy {
  defaultMaxRetries: number;
  baseRetryDelaySeconds: number;
  maxRetryDelaySeconds: number;
}

/**
 * What a decision needs beside the job and the outcome: the job's resolved policy (see
 * src/policy), the time (the store's clock, epoch ms) and the job's snoozes so far. Without
 * one, the global defaults apply with the local clock (RRQ's table).
 */
export interface DecisionContext {
  policy: EffectivePolicy;
  nowMs: number;
  snoozes: number;
}

/** What the worker does with an attempt's result. */
export type Decision =
  | { kind: "complete"; result: unknown }
  | { kind: "snooze"; delaySeconds: number; snoozes: number }
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

/** A decision that records a failure (retry or DLQ). */
export type FailureDecision = Extract<Decision, { kind: "retry" | "dlq" }>;

/** Error types that always go to the DLQ at once, whatever the job's retry policy says. */
const BUILT_IN_NON_RETRYABLE: ReadonlySet<string> = new Set(["non_retryable", "invalid_params"]);

/** Error types the orchestrator gives failures it detects itself. */
const OWN_ERROR_TYPES: Partial<Record<SpanOutcome, string>> = {
  timeout: "timeout",
  transport_error: "transport_error",
};

/**
 * The error type and traceback of a retry or DLQ decision. A decision that names none (made by
 * the orchestrator, not from a runner's outcome) gets the type of its outcome: `timeout` or
 * `transport_error`, else none. A snooze is no failure: none.
 */
export function failureDetail(decision: Exclude<Decision, { kind: "complete" }>): ErrorDetail {
  if (decision.kind === "snooze") return { type: null, traceback: null };
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

/** The context of a decision made without one: global defaults, local clock. */
function defaultContext(job: JobRecord, policy: RetryPolicy): DecisionContext {
  return {
    policy: resolvePolicy(policy, job.functionName, undefined),
    nowMs: Date.now(),
    snoozes: 0,
  };
}

/**
 * retry_for's origin: when the job first started (run_1_started_at, else its enqueue time), or
 * when an operator last took it out of the DLQ, whichever is later (a requeue restarts the budget).
 */
function firstStartMs(job: JobRecord): number {
  const started = job.raw.run_1_started_at;
  const first = (started ? parseTimestamp(started) : undefined) ?? job.enqueueTimeMs;
  const requeued = job.raw.dlq_requeued_at;
  const requeuedMs = requeued ? parseTimestamp(requeued) : undefined;
  return requeuedMs !== undefined && requeuedMs > first ? requeuedMs : first;
}

function retryOrDlq(
  job: JobRecord,
  policy: RetryPolicy,
  ctx: DecisionContext,
  error: string,
  outcome: SpanOutcome,
  explicitDelay?: number | null,
  detail: Partial<FailureDetailFields> = {},
): Decision {
  const maxAttempts = maxAttemptsOf(ctx.policy, job.maxRetries, policy);
  if (job.currentRetries + 1 >= maxAttempts) return { kind: "dlq", error, outcome, ...detail };
  const delaySeconds = explicitDelay ?? policyBackoffSeconds(ctx.policy, job.currentRetries + 1);
  const budget = ctx.policy.retryForSeconds;
  if (budget !== undefined && ctx.nowMs + delaySeconds * 1000 > firstStartMs(job) + budget * 1000)
    return {
      kind: "dlq",
      error: `${error} (retry budget of ${budget}s exhausted)`,
      outcome,
      ...detail,
    };
  return { kind: "retry", delaySeconds, error, outcome, ...detail };
}

/** A snooze: again after `seconds` without an attempt counted, unless over max_snoozes. */
function snoozeOrDlq(
  ctx: DecisionContext,
  seconds: number | null | undefined,
  detail: FailureDetailFields,
): Decision {
  const cap = ctx.policy.maxSnoozes;
  if (ctx.snoozes + 1 > cap)
    return {
      kind: "dlq",
      error: `Job snoozed more than ${cap} times`,
      outcome: "retry",
      ...detail,
    };
  const delaySeconds = typeof seconds === "number" && seconds >= 0 ? seconds : 0;
  return { kind: "snooze", delaySeconds, snoozes: ctx.snoozes + 1 };
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
 *
 * Job control (README "Job control"), all driven by `ctx.policy`: an error whose type is
 * `non_retryable` or `invalid_params` (params that break the job's contract fail the same way
 * every time), or listed in non_retryable_error_types, goes to the DLQ at once; a retry
 * outcome with `snooze: true` snoozes (capped by max_snoozes); a timeout is retried when
 * retry_timeouts is set; no retry is scheduled past the retry_for_seconds budget.
 */
export function decide(
  job: JobRecord,
  outcome: ExecutionOutcome,
  policy: RetryPolicy,
  timeoutSeconds: number,
  context?: DecisionContext,
): Decision {
  // a success needs no policy: nothing is resolved on the hot path
  if (outcome.status === "success") return { kind: "complete", result: outcome.result ?? null };
  const ctx = context ?? defaultContext(job, policy);
  const message = outcome.error?.message;
  switch (outcome.status) {
    case "retry":
      if ((outcome as { snooze?: unknown }).snooze === true)
        return snoozeOrDlq(ctx, outcome.retry_after_seconds, detailOf(outcome));
      return retryOrDlq(
        job,
        policy,
        ctx,
        message || "Job requested retry",
        "retry",
        outcome.retry_after_seconds,
        detailOf(outcome),
      );
    case "timeout": {
      const error =
        !message || DEADLINE_MESSAGES.has(message) ? timedOutMessage(timeoutSeconds) : message;
      if (ctx.policy.retryTimeouts)
        return retryOrDlq(job, policy, ctx, error, "timeout", null, detailOf(outcome));
      return { kind: "dlq", error, outcome: "timeout", ...detailOf(outcome) };
    }
    case "error": {
      const type = outcome.error?.type;
      if (type === "handler_not_found") {
        const error = message || "Handler not found";
        return { kind: "dlq", error, outcome: "fatal", ...detailOf(outcome) };
      }
      const error = message || "Job failed";
      if (type && (BUILT_IN_NON_RETRYABLE.has(type) || ctx.policy.nonRetryableErrorTypes.has(type)))
        return {
          kind: "dlq",
          error: `${error} (not retried: error type '${type}' is non-retryable)`,
          outcome: "error",
          ...detailOf(outcome),
        };
      return retryOrDlq(job, policy, ctx, error, "error", null, detailOf(outcome));
    }
  }
}

/** The orchestrator's own timeout: the DLQ as in RRQ, or a retry when retry_timeouts is set. */
export function decideTimeout(
  job: JobRecord,
  policy: RetryPolicy,
  timeoutSeconds: number,
  ctx: DecisionContext = defaultContext(job, policy),
): Decision {
  const error = timedOutMessage(timeoutSeconds);
  if (ctx.policy.retryTimeouts) return retryOrDlq(job, policy, ctx, error, "timeout");
  return { kind: "dlq", error, outcome: "timeout" };
}

/** A transport failure: like an error, with RRQ's message prefix. */
export function decideTransportError(
  job: JobRecord,
  detail: string,
  policy: RetryPolicy,
  ctx: DecisionContext = defaultContext(job, policy),
): Decision {
  return retryOrDlq(job, policy, ctx, `Runner transport error: ${detail}`, "transport_error");
}
