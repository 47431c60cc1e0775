import { EventEmitter } from "node:events";

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
  /** A job was claimed by this worker. */
  "job:claimed": { jobId: string; queue: string; functionName: string; attempt: number };
  /** An attempt was dispatched to a runner. */
  "job:dispatched": { jobId: string; requestId: string; runner: string; attempt: number };
  /** A job completed successfully. */
  "job:completed": {
    jobId: string;
    queue: string;
    runner: string;
    attempt: number;
    durationMs: number;
  };
  /** A job will be retried. */
  "job:retry": {
    jobId: string;
    queue: string;
    attempt: number;
    delaySeconds: number;
    error: string;
    outcome: string;
  };
  /** A job was moved to the dead-letter queue. */
  "job:dlq": { jobId: string; queue: string; attempt: number; error: string; outcome: string };
  /** A claimed job was given back to its queue without counting an attempt. */
  "job:released": { jobId: string; queue: string; reason: string };
  /** A terminal or retry write was skipped because another worker holds the job. */
  "job:fenced": { jobId: string; write: string };
  /** Orphaned jobs of dead workers were put back in their queues. */
  "recovery:done": { recovered: number; deadWorkers: string[] };
  /** The worker's status changed (RRQ health statuses). */
  "worker:status": { status: string };
  /** A background failure the worker survived. */
  "worker:error": { context: string; error: Error };
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
