import type { DeathHandlerConfig } from "../config/job-control.js";
import { queueKey } from "../store/keys.js";

/** The stream move-to-dlq-6.lua records every DLQ move in (MAXLEN ~ 10000). */
export const DEATHS_KEY = "rrq:deaths";
/** The consumer group the orchestrators with death handlers read {@link DEATHS_KEY} through. */
export const DEATHS_GROUP = "rrq:death-handlers";

/** One entry of `rrq:deaths`: a job that entered a DLQ. */
export interface DeathRecord {
  /** The stream entry id. */
  readonly entryId: string;
  readonly jobId: string;
  /** The DLQ list key, e.g. `rrq:dlq:default`. */
  readonly dlq: string;
  /** The job's `runs` counter when it died (the claim that ran it last). */
  readonly runs: number;
  readonly functionName: string;
  /** The job's queue key as its hash had it ("" when it had none). */
  readonly queue: string;
  /** last_error, first 1000 bytes. */
  readonly error: string;
  /** last_error_type, or null when the failure had none. */
  readonly errorType: string | null;
  /** completion_time as written (RFC 3339). */
  readonly failedAt: string;
}

/** The params a death-handler job receives (README "Death handlers"). */
export interface DeathHandlerParams {
  job_id: string;
  function_name: string;
  queue_name: string;
  dlq_name: string;
  error: string;
  error_type: string | null;
  runs: number;
  failed_at: string;
}

/** A stream entry's fields as a record; null for an entry the stream no longer holds. */
export function parseDeath(entryId: string, fields: string[] | null): DeathRecord | null {
  if (!fields) return null;
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  if (!f.j) return null;
  return {
    entryId,
    jobId: f.j,
    dlq: f.d ?? "",
    runs: Number.parseInt(f.r ?? "0", 10) || 0,
    functionName: f.f ?? "",
    queue: f.q ?? "",
    error: f.e ?? "",
    errorType: f.t ? f.t : null,
    failedAt: f.c ?? "",
  };
}

/** Prefix of every death-handler job id. */
const HANDLER_JOB_PREFIX = "death:";

/**
 * The job id of handler `index` for a death: `death:<dead job id>:<runs>:<index>`. The same
 * death always maps to the same ids, so enqueueing them is idempotent across orchestrators and
 * redeliveries; a job that dies again after a DLQ requeue has more runs, so a new id.
 */
export function handlerJobId(death: DeathRecord, index: number): string {
  return `${HANDLER_JOB_PREFIX}${death.jobId}:${death.runs}:${index}`;
}

/**
 * Whether `handler` applies to `death`. A death-handler job's own death never does: a handler
 * that keeps failing would otherwise feed itself forever (each of its deaths a new handler job).
 */
export function handlerMatches(handler: DeathHandlerConfig, death: DeathRecord): boolean {
  if (death.jobId.startsWith(HANDLER_JOB_PREFIX)) return false;
  if (handler.functions && !handler.functions.includes(death.functionName)) return false;
  if (handler.queues) {
    const queue = death.queue === "" ? "" : queueKey(death.queue);
    if (!handler.queues.includes(queue)) return false;
  }
  return true;
}

/** The params of a handler job for `death`. */
export function handlerParams(death: DeathRecord): DeathHandlerParams {
  return {
    job_id: death.jobId,
    function_name: death.functionName,
    queue_name: death.queue,
    dlq_name: death.dlq,
    error: death.error,
    error_type: death.errorType,
    runs: death.runs,
    failed_at: death.failedAt,
  };
}
