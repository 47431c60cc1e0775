import type { ExecutionOutcome } from "@rrqkit/runner/protocol";
import type { ResolvedConfig } from "../config/config.js";
import type { FlowReleaseMode, FlowStore } from "../store/flow-store.js";
import type { EventBus, JobRef } from "../telemetry/events.js";
import { BreakerScopes } from "./flow-config.js";

/** How an attempt counts on its circuit breakers; undefined: it does not count. */
export type BreakerOutcome = "success" | "failure" | undefined;

/** Retries a Redis write until it succeeds or the worker gives up (shutdown): the worker's persist. */
export type Persist = <T>(what: string, write: () => Promise<T>) => Promise<T>;

/** Longest error summary sent to a breaker (its `last_error`). */
const ERROR_SUMMARY_CHARS = 200;

/**
 * True when a claimed job's hash makes it hold something of flow control: a concurrency slot
 * (`fc_key`), a place in a session (`ordering_key`) or a breaker's count (`fc_scope`). Only
 * such jobs are released after their attempt: a keyless job costs no round trip.
 */
export function holdsFlow(hash: Readonly<Record<string, string>>): boolean {
  return !!(hash.fc_key || hash.ordering_key || hash.fc_scope);
}

/**
 * How an attempt counts on its breakers: a success closes them; a handler error, a timeout
 * (the runner's or ours) and a transport failure are failures; a snooze, a handler the runner
 * does not know (a deploy mistake, not an outage) and what never reached a handler count
 * nothing. Cancellations and releases never get here.
 */
export function breakerOutcome(
  result: { kind: "outcome"; outcome: ExecutionOutcome } | { kind: "transport" | "timeout" },
  decisionKind: "complete" | "retry" | "snooze" | "dlq",
): BreakerOutcome {
  if (decisionKind === "complete") return "success";
  if (decisionKind === "snooze") return undefined;
  if (result.kind !== "outcome") return "failure";
  const outcome = result.outcome;
  if (outcome.status === "retry" && (outcome as { snooze?: unknown }).snooze === true)
    return undefined; // snoozed too often: not a failure of the downstream
  if (outcome.status === "error" && outcome.error?.type === "handler_not_found") return undefined;
  return "failure";
}

/** What {@link FlowHooks.attemptEnded} needs to know about the attempt. */
export interface EndedAttempt {
  ref: JobRef;
  /** The hash as claimed (with the claim's fc_* fields). */
  hash: Readonly<Record<string, string>>;
}

/**
 * What the worker does for flow control after an attempt's outcome is written (README "Flow
 * control"): records the outcome on the job's circuit breakers, then frees its concurrency slot
 * and moves its session on (flow-release-n.lua: parked jobs that may run now go back to their
 * queues). Writes go through the worker's persist (retried while Redis is away); one that is
 * given up on (shutdown) is logged, and the sweeper repairs what it left.
 */
export class FlowHooks {
  private readonly scopes: BreakerScopes;
  private readonly anyBreaker: boolean;

  constructor(
    private readonly flow: FlowStore,
    private readonly config: ResolvedConfig,
    private readonly events: EventBus,
    private readonly persist: Persist,
  ) {
    this.scopes = new BreakerScopes(config);
    this.anyBreaker = !this.scopes.empty;
  }

  /**
   * True when the attempt has flow work to do after it ends. Synchronous and allocation-free
   * for keyless jobs without breakers, so they pay nothing.
   */
  concerns(
    hash: Readonly<Record<string, string>>,
    breaker: BreakerOutcome,
    queue: string,
  ): boolean {
    if (holdsFlow(hash)) return true;
    return (
      this.anyBreaker &&
      breaker !== undefined &&
      this.scopes.of(hash.function_name ?? "", queue).length > 0
    );
  }

  /**
   * After the attempt's write: record `breaker` (if any) on the job's breakers, then release
   * the job in `mode`. Never throws.
   */
  async attemptEnded(
    attempt: EndedAttempt,
    mode: FlowReleaseMode,
    breaker: BreakerOutcome,
    error?: string,
  ): Promise<void> {
    const { ref, hash } = attempt;
    try {
      if (breaker !== undefined && this.anyBreaker) await this.recordBreakers(ref, breaker, error);
      if (holdsFlow(hash))
        await this.persist("flow release", () =>
          this.flow.release(ref.jobId, mode, this.config.sessionOnDead),
        );
    } catch (failure) {
      this.events.emit("worker:error", {
        context: `flow release of job ${ref.jobId} (${mode}); the flow sweeper repairs it`,
        error: failure as Error,
        job: ref,
      });
    }
  }

  /**
   * A job put back by orphan recovery (or sent to the DLQ as poison): frees its slot and moves
   * its session like a release. Not retried (recovery runs again; the sweeper repairs).
   */
  async recovered(jobId: string, mode: FlowReleaseMode): Promise<void> {
    try {
      await this.flow.release(jobId, mode, this.config.sessionOnDead);
    } catch (failure) {
      this.events.emit("worker:error", {
        context: `flow release of recovered job ${jobId}; the flow sweeper repairs it`,
        error: failure as Error,
      });
    }
  }

  private async recordBreakers(
    ref: JobRef,
    outcome: "success" | "failure",
    error: string | undefined,
  ): Promise<void> {
    const summary = error === undefined ? undefined : error.slice(0, ERROR_SUMMARY_CHARS);
    for (const { scope, spec } of this.scopes.of(ref.functionName, ref.queue)) {
      const changed = await this.persist("breaker record", () =>
        this.flow.recordBreaker(scope, outcome, ref.jobId, spec, summary),
      );
      if (changed !== "")
        this.events.emit("flow:breaker", {
          scope,
          state: changed,
          jobId: ref.jobId,
          error: changed === "opened" ? summary : undefined,
          cooldownSeconds: spec.cooldownMs / 1000,
        });
    }
  }
}
