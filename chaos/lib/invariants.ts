import type { Redis } from "ioredis";
import type { ExecLog } from "./exec-log.js";

/** A job the scenario enqueued (or planted) and what it may do. */
export interface TrackedJob {
  id: string;
  /** Handler or planted-hash kind, for reports. */
  kind: string;
  /** Which runner (or group) the job is meant for. */
  tag?: string;
  /** The job_id runners see, when it is not the key's id (a hash whose `id` field differs). */
  execId?: string;
  /** The job's max_retries (total attempts). */
  maxRetries: number;
  /** The handler's result carries `request_id` and `worker_id` (work/inspect-style). */
  identity: boolean;
  /** The terminal status this job must end in, when the scenario knows it. */
  expect?: "COMPLETED" | "FAILED";
  /** Extra check on the final hash; returns a problem, or undefined. */
  check?: (hash: Record<string, string>) => string | undefined;
}

/** Kinds of invariant violations. The first five feed the required report keys. */
export type ViolationKind =
  | "lost"
  | "stuck"
  | "stale_terminal_write"
  | "duplicate_terminal_write"
  | "over_executed"
  | "terminal_but_queued"
  | "dlq_mismatch"
  | "missing_terminal_event"
  | "unexpected_outcome"
  | "residue"
  | "orchestrator_crash"
  | "orchestrator_hang"
  | "scenario_error"
  | "cap_exceeded"
  | "rate_exceeded"
  | "session_out_of_order";

export interface Violation {
  kind: ViolationKind;
  job?: string;
  detail: string;
}

/** An injected fault: when, what, and which jobs it interrupted. */
export interface Fault {
  kind: string;
  at: number;
  affected: string[];
  detail?: string;
}

export interface CheckResult {
  jobs: number;
  completed: number;
  failed: number;
  lost: number;
  stuck: number;
  staleTerminalWrites: number;
  duplicateTerminalWrites: number;
  overExecuted: number;
  executions: number;
  /** Completed jobs re-dispatched by a worker that had lost them, after the legit run. */
  lateDispatches: number;
  violations: Violation[];
}

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/**
 * One job's status, whether it is in any of the given queues (or parked by flow control in the
 * wait set its `fc_wait` names), and whether anyone holds it (lock, lease or an active set),
 * read atomically. ARGV: id, number of queue keys, queue keys,
 * active-set keys.
 */
const ORPHAN_CHECK = `
local id, nq = ARGV[1], tonumber(ARGV[2])
local status = redis.call("HGET", "rrq:job:" .. id, "status")
local queued, held = 0, 0
for i = 3, 2 + nq do if redis.call("ZSCORE", ARGV[i], id) then queued = 1 end end
-- A job parked by flow control (a wait set named in fc_wait) is waiting, not lost.
local wait = redis.call("HGET", "rrq:job:" .. id, "fc_wait")
if wait and redis.call("ZSCORE", wait, id) then queued = 1 end
for i = 3 + nq, #ARGV do if redis.call("ZSCORE", ARGV[i], id) then held = 1 end end
if redis.call("EXISTS", "rrq:lock:job:" .. id) == 1 or redis.call("ZSCORE", "rrq:leases", id) then
  held = 1
end
return {status or false, queued, held}
`;
const TERMINAL_EVENTS = new Set(["completed", "failed", "cancelled"]);

/** Every key matching a pattern (SCAN). */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  return keys;
}

/** Statuses of many jobs in one round trip. */
export async function statuses(redis: Redis, ids: readonly string[]): Promise<(string | null)[]> {
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hget(`rrq:job:${id}`, "status");
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([, value]) => (value as string | null) ?? null);
}

/** Waits until every job is terminal; returns the ids still not terminal at the deadline. */
export async function waitTerminal(
  redis: Redis,
  ids: readonly string[],
  timeoutMs: number,
  onTick?: () => void,
  stallMs = timeoutMs,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let open = [...ids];
  let signature = "";
  let changedAt = Date.now();
  for (;;) {
    onTick?.();
    const now = await statuses(redis, open);
    open = open.filter((_, i) => !TERMINAL.has(now[i] ?? ""));
    if (open.length === 0 || Date.now() > deadline) return open;
    // Give up early when nothing moved for stallMs (a stuck job does not come back).
    const sig = `${open.length}:${now.join(",")}`;
    if (sig !== signature) {
      signature = sig;
      changedAt = Date.now();
    } else if (Date.now() - changedAt > stallMs) return open;
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface StoredIdentity {
  request_id?: unknown;
  worker_id?: unknown;
  context?: { worker_id?: unknown };
}

function parseResult(text: string | undefined): StoredIdentity | null {
  try {
    const value = JSON.parse(text ?? "null") as unknown;
    return typeof value === "object" && value !== null ? value : null;
  } catch {
    return null;
  }
}

const workerPid = (workerId: string | undefined) => {
  const m = /^rrq_worker_(\d+)_/.exec(workerId ?? "");
  return m ? Number(m[1]) : undefined;
};

/**
 * Checks the invariants over every tracked job, from Redis state and the runners' exec log only
 * (never the orchestrator's own logs):
 *
 * - exactly one terminal state: COMPLETED/FAILED hash status, exactly one terminal entry in
 *   `rrq:events:job:<id>`, FAILED jobs in exactly one DLQ once, COMPLETED jobs in none, and no
 *   terminal job still queued;
 * - nothing lost or stuck: a non-terminal job nobody holds or will claim is lost (hash gone, or
 *   PENDING/RETRYING outside every queue and not parked by flow control, or ACTIVE with no
 *   lock, lease or active-set entry);
 *   any other non-terminal job is stuck;
 * - no stale success: a COMPLETED job's result must come from the last execution that started
 *   (its `request_id`), run for the worker the hash names; for handlers without identity in the
 *   result, the last execution's runner must be a child of the daemon the hash names (leaving
 *   out starts on a runner whose daemon had been SIGKILLed by then: an orphaned runner may still
 *   read a request sent before the kill, e.g. after a busy handler, but cannot write a result);
 * - executions (runner handler starts) ≤ max_retries + recovery_count.
 */
export async function checkInvariants(
  redis: Redis,
  jobs: readonly TrackedJob[],
  execLog: ExecLog,
  /** Daemon pid → when it was SIGKILLed (epoch ms). */
  killedAt: ReadonlyMap<number, number> = new Map(),
): Promise<CheckResult> {
  execLog.poll();
  const violations: Violation[] = [];
  const add = (kind: ViolationKind, job: string | undefined, detail: string) =>
    violations.push({ kind, job, detail });

  const dlqCount = new Map<string, number>();
  for (const key of await scanKeys(redis, "rrq:dlq:*")) {
    for (const id of await redis.lrange(key, 0, -1)) dlqCount.set(id, (dlqCount.get(id) ?? 0) + 1);
  }
  const queued = new Map<string, string>();
  for (const key of await scanKeys(redis, "rrq:queue:*")) {
    for (const id of await redis.zrange(key, 0, -1)) queued.set(id, key);
  }
  const activeMember = new Set<string>();
  for (const key of await scanKeys(redis, "rrq:active:jobs:*")) {
    for (const id of await redis.zrange(key, 0, -1)) activeMember.add(id);
  }
  const leased = new Set(await redis.zrange("rrq:leases", 0, -1));

  const result: CheckResult = {
    jobs: jobs.length,
    completed: 0,
    failed: 0,
    lost: 0,
    stuck: 0,
    staleTerminalWrites: 0,
    duplicateTerminalWrites: 0,
    overExecuted: 0,
    executions: 0,
    lateDispatches: 0,
    violations,
  };

  const orphanCandidates: Array<{ id: string; where: string }> = [];
  let lateDispatches = 0;
  for (let start = 0; start < jobs.length; start += 500) {
    const batch = jobs.slice(start, start + 500);
    const pipeline = redis.pipeline();
    for (const job of batch) {
      pipeline.hgetall(`rrq:job:${job.id}`);
      pipeline.xrange(`rrq:events:job:${job.id}`, "-", "+");
      pipeline.exists(`rrq:lock:job:${job.id}`);
    }
    const replies = (await pipeline.exec()) ?? [];
    batch.forEach((job, i) => {
      const hash = (replies[i * 3]?.[1] ?? {}) as Record<string, string>;
      const events = (replies[i * 3 + 1]?.[1] ?? []) as Array<[string, string[]]>;
      const locked = replies[i * 3 + 2]?.[1] === 1;
      checkJob(job, hash, events, locked);
    });
  }

  const queueKeys = await scanKeys(redis, "rrq:queue:*");
  const activeKeys = await scanKeys(redis, "rrq:active:jobs:*");
  for (const { id, where } of orphanCandidates) {
    const [status, queuedNow, heldNow] = (await redis.eval(
      ORPHAN_CHECK,
      0,
      id,
      queueKeys.length,
      ...queueKeys,
      ...activeKeys,
    )) as [string | null, number, number];
    if (status !== null && TERMINAL.has(status)) continue; // finished meanwhile: fine
    const orphan =
      status === null ||
      ((status === "PENDING" || status === "RETRYING") && queuedNow === 0) ||
      (status === "ACTIVE" && heldNow === 0);
    if (orphan) {
      result.lost++;
      add("lost", id, `orphaned: ${where}`);
    } else {
      result.stuck++;
      add("stuck", id, `${where} (moving: now ${status})`);
    }
  }

  function checkJob(
    job: TrackedJob,
    hash: Record<string, string>,
    events: Array<[string, string[]]>,
    locked: boolean,
  ): void {
    const id = job.id;
    const execs = execLog.of(job.execId ?? id);
    result.executions += execs.length;
    if (Object.keys(hash).length === 0) {
      result.lost++;
      add("lost", id, `job hash is gone (${execs.length} executions)`);
      return;
    }
    const status = hash.status ?? "";
    const recoveries = Number(hash.recovery_count ?? 0) || 0;
    // max_retries as the orchestrator reads it: an integer, else the default; at least 1 attempt.
    const parsed = hash.max_retries?.trim() ? Number(hash.max_retries) : NaN;
    const maxRetries = Number.isFinite(parsed) ? Math.trunc(parsed) : job.maxRetries;
    const allowed = Math.max(maxRetries, 1) + recoveries;
    if (execs.length > allowed) {
      result.overExecuted++;
      add(
        "over_executed",
        id,
        `${execs.length} executions > max_retries ${maxRetries} + recovery_count ${recoveries} (requests ${execs.map((e) => `${e.request_id.slice(0, 8)}@pid${e.pid}`).join(", ")})`,
      );
    }
    if (!TERMINAL.has(status)) {
      const queue = queued.get(id);
      const held = locked || leased.has(id) || activeMember.has(id);
      const orphan =
        ((status === "PENDING" || status === "RETRYING") && !queue) ||
        (status === "ACTIVE" && !held);
      const where = `status ${status}, queue ${queue ?? "none"}, lock ${locked}, lease ${leased.has(id)}, active-set ${activeMember.has(id)}, worker ${hash.worker_id ?? "-"}, retries ${hash.current_retries ?? "0"}, recoveries ${recoveries}, ${execs.length} executions, last_error ${JSON.stringify(hash.last_error ?? null)}`;
      if (orphan) {
        // The sets above were read before this hash: a job that moved meanwhile (claimed,
        // released, recovered) looks orphaned. Decided again below, from one atomic read.
        orphanCandidates.push({ id, where });
      } else {
        result.stuck++;
        add("stuck", id, where);
      }
      return;
    }
    if (status === "COMPLETED") result.completed++;
    if (status === "FAILED") result.failed++;
    const terminalEvents = events.filter(([, fields]) => {
      const i = fields.indexOf("event");
      return i >= 0 && TERMINAL_EVENTS.has(fields[i + 1] ?? "");
    });
    if (terminalEvents.length === 0)
      add("missing_terminal_event", id, `${status} without events entry`);
    if (terminalEvents.length > 1) {
      result.duplicateTerminalWrites++;
      result.staleTerminalWrites++;
      add(
        "duplicate_terminal_write",
        id,
        `${terminalEvents.length} terminal events: ${terminalEvents.map(([eid, f]) => `${eid}:${f.join("=")}`).join(" | ")}`,
      );
    }
    const inDlq = dlqCount.get(id) ?? 0;
    if (status === "FAILED" && inDlq !== 1)
      add("dlq_mismatch", id, `FAILED but listed ${inDlq} times in DLQs`);
    if (status === "COMPLETED" && inDlq !== 0)
      add("dlq_mismatch", id, `COMPLETED but listed ${inDlq} times in DLQs`);
    const queue = queued.get(id);
    if (queue) add("terminal_but_queued", id, `${status} but still in ${queue} (would run again)`);
    if (locked || leased.has(id) || activeMember.has(id))
      add(
        "residue",
        id,
        `${status} with lock ${locked}, lease ${leased.has(id)}, active-set ${activeMember.has(id)}`,
      );
    if (job.expect && status !== job.expect)
      add(
        "unexpected_outcome",
        id,
        `expected ${job.expect}, got ${status} (last_error ${JSON.stringify(hash.last_error ?? null)})`,
      );
    const problem = job.check?.(hash);
    if (problem) add("unexpected_outcome", id, problem);
    if (status === "COMPLETED" && !job.execId) checkCompletion(job, hash, execs);
  }

  function checkCompletion(
    job: TrackedJob,
    hash: Record<string, string>,
    execs: ReturnType<ExecLog["of"]>,
  ): void {
    const id = job.id;
    const last = execs[execs.length - 1];
    if (!last) {
      result.staleTerminalWrites++;
      add("stale_terminal_write", id, "COMPLETED but no execution ever started");
      return;
    }
    if (job.identity) {
      // The stored result must come from an execution dispatched by the final holder (the hash's
      // worker_id, set by its claim) after that claim (start_time): a result of any earlier
      // attempt, or of another worker, was written without the lease. Executions that start
      // later are not a violation by themselves: a worker resumed after SIGSTOP may still
      // dispatch the attempt it had claimed before (its write is then fenced off).
      const stored = parseResult(hash.result);
      const worker = stored?.worker_id ?? stored?.context?.worker_id;
      const run = execs.find((e) => e.request_id === stored?.request_id);
      const claimedAt = Date.parse(hash.start_time ?? "");
      // start_time is on Redis's clock as the claiming worker measures it (±its offset's
      // uncertainty, a few ms at worst), ts_ms on the runner's: 50 ms of slack between the two
      const beforeClaim = run !== undefined && !run.approx_ts && run.ts_ms < claimedAt - 50;
      if (!run || worker !== hash.worker_id || beforeClaim) {
        result.staleTerminalWrites++;
        add(
          "stale_terminal_write",
          id,
          `result from request ${String(stored?.request_id)} for ${String(worker)}${run ? ` started at ${Math.round(run.ts_ms)}` : " (no such execution)"}, but the hash names ${hash.worker_id}, claimed at ${hash.start_time}; executions: ${execs.map((e) => `${e.request_id}@${Math.round(e.ts_ms)}`).join(", ")}`,
        );
      } else if (run !== last) {
        lateDispatches++;
      }
      return;
    }
    const orphaned = (e: (typeof execs)[number]) => {
      const killed = killedAt.get(execLog.parentOf.get(e.pid) ?? -1);
      return killed !== undefined && e.ts_ms >= killed;
    };
    const lastLive = execs.filter((e) => !orphaned(e)).at(-1) ?? last;
    const daemon = execLog.parentOf.get(lastLive.pid);
    const holder = workerPid(hash.worker_id);
    if (daemon !== undefined && holder !== undefined && daemon !== holder) {
      result.staleTerminalWrites++;
      add(
        "stale_terminal_write",
        id,
        `completed by ${hash.worker_id}, but the last execution to start ran on pid ${lastLive.pid}, a runner of daemon ${daemon}`,
      );
    }
  }

  result.lateDispatches = lateDispatches;
  return result;
}

/**
 * Whether the job had a run open at `at` (started before, not ended before): the affected list
 * is read from the victim's active set just before the fault, and a job whose run ended in
 * between (a retry now waiting behind the backlog, a completion) was not interrupted by it.
 * Jobs without run records (more than 100 claims) count as interrupted.
 */
function runOpenAt(hash: Record<string, string>, at: number): boolean {
  const runs = Number(hash.runs ?? 0);
  if (!(runs >= 1 && runs <= 100)) return true;
  for (let k = 1; k <= runs; k++) {
    const started = Date.parse(hash[`run_${k}_started_at`] ?? "");
    const ended = Date.parse(hash[`run_${k}_ended_at`] ?? "");
    if (started <= at + 5 && !(ended < at - 5)) return true;
  }
  return false;
}

/**
 * Recovery time of each fault: from the fault until every job it interrupted was back in a
 * queue (the interrupted run's `run_<k>_ended_at`, written by the retry or the recovery that
 * re-queued it), running again (an execution started after the fault) or finished
 * (completion_time), whichever came first. Time spent waiting behind a backlog once re-queued
 * is queueing, not recovery; jobs whose run had already ended when the fault hit are left out
 * ({@link runOpenAt}).
 */
export async function recoveryTimes(
  redis: Redis,
  faults: readonly Fault[],
  execLog: ExecLog,
): Promise<Array<{ fault: Fault; ms: number | null; slowest?: string }>> {
  execLog.poll();
  const out: Array<{ fault: Fault; ms: number | null; slowest?: string }> = [];
  for (const fault of faults) {
    let worst = 0;
    let slowest: string | undefined;
    let unrecovered = false;
    for (const id of fault.affected) {
      const rerun = execLog.of(id).find((e) => e.ts_ms > fault.at)?.ts_ms;
      const hash = await redis.hgetall(`rrq:job:${id}`);
      if (!runOpenAt(hash, fault.at)) continue;
      const after = (text: string | undefined) => {
        const ms = text ? Date.parse(text) : NaN;
        return ms >= fault.at - 5 ? ms : undefined;
      };
      const requeued = Object.entries(hash)
        .filter(([k]) => /^run_\d+_ended_at$/.test(k))
        .map(([, v]) => after(v));
      const candidates = [rerun, after(hash.completion_time), ...requeued].filter(
        (t): t is number => t !== undefined && Number.isFinite(t),
      );
      if (candidates.length === 0) {
        unrecovered = true;
        slowest = id;
        continue;
      }
      const ms = Math.max(0, Math.min(...candidates) - fault.at);
      if (ms > worst) {
        worst = ms;
        slowest = id;
      }
    }
    out.push({ fault, ms: unrecovered ? null : worst, slowest });
  }
  return out;
}
