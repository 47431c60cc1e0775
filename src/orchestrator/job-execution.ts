import { randomUUID } from "node:crypto";
import { Deadline, Deadlines } from "@rrqkit/runner/protocol";
import type { ExecutionOutcome, ExecutionRequest } from "@rrqkit/runner/protocol";
import type { ResolvedConfig } from "../config/config.js";
import { RunnerError } from "../errors.js";
import { breakerOutcome, type BreakerOutcome, type FlowHooks } from "../flow/index.js";
import { LiveAttempt, type LiveContext } from "../live/attempt.js";
import { parseRequires } from "../live/tags.js";
import type { OutputCloseStatus } from "../store/live-store.js";
import type { FlowReleaseMode } from "../store/flow-store.js";
import type { OutcomeWaiter, RequestListener } from "../runner/runner-connection.js";
import type { RunnerPool, SlotLease } from "../runner/runner-pool.js";
import { resolvePolicy } from "../policy/index.js";
import { canonicalJson, parseTimestamp, toWireTimestamp } from "../store/encoding.js";
import { MalformedJobError, parseJob, type JobRecord } from "../store/job.js";
import type { AttemptRef, ClaimedJob, FencedWrite, JobStore } from "../store/job-store.js";
import { dlqKey } from "../store/keys.js";
import type { EventBus, JobRef } from "../telemetry/events.js";
import type { JobSpan, JobTelemetry } from "../telemetry/otel.js";
import {
  decide,
  decideTimeout,
  decideTransportError,
  failureDetail,
  type Decision,
  type DecisionContext,
} from "./decisions.js";
import { resolveRunnerName, splitRunnerName } from "./routing.js";

/** What every attempt needs from the worker. */
export interface ExecutionContext {
  config: ResolvedConfig;
  store: JobStore;
  pools: ReadonlyMap<string, RunnerPool>;
  events: EventBus;
  workerId: string;
  /** rrq.job spans (no-op unless OpenTelemetry export is configured). */
  telemetry: JobTelemetry;
  /** Flow control after each attempt (slot release, breaker record); undefined in tests. */
  flow?: FlowHooks;
  /** Live jobs (progress, output); undefined in tests that do not need them. */
  live?: LiveContext;
  /**
   * Retries a Redis write until it succeeds (or the worker gives up at shutdown); `execution`
   * names the job, so an outcome written after a Redis outage can be logged.
   */
  persist<T>(what: string, write: () => Promise<T>, execution?: JobExecution): Promise<T>;
  /**
   * Called once per execution when its runner part is over (outcome, timeout, transport
   * error, or no dispatch at all), before its result is written.
   */
  attemptEnded(execution: JobExecution): void;
  /** Called once per execution when it is over (its result written or given up). */
  finished?(execution: JobExecution): void;
  /** Called when an execution failed unexpectedly (a bug: its job's lease then expires). */
  failed?(execution: JobExecution, error: unknown): void;
}

/** Messages written to last_error by the worker itself (RRQ's wording). */
export const ReleaseReasons = {
  shutdown: "Job execution interrupted by worker shutdown. Re-queued.",
  unavailable: (runner: string) => `Runner '${runner}' has no process available. Re-queued.`,
} as const;

const MALFORMED = "Failed to parse claimed job definition. Moved to DLQ.";
/** The span's error message of a snoozed attempt (the outcome's own message, as runtimes send it). */
const SNOOZED = "Job snoozed";

/**
 * The latest deadline sent: RFC 3339 has 4-digit years (runners parse no later), and past
 * 8.64e15 ms toISOString() throws.
 */
const MAX_DATE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** setTimeout fires at once for longer delays (TimeoutOverflowWarning), so timers re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Settles with `work`'s value, or with "expired" at `untilMs` (epoch ms, however far away),
 * whichever comes first; the timer is cleared when `work` wins. Used for a cancel's grace
 * period (rare: the attempt's own deadline is an {@link AttemptWait}).
 */
function settleBy<T>(work: Promise<T>, untilMs: number): Promise<T | "expired"> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      const left = Math.max(0, untilMs - Date.now());
      timer = setTimeout(
        () => (left > MAX_TIMER_MS ? arm() : resolve("expired")),
        Math.min(left, MAX_TIMER_MS),
      );
    };
    arm();
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * Request ids: UUIDs (version 4 in form, as RRQ sends) that share one random prefix per
 * process and end in a counter. Unique like random ones (74 random bits per process, 2^48
 * requests each), at a fraction of the cost: randomUUID's formatting left about 0.5 KB of
 * garbage per job.
 */
const REQUEST_ID_PREFIX = randomUUID().slice(0, 24);
let requestCounter = 0;

function nextRequestId(): string {
  requestCounter = (requestCounter + 1) % 2 ** 48;
  return REQUEST_ID_PREFIX + requestCounter.toString(16).padStart(12, "0");
}

type AttemptResult =
  | { kind: "outcome"; outcome: ExecutionOutcome }
  | { kind: "transport"; detail: string }
  | { kind: "timeout" }
  | { kind: "unavailable" };

const asTransportError = (error: unknown): AttemptResult => ({
  kind: "transport",
  detail: error instanceof RunnerError ? error.message : String(error),
});

/** Every attempt's deadline, one timer per distinct duration (not one per job). */
const attemptDeadlines = new Deadlines();

/**
 * The wait for one request's outcome: the connection's waiter for it and its deadline entry at
 * once, so a dispatch allocates this object and one promise (a promise per step, closures and
 * a timer per job before). `first` settles with the runner's answer, "expired" at the
 * deadline or "stopped" ({@link stop}), whichever comes first; {@link answer} is the runner's
 * answer whenever it comes (waited for, a grace period long, after an expiry or a stop).
 */
class AttemptWait extends Deadline implements OutcomeWaiter {
  readonly first: Promise<AttemptResult | "expired" | "stopped">;
  private settleFirst!: (value: AttemptResult | "expired" | "stopped") => void;
  private waiting = true;
  private answered: AttemptResult | undefined;
  private onAnswer: ((result: AttemptResult) => void) | undefined;

  constructor(
    readonly jobId: string,
    readonly live: RequestListener | undefined,
  ) {
    super();
    this.first = new Promise((resolve) => (this.settleFirst = resolve));
  }

  resolve(outcome: ExecutionOutcome): void {
    this.record({ kind: "outcome", outcome });
  }

  reject(error: RunnerError): void {
    this.record(asTransportError(error));
  }

  expired(): void {
    this.end("expired");
  }

  /** Stops waiting at once (an operator's cancel, a lost lease). */
  stop(): void {
    this.end("stopped");
  }

  /** The runner's answer (outcome or transport error), whenever it comes. */
  answer(): Promise<AttemptResult> {
    if (this.answered) return Promise.resolve(this.answered);
    return new Promise((resolve) => (this.onAnswer = resolve));
  }

  private record(result: AttemptResult): void {
    if (this.answered) return;
    this.answered = result;
    this.onAnswer?.(result);
    this.end(result);
  }

  private end(value: AttemptResult | "expired" | "stopped"): void {
    if (!this.waiting) return;
    this.waiting = false;
    attemptDeadlines.disarm(this);
    this.settleFirst(value);
  }
}

/**
 * One attempt of one claimed job, from its hash to its persisted result. `interrupted` is set
 * by the worker at shutdown: the attempt then gives the job back instead of recording a result.
 */
export class JobExecution {
  interrupted = false;
  /** Set when lease renewal finds the job held by another attempt: nothing of ours is written. */
  lost = false;
  /** Set with `lost` when the loss is an operator's cancel (the job is CANCELLED: terminal). */
  private cancelled = false;
  /** Local time the claim's reply arrived (the lease keeper's bound on when the lease ends). */
  readonly claimedAtMs = Date.now();
  /** Set when the attempt's terminal (or release) write has started. */
  private writing = false;
  private permit: SlotLease | undefined;
  private requestId: string | undefined;
  private attemptOpen = true;
  /** The attempt's progress and output, when its runner offered them. */
  private live: LiveAttempt | undefined;
  /** The promise of {@link run}, set by whoever started it (the worker waits on it at shutdown). */
  done: Promise<void> | undefined;
  /** The wait for the runner's outcome (set while the attempt waits for it). */
  private wait: AttemptWait | undefined;

  constructor(
    private readonly ctx: ExecutionContext,
    readonly claimed: ClaimedJob,
    readonly queue: string,
  ) {}

  /** The job id. */
  get jobId(): string {
    return this.claimed.id;
  }

  /** Job id, function name, queue and attempt: what every log line about this job carries. */
  get jobRef(): JobRef {
    const hash = this.claimed.hash;
    return {
      jobId: this.jobId,
      functionName: hash.function_name ?? "",
      queue: this.queue,
      attempt: (Number(hash.current_retries) || 0) + 1,
    };
  }

  /** The fence this attempt's claim received (every write of ours must present it). */
  get fence(): string {
    return this.claimed.hash.lease_fence ?? "";
  }

  private get ref(): AttemptRef {
    return { jobId: this.jobId, workerId: this.ctx.workerId, fence: this.fence };
  }

  /** Asks the runner to cancel this attempt (shutdown with cancel hints on, or a lost lease). */
  cancel(): void {
    if (this.permit && this.requestId) this.permit.connection.cancel(this.jobId, this.requestId);
  }

  /** Lease renewal found the job held elsewhere: stop the runner's work and write nothing. */
  leaseLost(): void {
    // Once the outcome is being written, that write is fenced on its own (a lost job shows up
    // as a not_owner write); a renewal racing with it (a batched success already stored) is
    // not a lost lease.
    if (this.lost || this.writing) return;
    this.lost = true;
    this.stopRunner();
    this.ctx.events.emit("job:fenced", { ...this.jobRef, write: "lease lost while running" });
  }

  /**
   * An operator or producer cancelled the job while it runs (job-cancel-2.lua, heard on
   * `rrq:cancel:<worker_id>`): the script already wrote CANCELLED and revoked this attempt's
   * fence, so nothing of ours is written; the runner gets a cancel frame and, if it has not
   * answered within runner_cancel_grace_seconds, its process is recycled. False when the
   * attempt is already lost or writing its result (that write is fenced off on its own).
   */
  cancelledByOperator(): boolean {
    if (this.lost || this.writing) return false;
    this.lost = true;
    this.cancelled = true;
    this.ctx.events.emit("job:cancelled", { ...this.jobRef, where: "running" });
    this.stopRunner();
    return true;
  }

  /**
   * Stops the runner's work on a lost attempt: an attempt waiting for its outcome stops waiting
   * and sends the cancel with the grace-then-recycle of {@link stopOverdue}; at any other point
   * the cancel frame alone (not dispatched yet: `attempt` dispatches nothing to a lost attempt).
   */
  private stopRunner(): void {
    const wait = this.wait;
    this.wait = undefined;
    if (wait) wait.stop();
    else this.cancel();
  }

  /**
   * The lease ran out while Redis could not be reached: stop the runner's work and write
   * nothing (the job is re-queued when its lease is recovered, and may already run elsewhere).
   * False once the result is being written (that write is fenced on its own).
   */
  abandon(): boolean {
    if (this.lost || this.writing) return false;
    this.lost = true;
    this.cancel();
    return true;
  }

  /**
   * Runs the attempt to completion, then reports it to {@link ExecutionContext.finished}.
   * Never rejects. The whole attempt is this one async frame on the common path (no live
   * output, no flow control, a free runner permit): each nested async call was one more promise
   * and suspended frame per job, a good part of the daemon's garbage (bench/alloc-per-job.ts).
   */
  async run(): Promise<void> {
    try {
      let job: JobRecord;
      try {
        job = parseJob(this.claimed.id, this.claimed.hash);
      } catch (error) {
        if (!(error instanceof MalformedJobError)) throw error;
        await this.quarantine(error.message);
        return;
      }
      const expiresAt = this.expiredAt(job);
      if (expiresAt !== undefined) {
        await this.expire(expiresAt);
        return;
      }
      const split = splitRunnerName(job.functionName);
      const runnerName = resolveRunnerName(this.ctx.config, split, this.queue);
      const span = this.ctx.telemetry.startJob({
        job,
        queue: this.queue,
        runner: runnerName,
        workerId: this.ctx.workerId,
      });
      const started = performance.now();
      const fatal = this.preflight(job);
      if (fatal) {
        await this.apply(job, { kind: "dlq", error: fatal, outcome: "fatal" }, true, {
          span,
          started,
          runner: runnerName,
        });
        return;
      }
      const timeout = job.jobTimeoutSeconds ?? this.ctx.config.defaultJobTimeoutSeconds;
      const result = await this.attempt(
        job,
        split.handler,
        this.ctx.pools.get(runnerName)!,
        timeout,
      );
      this.endAttempt();
      // the last progress is stored before the outcome (bounded: outcomes come first)
      const flushing = this.live?.beforeOutcome();
      if (flushing) await flushing;
      if (this.lost) {
        span?.end({ outcome: "lease_lost", durationMs: performance.now() - started });
        // cancelled: the job is over and its slot is ours to free; a lost lease's slot is not
        if (this.cancelled) await this.flowEnded("terminal");
        if (this.live?.hasOutput) await this.closeOutput(this.cancelled ? "cancelled" : "lost");
        return;
      }
      if (this.interrupted || result.kind === "unavailable") {
        const reason = this.interrupted
          ? ReleaseReasons.shutdown
          : ReleaseReasons.unavailable(runnerName);
        span?.end({
          outcome: "requeued",
          durationMs: performance.now() - started,
          errorMessage: reason,
        });
        await this.release(reason);
        if (this.live?.hasOutput) await this.closeOutput("lost");
        return;
      }
      const config = this.ctx.config;
      const succeeded = result.kind === "outcome" && result.outcome.status === "success";
      const context = succeeded ? undefined : this.decisionContext(job);
      const decision =
        result.kind === "outcome"
          ? decide(job, result.outcome, config, timeout, context)
          : result.kind === "transport"
            ? decideTransportError(job, result.detail, config, context)
            : decideTimeout(job, config, timeout, context);
      const errorType = result.kind === "outcome" ? (result.outcome.error?.type ?? null) : null;
      await this.apply(job, decision, decision.kind === "dlq", {
        span,
        started,
        runner: runnerName,
        errorType,
        breaker: this.ctx.flow && breakerOutcome(result, decision.kind),
      });
      // the closed marker ends an output stream: none without output
      if (!this.live?.hasOutput) return;
      await this.closeOutput(
        decision.kind === "complete"
          ? "completed"
          : result.kind === "timeout"
            ? "timeout"
            : decision.kind === "dlq"
              ? "failed"
              : "retry",
      );
    } catch (error) {
      this.ctx.failed?.(this, error);
    } finally {
      this.endAttempt();
      this.ctx.finished?.(this);
    }
  }

  /** Reports the end of the runner part once (see {@link ExecutionContext.attemptEnded}). */
  private endAttempt(): void {
    if (!this.attemptOpen) return;
    this.attemptOpen = false;
    this.ctx.attemptEnded(this);
  }

  /** Ends the attempt's output stream with its closed marker; never throws. */
  private async closeOutput(status: OutputCloseStatus): Promise<void> {
    const live = this.live;
    this.live = undefined;
    if (!live) return;
    try {
      await live.afterOutcome(status);
    } catch (error) {
      this.ctx.live?.onError(error);
    }
  }

  /**
   * The job's policy (its retry_policy field, parsed only when present, over its function's
   * policy over the global defaults: see src/policy), the store's clock and its snoozes. A
   * damaged retry_policy is reported as a warning and its bad fields fall back.
   */
  private decisionContext(job: JobRecord): DecisionContext {
    const { config, events } = this.ctx;
    const policy = resolvePolicy(config, job.functionName, job.raw.retry_policy, (problem) =>
      events.emit("worker:warning", { message: `job ${job.id}: ${problem}` }),
    );
    const snoozes = job.raw.snoozes === undefined ? 0 : Number(job.raw.snoozes) || 0;
    return { policy, nowMs: this.ctx.store.clock.now(), snoozes };
  }

  /**
   * The job's `expires_at` when it has passed by the store's (Redis) clock, else undefined. An
   * unreadable expires_at is ignored (the job runs), as an unknown field would be.
   */
  private expiredAt(job: JobRecord): string | undefined {
    const text = job.raw.expires_at;
    if (!text) return undefined;
    const at = parseTimestamp(text);
    return at !== undefined && at <= this.ctx.store.clock.now() ? text : undefined;
  }

  /** Ends an expired job without dispatching it: FAILED, no DLQ, no attempt counted. */
  private async expire(expiresAt: string): Promise<void> {
    this.writing = true;
    const { store, events } = this.ctx;
    const error = `Job expired before it started (expires_at ${expiresAt})`;
    const write = await this.ctx.persist("expire", () => store.expire(this.ref, error), this);
    if (write === "written") {
      events.emit("job:expired", this.jobRef);
      await this.flowEnded("dead");
    } else if (write === "not_owner")
      events.emit("job:fenced", { ...this.jobRef, write: "expire" });
  }

  /** RRQ's fatal checks before dispatch; returns the DLQ message, if any. */
  private preflight(job: JobRecord): string | undefined {
    const timeout = job.jobTimeoutSeconds ?? this.ctx.config.defaultJobTimeoutSeconds;
    if (timeout <= 0) return `Invalid job timeout: ${timeout}. Must be positive.`;
    const split = splitRunnerName(job.functionName);
    if (split.handler === "") return "Handler name is missing";
    const runner = resolveRunnerName(this.ctx.config, split, this.queue);
    if (!this.ctx.pools.has(runner)) return `No runner configured for '${runner}'.`;
    return undefined;
  }

  private buildRequest(job: JobRecord, handler: string, deadlineMs: number): ExecutionRequest {
    this.requestId = nextRequestId();
    return {
      protocol_version: "2",
      request_id: this.requestId,
      job_id: job.id,
      function_name: handler,
      params: job.params,
      context: {
        job_id: job.id,
        attempt: job.currentRetries + 1,
        enqueue_time: toWireTimestamp(job.enqueueTime),
        queue_name: this.queue,
        deadline: new Date(deadlineMs).toISOString(),
        trace_context: job.traceContext ?? null,
        correlation_context: job.correlationContext ?? null,
        worker_id: this.ctx.workerId,
      },
    };
  }

  /**
   * Dispatches to the runner and waits for the outcome, the job timeout (which, as in RRQ,
   * also covers the wait for a runner permit) or the runner's response timeout.
   */
  private async attempt(
    job: JobRecord,
    handler: string,
    pool: RunnerPool,
    timeout: number,
  ): Promise<AttemptResult> {
    // job_timeout_seconds comes from the hash and may be huge (1e14 s).
    const deadlineMs = Math.min(Date.now() + timeout * 1000, MAX_DATE_MS);
    const waitUntil = Math.min(deadlineMs, Date.now() + this.ctx.config.runnerConnectTimeoutMs);
    const requires = parseRequires(job.raw.requires);
    const wanted = requires.length > 0 ? requires : undefined;
    const lease = pool.tryAcquire(wanted) ?? (await pool.acquire(waitUntil, wanted));
    if (!lease) {
      // A runner with no live process gets the job back without an attempt counted; a live but
      // saturated one lets the job time out, as in RRQ (the timeout covers the permit wait).
      const busyPastDeadline = pool.readyCapacity > 0 && Date.now() >= deadlineMs;
      return this.interrupted || !busyPastDeadline ? { kind: "unavailable" } : { kind: "timeout" };
    }
    this.permit = lease;
    // given up while waiting for a runner: dispatch nothing
    if (this.lost) {
      lease.release();
      return { kind: "unavailable" };
    }
    try {
      const request = this.buildRequest(job, handler, deadlineMs);
      // live frames only for runners whose hello offered them (RRQ runners get plain v2);
      // captured process output ([rrq.runner_capture]) needs no hello and adds nothing to it
      if (this.ctx.live && (lease.features.size > 0 || lease.connection.captures)) {
        const live = new LiveAttempt(
          this.ctx.live,
          {
            jobId: job.id,
            fence: this.fence,
            run: Number(this.claimed.hash.runs) || 1,
            resultTtlSeconds: job.resultTtlSeconds ?? this.ctx.config.defaultResultTtlSeconds,
            runner: pool.name,
          },
          lease.features,
          lease.connection,
        );
        // (Object.assign: the field is typed by the wire types only once they list it)
        if (live.request) Object.assign(request, { live: live.request });
        if (live.active) this.live = live;
      }
      if (this.ctx.events.has("job:dispatched"))
        this.ctx.events.emit("job:dispatched", {
          jobId: job.id,
          requestId: request.request_id,
          runner: pool.name,
          attempt: request.context.attempt,
        });
      const responseTimeout = pool.config.responseTimeoutSeconds;
      const limitMs = Math.min(
        deadlineMs - Date.now(),
        responseTimeout === undefined ? Infinity : responseTimeout * 1000,
      );
      const wait = new AttemptWait(job.id, this.live?.listener);
      this.wait = wait;
      attemptDeadlines.arm(wait, limitMs);
      // canonical: buildRequest writes every field requestFrame would, in its order (and the
      // live field is LiveAttempt's, complete), so the request goes out without a copy
      lease.connection.dispatch(request, wait, true);
      const first = await wait.first;
      this.wait = undefined;
      if (first === "stopped") {
        // cancelled or lease lost: the attempt writes nothing; free the runner's slot
        await this.stopOverdue(pool, lease, request.request_id, wait.answer());
        return { kind: "unavailable" };
      }
      if (first !== "expired") return first;
      await this.stopOverdue(pool, lease, request.request_id, wait.answer());
      const byDeadline = Date.now() >= deadlineMs - 5 || responseTimeout === undefined;
      return byDeadline
        ? { kind: "timeout" }
        : { kind: "transport", detail: "runner response timeout" };
    } finally {
      lease.release();
    }
  }

  /**
   * The attempt ran out of time, or was cancelled or lost its lease: ask the runner to cancel it
   * and wait a grace period for its answer; a runner that does not answer is wedged and its
   * process is recycled (the pool starts a new one). Either way the late result is discarded.
   */
  private async stopOverdue(
    pool: RunnerPool,
    lease: SlotLease,
    requestId: string,
    execution: Promise<AttemptResult>,
  ): Promise<void> {
    lease.connection.cancel(this.jobId, requestId);
    const graceMs = this.ctx.config.runnerCancelGraceSeconds * 1000;
    if ((await settleBy(execution, Date.now() + graceMs)) === "expired") {
      lease.connection.abandon(requestId);
      pool.recycle(lease.index, `request ${requestId} ignored a cancel for ${graceMs} ms`);
    }
  }

  private async apply(
    job: JobRecord,
    decision: Decision,
    countAttempt: boolean,
    trace: {
      span: JobSpan | undefined;
      started: number;
      runner: string;
      errorType?: string | null;
      /** How the attempt counts on the job's circuit breakers. */
      breaker?: BreakerOutcome;
    },
  ): Promise<void> {
    this.writing = true;
    const { store, events, config } = this.ctx;
    const attempt = job.currentRetries + 1;
    const durationMs = performance.now() - trace.started;
    const runner = trace.runner;
    const failed = decision.kind === "retry" || decision.kind === "dlq" ? decision : undefined;
    const detail = failed && failureDetail(failed);
    // A snooze ends its span as a "retry" (RRQ's outcome labels have no snooze) with its delay.
    trace.span?.end({
      outcome:
        decision.kind === "complete"
          ? "success"
          : decision.kind === "snooze"
            ? "retry"
            : decision.outcome,
      durationMs,
      retryDelayMs:
        decision.kind !== "complete" && decision.kind !== "dlq"
          ? decision.delaySeconds * 1000
          : undefined,
      errorMessage: failed ? failed.error : decision.kind === "snooze" ? SNOOZED : undefined,
      errorType: detail?.type ?? trace.errorType,
      traceback: detail?.traceback,
    });
    let write: FencedWrite;
    if (decision.kind === "complete") {
      const resultJson = canonicalJsonOrNull(decision.result);
      write = await this.ctx.persist(
        "complete",
        () => store.completeSuccess(this.ref, resultJson, config.defaultResultTtlSeconds),
        this,
      );
      if (write === "written" && events.has("job:completed"))
        events.emit("job:completed", { ...this.jobRef, runner, attempt, durationMs });
    } else if (decision.kind === "retry") {
      const queue = job.queueName ?? config.defaultQueueName;
      const score = store.clock.now() + decision.delaySeconds * 1000;
      write = await this.ctx.persist(
        "retry",
        () => store.retry(this.ref, queue, score, decision.error, detail),
        this,
      );
      if (write === "written")
        events.emit("job:retry", {
          ...this.jobRef,
          attempt,
          delaySeconds: decision.delaySeconds,
          error: decision.error,
          errorType: detail?.type ?? null,
          traceback: detail?.traceback ?? null,
          outcome: decision.outcome,
        });
    } else if (decision.kind === "snooze") {
      const queue = job.queueName ?? config.defaultQueueName;
      const score = store.clock.now() + decision.delaySeconds * 1000;
      write = await this.ctx.persist("snooze", () => store.snooze(this.ref, queue, score), this);
      if (write === "written" && events.has("job:snoozed"))
        events.emit("job:snoozed", {
          ...this.jobRef,
          delaySeconds: decision.delaySeconds,
          snoozes: decision.snoozes,
        });
    } else {
      const dlq = dlqKey(job.dlqName ?? config.defaultDlqName);
      write = await this.ctx.persist(
        "dlq",
        () =>
          store.moveToDlq(this.ref, dlq, decision.error, countAttempt, detail, config.dlqMaxJobs),
        this,
      );
      if (write === "written")
        events.emit("job:dlq", {
          ...this.jobRef,
          attempt,
          error: decision.error,
          errorType: detail?.type ?? null,
          traceback: detail?.traceback ?? null,
          outcome: decision.outcome,
        });
    }
    if (write === "not_owner") events.emit("job:fenced", { ...this.jobRef, write: decision.kind });
    else if (write === "written") {
      const flowing = this.flowEnded(FLOW_MODES[decision.kind], trace.breaker, failed?.error);
      if (flowing) await flowing;
    }
  }

  /**
   * Flow control once the attempt's outcome is written (README "Flow control"): breaker record
   * and slot / session release, for jobs that hold any (a synchronous check for the rest).
   */
  private flowEnded(
    mode: FlowReleaseMode,
    breaker?: BreakerOutcome,
    error?: string,
  ): Promise<void> | undefined {
    const flow = this.ctx.flow;
    // undefined, not a resolved promise, when there is nothing to do: awaiting it is free
    if (!flow?.concerns(this.claimed.hash, breaker, this.queue)) return undefined;
    return flow.attemptEnded({ ref: this.jobRef, hash: this.claimed.hash }, mode, breaker, error);
  }

  private async quarantine(reason: string): Promise<void> {
    this.writing = true;
    const { store, events, config } = this.ctx;
    const error = `${MALFORMED} (${reason})`;
    const dlq = dlqKey(this.claimed.hash.dlq_name || config.defaultDlqName);
    const write = await this.ctx.persist(
      "quarantine",
      () => store.moveToDlq(this.ref, dlq, error, false, undefined, config.dlqMaxJobs),
      this,
    );
    if (write === "written") {
      events.emit("job:dlq", {
        ...this.jobRef,
        attempt: 0,
        error,
        outcome: "fatal",
      });
      await this.flowEnded("dead");
    }
  }

  /** Gives the job back to its queue without counting an attempt. */
  async release(reason: string): Promise<void> {
    this.writing = true;
    const queue = this.claimed.hash.queue_name || this.queue;
    const write = await this.ctx.persist(
      "release",
      () => this.ctx.store.release(this.ref, queue, reason),
      this,
    );
    if (write === "written") {
      this.ctx.events.emit("job:released", { ...this.jobRef, reason });
      await this.flowEnded("requeued");
    }
  }
}

/** How each decision's write leaves the job, for its flow release. */
const FLOW_MODES: Record<Decision["kind"], FlowReleaseMode> = {
  complete: "terminal",
  retry: "requeued",
  snooze: "requeued",
  dlq: "dead",
};

/** The canonical JSON of a result; a result JSON cannot hold is stored as null. */
function canonicalJsonOrNull(value: unknown): string {
  try {
    return canonicalJson(value ?? null, "result");
  } catch {
    return "null";
  }
}
