/**
 * The inline rules (docs/testing.md): how the fake and inline producers run one job to its end.
 * They are the orchestrator's rules, not a copy of them: each attempt's outcome goes through the
 * orchestrator's own decision table (`decide`, src/orchestrator/decisions.ts) with the job's
 * resolved retry policy (src/policy), on a job record built from the same hash fields the
 * producer writes. What differs is time: deferrals, backoff delays and snooze delays are not
 * slept but recorded, and the job's clock (for `expires_at` and `retry_for_seconds`) moves on by
 * them instead.
 */
import { randomUUID } from "node:crypto";
import type { ExecutionOutcome, ExecutionRequest } from "@rrqkit/runner";
import type { ResolvedConfig } from "../config/config.js";
import { decide, failureDetail, type Decision } from "../orchestrator/decisions.js";
import { splitRunnerName } from "../orchestrator/routing.js";
import { resolvePolicy } from "../policy/index.js";
import type { EnqueueOptions, EnqueuePlan } from "../producer/options.js";
import { jobFieldArgs } from "../producer/options.js";
import { formatTimestampMicros, parseTimestamp, toWireTimestamp } from "../store/encoding.js";
import { parseJob, type JobRecord } from "../store/job.js";

/** Statuses a recorded job goes through (RETRYING between attempts, as in Redis). */
export type RecordedStatus = "PENDING" | "ACTIVE" | "RETRYING" | "COMPLETED" | "FAILED";

/** One job a testing producer recorded, and what running it did. */
export interface RecordedJob {
  readonly id: string;
  /** The function enqueued (a debounced enqueue may replace it, as in Redis). */
  functionName: string;
  /** The params as enqueued (after producer middleware). */
  params: Record<string, unknown>;
  /** The enqueue options as given (after producer middleware). */
  options: EnqueueOptions;
  /** The queue key the job went to (`rrq:queue:<name>`). */
  queueName: string;
  status: RecordedStatus;
  /** The handler's result once COMPLETED. */
  result?: unknown;
  /** The job's last error (the orchestrator's `last_error` text) once an attempt failed. */
  lastError?: string;
  /** The error type of the last failed attempt (`non_retryable`, `timeout`, `Error`, ...). */
  errorType?: string | null;
  /** Attempts counted so far (a snooze does not count one). */
  attempts: number;
  /** How often the job snoozed. */
  snoozes: number;
  /** Seconds the first run was deferred (defer_by/defer_until/debounce); never slept. */
  deferredSeconds: number;
  /** Backoff delay before each retry, in seconds, in order; never slept. */
  retryDelays: number[];
  /** Delay of each snooze, in seconds, in order; never slept. */
  snoozeDelays: number[];
}

/** A recorded job with what running it needs (the plan holds the fields the producer writes). */
export interface JobState {
  readonly job: RecordedJob;
  plan: EnqueuePlan;
  /** The job's own clock (epoch ms): its run time, moved on by every recorded delay. */
  clockMs: number;
  /** When the first attempt started (by the job's clock), for retry_for_seconds. */
  firstStartMs?: number;
}

/** What running jobs needs: the runner, the decision settings, and an execution budget. */
export interface RunContext {
  config: ResolvedConfig;
  execute(request: ExecutionRequest): Promise<ExecutionOutcome>;
  /** Called before every execution (attempt or snooze run); throws to stop a runaway. */
  countExecution(): void;
}

const FIELD_NAMES = [
  "id",
  "function_name",
  "job_params",
  "enqueue_time",
  "status",
  "current_retries",
  "next_scheduled_run_time",
  "max_retries",
  "job_timeout_seconds",
  "result_ttl_seconds",
  "queue_name",
  "result",
  "trace_context",
  "correlation_context",
] as const;

/** A new job's state from its plan (PENDING, nothing run yet). */
export function newJobState(
  plan: EnqueuePlan,
  params: Record<string, unknown>,
  options: EnqueueOptions,
): JobState {
  const deferredSeconds = Math.max(0, plan.runAtUs - plan.enqueueTimeUs) / 1_000_000;
  const job: RecordedJob = {
    id: plan.jobId,
    functionName: plan.functionName,
    params,
    options,
    queueName: plan.queue,
    status: "PENDING",
    attempts: 0,
    snoozes: 0,
    deferredSeconds,
    retryDelays: [],
    snoozeDelays: [],
  };
  return { job, plan, clockMs: plan.runAtUs / 1000 };
}

/** The job hash the producer would have written, with the counters running it changed. */
function jobRecord(state: JobState): JobRecord {
  const values = jobFieldArgs(state.plan);
  const hash: Record<string, string> = {};
  FIELD_NAMES.forEach((name, i) => (hash[name] = values[i]!));
  Object.assign(hash, state.plan.extraFields);
  hash.current_retries = String(Math.max(0, state.job.attempts - 1));
  hash.snoozes = String(state.job.snoozes);
  if (state.firstStartMs !== undefined)
    hash.run_1_started_at = formatTimestampMicros(state.firstStartMs * 1000);
  return parseJob(state.job.id, hash);
}

/** The request of one attempt, built as the orchestrator builds it (job-execution.ts). */
function buildRequest(job: JobRecord, deadlineMs: number): ExecutionRequest {
  return {
    protocol_version: "2",
    request_id: randomUUID(),
    job_id: job.id,
    function_name: splitRunnerName(job.functionName).handler,
    params: job.params,
    context: {
      job_id: job.id,
      attempt: job.currentRetries + 1,
      enqueue_time: toWireTimestamp(job.enqueueTime),
      queue_name: job.queueName ?? "",
      deadline: new Date(deadlineMs).toISOString(),
      trace_context: job.traceContext ?? null,
      correlation_context: job.correlationContext ?? null,
      worker_id: "rrqkit-testing",
    },
  };
}

/** The message an expired job ends with (job-execution.ts), or undefined when it may run. */
function expiry(state: JobState): string | undefined {
  const expiresAt = state.plan.extraFields?.expires_at;
  if (expiresAt === undefined) return undefined;
  const ms = parseTimestamp(expiresAt);
  if (ms === undefined || ms > state.clockMs) return undefined;
  return `Job expired before it started (expires_at ${expiresAt})`;
}

/** Records `decision` on the job; true when the job is final. */
function apply(state: JobState, decision: Decision): boolean {
  const { job } = state;
  switch (decision.kind) {
    case "complete":
      job.status = "COMPLETED";
      job.result = decision.result;
      return true;
    case "snooze":
      job.snoozes = decision.snoozes;
      job.snoozeDelays.push(decision.delaySeconds);
      state.clockMs += decision.delaySeconds * 1000;
      job.status = "PENDING";
      return false;
    case "retry":
      job.lastError = decision.error;
      job.errorType = failureDetail(decision).type;
      job.retryDelays.push(decision.delaySeconds);
      state.clockMs += decision.delaySeconds * 1000;
      job.status = "RETRYING";
      return false;
    case "dlq":
      job.status = "FAILED";
      job.lastError = decision.error;
      job.errorType = failureDetail(decision).type;
      return true;
  }
}

/**
 * Runs one execution of the job (an attempt, or a run after a snooze) and records its decision;
 * true when the job is final. A job past its `expires_at` ends FAILED without an attempt.
 */
export async function runOnce(state: JobState, ctx: RunContext): Promise<boolean> {
  const expired = expiry(state);
  if (expired !== undefined) {
    state.job.status = "FAILED";
    state.job.lastError = expired;
    return true;
  }
  ctx.countExecution();
  // a snooze reruns the same attempt; anything else starts the next one
  if (state.job.status !== "PENDING" || state.job.attempts === 0) state.job.attempts += 1;
  state.firstStartMs ??= state.clockMs;
  state.job.status = "ACTIVE";
  const record = jobRecord(state);
  const timeout = record.jobTimeoutSeconds ?? ctx.config.defaultJobTimeoutSeconds;
  const outcome = await ctx.execute(buildRequest(record, Date.now() + timeout * 1000));
  if (outcome.status === "success") return apply(state, decide(record, outcome, ctx.config, 0));
  const policy = resolvePolicy(ctx.config, record.functionName, record.raw.retry_policy);
  const context = { policy, nowMs: state.clockMs, snoozes: state.job.snoozes };
  return apply(state, decide(record, outcome, ctx.config, timeout, context));
}

/** Runs the job until it is COMPLETED or FAILED. */
export async function runToEnd(state: JobState, ctx: RunContext): Promise<void> {
  while (!(await runOnce(state, ctx))) {
    // the next execution follows at once: the delay was recorded, not slept
  }
}
