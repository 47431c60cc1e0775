import type { Redis } from "ioredis";
import { localClock, type Clock } from "../clock/redis-clock.js";
import type { ScriptCaller } from "./scripts.js";

/** How a job's attempt ended, for {@link FlowStore.release}. */
export type FlowReleaseMode = "requeued" | "terminal" | "dead";
/** What a session does when a job of it dies: skip to the next job, or block the session. */
export type SessionOnDead = "skip" | "block";
/** A circuit breaker's state. */
export type BreakerStateName = "closed" | "open" | "half_open";

/** One circuit breaker (`rrq:breaker:<scope>`), as read by {@link FlowStore.breakers}. */
export interface BreakerState {
  /** `function:<name>` or `runner:<name>`. */
  scope: string;
  state: BreakerStateName;
  /** Consecutive failures counted. */
  failures: number;
  /** When it last opened, epoch ms. */
  openedAt?: number;
  /** When an open breaker lets a probe through, epoch ms. */
  retryAt?: number;
  /** The probe job of a half-open breaker. */
  probe?: string;
  /** How many times it opened. */
  trips: number;
  lastError?: string;
  /** Jobs it holds (ZCARD of its bwait set). */
  held: number;
}

/** The failure threshold and cool-down of one breaker scope. */
export interface BreakerSpec {
  failures: number;
  cooldownMs: number;
}

/** The flow-control Redis operations besides the claim (src/store/lua/flow-*.lua). */
export class FlowStore {
  constructor(
    readonly redis: Redis,
    readonly scripts: ScriptCaller,
    readonly clock: Clock = localClock,
  ) {}

  /** Frees a job's cap slot and advances its session; returns the number of jobs unparked. */
  release(_jobId: string, _mode: FlowReleaseMode, _sessionOnDead: SessionOnDead): Promise<number> {
    return Promise.reject(new Error("not implemented"));
  }

  /** One sweeper step over rrq:fc:waiting; cursor "0" starts and ends a pass. */
  sweep(
    _cursor: string,
    _count: number,
    _sessionOnDead: SessionOnDead,
  ): Promise<{ cursor: string; unparked: number }> {
    return Promise.reject(new Error("not implemented"));
  }

  /** Records an attempt's outcome on a breaker; "opened"/"closed" when it changed state. */
  recordBreaker(
    _scope: string,
    _outcome: "success" | "failure",
    _jobId: string,
    _spec: BreakerSpec,
    _error?: string,
  ): Promise<"opened" | "closed" | ""> {
    return Promise.reject(new Error("not implemented"));
  }

  /** Pauses a queue: claims return nothing from it until {@link resume}. */
  pause(_queue: string, _reason?: string): Promise<void> {
    return Promise.reject(new Error("not implemented"));
  }

  /** Resumes a paused queue and wakes its workers. */
  resume(_queue: string): Promise<void> {
    return Promise.reject(new Error("not implemented"));
  }

  /** Paused queues by bare name. */
  pausedQueues(): Promise<Map<string, { since: number; reason?: string }>> {
    return Promise.reject(new Error("not implemented"));
  }

  /** Every breaker. */
  breakers(): Promise<BreakerState[]> {
    return Promise.reject(new Error("not implemented"));
  }

  /** Parked jobs per queue key (approximate). */
  parkedCounts(): Promise<Map<string, number>> {
    return Promise.reject(new Error("not implemented"));
  }

  /** Why a PENDING job is not running, for `job show`; undefined when nothing holds it. */
  waitReason(_hash: Record<string, string>): Promise<string | undefined> {
    return Promise.reject(new Error("not implemented"));
  }
}
