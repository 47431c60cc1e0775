import { parseTimestamp } from "../store/encoding.js";

/** One row of a job's timeline. `at` is epoch ms. */
export interface TraceEvent {
  readonly at: number;
  /** Short label: Enqueued, Started, Retry n, Requeued, Finished, … */
  readonly event: string;
  readonly details: string;
  /** On the end row of a failed run: the error type rrqkit recorded (`run_<k>_error_type`). */
  readonly errorType?: string;
}

/** How a run (one claim of the job) ended, as recorded by rrqkit's scripts. */
export type RunOutcome = "completed" | "retry" | "failed" | "released" | "recovered" | "cancelled";

/** One run of a job: a claim by a worker and how it ended. */
export interface JobRun {
  readonly number: number;
  readonly worker: string | undefined;
  readonly startedAt: number | undefined;
  readonly endedAt: number | undefined;
  readonly outcome: string | undefined;
  readonly error: string | undefined;
  /** The type of that error (the runner's `error.type`), when one was recorded. */
  readonly errorType: string | undefined;
}

const at = (value: string | undefined) => (value ? parseTimestamp(value) : undefined);

/** The runs rrqkit recorded in a job hash (`run_<k>_*` fields, k = 1 … runs). */
export function jobRuns(hash: Readonly<Record<string, string>>): JobRun[] {
  const count = Math.min(Number(hash.runs ?? 0) || 0, 100);
  const runs: JobRun[] = [];
  for (let k = 1; k <= count; k++) {
    const field = (name: string) => hash[`run_${k}_${name}`];
    runs.push({
      number: k,
      worker: field("worker"),
      startedAt: at(field("started_at")),
      endedAt: at(field("ended_at")),
      outcome: field("outcome"),
      error: field("error"),
      errorType: field("error_type") || undefined,
    });
  }
  return runs;
}

function describeEnd(run: JobRun): { event: string; details: string } {
  const type = run.errorType ? `${run.errorType}: ` : "";
  const reason = run.error ? `: ${type}${run.error}` : "";
  switch (run.outcome) {
    case "completed":
      return { event: "Completed", details: `Run ${run.number} succeeded` };
    case "retry":
      return { event: "Failed", details: `Run ${run.number} failed, will retry${reason}` };
    case "failed":
      return { event: "Failed", details: `Run ${run.number} failed, moved to DLQ${reason}` };
    case "released":
      return {
        event: "Released",
        details: `Run ${run.number} given back, no attempt counted${reason}`,
      };
    case "recovered":
      return { event: "Recovered", details: `Run ${run.number} lost its worker; job re-queued` };
    case "cancelled":
      return { event: "Cancelled", details: `Run ${run.number} cancelled while running` };
    default:
      return { event: "Ended", details: `Run ${run.number}: ${run.outcome ?? "unknown"}${reason}` };
  }
}

/**
 * A job's timeline from its hash. Jobs that rrqkit workers ran carry one start and one end per
 * run (`run_<k>_*`), so every attempt shows up, with its worker and error. For hashes written by
 * RRQ's orchestrator the timeline falls back to what RRQ's own `job trace` reads: enqueue_time,
 * start_time, `retry_<i>_at` and completion_time. Rows are ordered by time (stable).
 */
export function jobTimeline(hash: Readonly<Record<string, string>>): TraceEvent[] {
  const events: TraceEvent[] = [];
  const push = (time: number | undefined, event: string, details: string, errorType?: string) => {
    if (time !== undefined)
      events.push({ at: time, event, details, ...(errorType && { errorType }) });
  };
  push(at(hash.enqueue_time), "Enqueued", `Function: ${hash.function_name ?? "unknown"}`);
  if (hash.cron_fire_time) push(at(hash.cron_fire_time), "Cron", "Scheduled by a cron entry");
  const runs = jobRuns(hash);
  const maxRetries = hash.max_retries ?? "0";
  if (runs.length > 0) {
    for (const run of runs) {
      push(run.startedAt, "Started", `Run ${run.number}, worker: ${run.worker ?? "unknown"}`);
      if (run.endedAt !== undefined) {
        const end = describeEnd(run);
        push(run.endedAt, end.event, end.details, run.errorType);
      }
    }
  } else {
    push(at(hash.start_time), "Started", `Worker: ${hash.worker_id ?? "unknown"}`);
  }
  // Retries: rrqkit writes retry_<n>_at for the n-th retry (1-based); RRQ's trace reads 0-based.
  const retries = Number(hash.current_retries ?? 0) || 0;
  const seen = new Set<number>();
  for (let i = 0; i <= retries; i++) {
    const time = at(hash[`retry_${i}_at`]);
    if (time === undefined) continue;
    const n = hash.runs !== undefined || hash[`retry_${retries}_at`] ? i : i + 1;
    if (n < 1 || seen.has(n)) continue;
    seen.add(n);
    push(time, `Retry ${n}`, `Attempt ${n + 1} of ${maxRetries} scheduled`);
  }
  push(at(hash.dlq_requeued_at), "Requeued", "Taken out of the DLQ");
  push(at(hash.completion_time), "Finished", `Status: ${hash.status ?? "unknown"}`);
  return events
    .map((event, index) => ({ event, index }))
    .sort((a, b) => a.event.at - b.event.at || a.index - b.index)
    .map(({ event }) => event);
}
