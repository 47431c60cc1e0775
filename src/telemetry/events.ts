import { EventEmitter } from "node:events";

/** What every log line about a job carries: its id, function name, queue and attempt (1-based). */
export interface JobRef {
  jobId: string;
  functionName: string;
  queue: string;
  attempt: number;
}

/** A failure's error type and traceback (null: none), as stored in the job hash. */
export interface ErrorDetailFields {
  errorType: string | null;
  traceback: string | null;
}

/**
 * Every observable thing the orchestrator does, by scoped name. Handlers run synchronously on
 * the emitting path: keep them cheap and never throw (a throwing handler is caught and
 * reported as `worker:error`). Payloads are plain data and safe to keep.
 */
export interface OrchestratorEvents {
  /** A runner process was started (managed mode). */
  "runner:spawn": {
    runner: string;
    index: number;
    pid: number;
    transport: string;
    command: string[];
  };
  /**
   * Live jobs: output of an attempt dropped because its runner connection's output buffer was
   * full (also counted in the job's `output_dropped_bytes`).
   */
  "live:output-dropped": { jobId: string; runner: string; bytes: number };
  /** A runner became ready to take requests. `features` is from its hello, if any. */
  "runner:ready": { runner: string; index: number; pid: number | null; features: string[] | null };
  /** A runner process exited or an external runner's connection dropped. */
  "runner:exit": {
    runner: string;
    index: number;
    pid: number | null;
    code: number | null;
    signal: string | null;
    expected: boolean;
  };
  /** A runner will be started again after `delayMs`. */
  "runner:respawn": {
    runner: string;
    index: number;
    delayMs: number;
    attempt: number;
    reason: string;
  };
  /** A runner process is being replaced on purpose (e.g. it ignored a cancel). */
  "runner:recycle": { runner: string; index: number; reason: string };
  /** One line a runner wrote to stdout or stderr. */
  "runner:log": { runner: string; index: number; stream: "stdout" | "stderr"; line: string };
  /**
   * A job was claimed by this worker. `waitMs`: how long it had been due (its start time minus
   * the later of its enqueue time and its scheduled run time), when the hash tells.
   */
  "job:claimed": JobRef & { waitMs?: number };
  /** An attempt was dispatched to a runner. */
  "job:dispatched": { jobId: string; requestId: string; runner: string; attempt: number };
  /** A job completed successfully. */
  "job:completed": JobRef & { runner: string; durationMs: number };
  /** A job will be retried. */
  "job:retry": JobRef & {
    delaySeconds: number;
    error: string;
    outcome: string;
  } & Partial<ErrorDetailFields>;
  /** A job was moved to the dead-letter queue. */
  "job:dlq": JobRef & { error: string; outcome: string } & Partial<ErrorDetailFields>;
  /** A claimed job was given back to its queue without counting an attempt. */
  "job:released": JobRef & { reason: string };
  /** A terminal or retry write was skipped because another worker holds the job. */
  "job:fenced": JobRef & { write: string };
  /**
   * A job's outcome was written only after Redis came back (it waited `waitedMs` while Redis
   * was unreachable). `write` is what was written (complete, retry, dlq, release, quarantine).
   */
  "job:written-after-outage": JobRef & { write: string; result: string; waitedMs: number };
  /**
   * Shutdown gave up on writing these jobs' results (Redis unreachable): their leases expire
   * and any live worker puts them back in their queues.
   */
  "worker:unwritten": { jobs: JobRef[]; leaseSeconds: number };
  /** Orphaned jobs of dead workers were put back in their queues. */
  "recovery:done": { recovered: number; deadWorkers: string[] };
  /** The worker's status changed (RRQ health statuses). */
  "worker:status": { status: string };
  /** A background failure the worker survived. */
  "worker:error": { context: string; error: Error; job?: JobRef };
  /** Something the operator should know at start (config warnings, unserved routed queues). */
  "worker:warning": { message: string };
  /**
   * A Redis connection failed (`first`: the outage's first report; later ones are rate-limited);
   * `retryInMs` until the next attempt, down `downForMs` so far.
   */
  "redis:down": {
    first: boolean;
    reason: string;
    retryInMs: number;
    downForMs: number;
    failures: number;
  };
  /** Redis answers again after an outage of `downForMs`. */
  "redis:up": { downForMs: number };
  /** The worker is up (runners ready, subscribed) and starts claiming from `queues`. */
  "worker:started": { workerId: string; queues: readonly string[] };
  /**
   * The worker went quiet: it claims nothing more and finishes what it runs. `source`: SIGTSTP
   * ("signal") or `rrq worker quiet` ("command", seen through Redis).
   */
  "worker:quiet": { workerId: string; source: "signal" | "command" };
  /** A quiet worker claims again (`rrq worker resume`). */
  "worker:resumed": { workerId: string };
  /** The worker begins its graceful stop (`reason`: the signal, "burst drained", ...). */
  "worker:stopping": { workerId: string; reason: string };
  /** The worker wrote its health record: `active` jobs running, `quiet` or not. */
  "worker:heartbeat": { workerId: string; active: number; quiet: boolean };
  /**
   * A job was cancelled by an operator or producer. `where`: "running" (this worker was running
   * it: the runner got a cancel frame and nothing of the attempt is written).
   */
  "job:cancelled": JobRef & { where: "running" };
  /** A claimed job's `expires_at` had passed: it ended FAILED without being dispatched. */
  "job:expired": JobRef;
  /** A handler snoozed: the job runs again after `delaySeconds`, its `snoozes`-th snooze. */
  "job:snoozed": JobRef & { delaySeconds: number; snoozes: number };
  /** One lease renewal pass kept `renewed` running jobs' leases (and found `lost` taken). */
  "lease:renewed": { renewed: number; lost: number };
  /**
   * The worker's metrics started (README "Metrics"): `url` of its `/metrics` endpoint, and the
   * OTLP endpoint metrics are exported to (without any user:password part); null when off.
   */
  "metrics:started": { url: string | null; otlpEndpoint: string | null };
  /**
   * A circuit breaker changed state (README "Flow control"): "opened" by the failure of job
   * `jobId` (its jobs are held for `cooldownSeconds`, then one probe runs), or "closed" by the
   * success of `jobId` (the jobs it held go back to their queues).
   */
  "flow:breaker": {
    scope: string;
    state: "opened" | "closed";
    jobId: string;
    error?: string;
    cooldownSeconds: number;
  };
  /** A death handler job `handlerJobId` was enqueued for the dead job `jobId`. */
  "death:handled": { jobId: string; handler: string; handlerJobId: string };
}

export type EventName = keyof OrchestratorEvents;

/** A typed event bus over Node's EventEmitter. */
export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(100);
  }

  /** Subscribes; returns an unsubscribe function. */
  on<E extends EventName>(name: E, handler: (payload: OrchestratorEvents[E]) => void): () => void {
    const wrapped = (payload: OrchestratorEvents[E]) => {
      try {
        handler(payload);
      } catch (error) {
        if (name !== "worker:error")
          this.emit("worker:error", { context: `handler of ${name}`, error: error as Error });
      }
    };
    this.emitter.on(name, wrapped);
    return () => this.emitter.off(name, wrapped);
  }

  /** Emits synchronously. */
  emit<E extends EventName>(name: E, payload: OrchestratorEvents[E]): void {
    this.emitter.emit(name, payload);
  }

  /** True when anyone listens (to skip building costly payloads). */
  has(name: EventName): boolean {
    return this.emitter.listenerCount(name) > 0;
  }
}
