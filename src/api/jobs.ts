import type { Redis } from "ioredis";
import { runCancel } from "../control/cancel.js";
import { Producer } from "../producer/producer.js";
import { RrqError } from "../errors.js";
import { formatTimestamp } from "../store/encoding.js";
import { hashFromPairs } from "../store/job.js";
import {
  dlqKey,
  dlqStatsKey,
  eventsKey,
  jobKey,
  LEASES_KEY,
  Prefix,
  queueKey,
  RECENT_KEY,
} from "../store/keys.js";
import type { ProgressValue } from "../store/live-store.js";
import { registerScripts, type ScriptCaller } from "../store/scripts.js";
import { jobProgress } from "./live.js";
import { currentDlqSummary } from "./dlq-summary.js";
import { jobView, matches, type JobView } from "./records.js";
import { jobViews, scanKeys } from "./scan.js";
import type { QueuesApi } from "./queues.js";
import type { ApiSettings } from "./settings.js";
import { jobTimeline, type TraceEvent } from "./trace.js";

/** Filters of {@link JobsApi.list} (RRQ's `job list` options). */
export interface JobListOptions {
  status?: string;
  queue?: string;
  functionName?: string;
  /** At most this many jobs, newest enqueue_time first (default 20). */
  limit?: number;
  /**
   * "scan" walks every job hash (RRQ's way; exact, O(keyspace)); "index" reads only rrqkit's
   * indexes (queues, leases, DLQ, the recent-jobs feed; bounded work); "auto" (default) scans
   * when the database holds at most {@link SCAN_LIMIT} keys.
   */
  mode?: "auto" | "index" | "scan";
  onProgress?: (scannedKeys: number) => void;
  signal?: AbortSignal;
}

/** Databases up to this many keys are listed by a full scan in "auto" mode. */
export const SCAN_LIMIT = 20_000;

/**
 * Outcome of a cancel: expected refusals are values, not errors. A job cancelled while running
 * names the worker that ran it (`workerId`); `running_unfenced`: it runs on an orchestrator that
 * cannot cancel it (RRQ's own).
 */
export type CancelResult =
  | { ok: true }
  | { ok: true; workerId: string }
  | { ok: false; reason: "not_found" }
  | {
      ok: false;
      reason: "not_waiting" | "no_queue" | "not_in_queue" | "running_unfenced";
      status: string;
    };

/** Outcome of a delete. */
export type DeleteResult =
  | { ok: true; status: string }
  | { ok: false; reason: "not_found" }
  | { ok: false; reason: "active"; status: string };

/** Outcome of a reschedule. */
export type RescheduleResult =
  | { ok: true; queue: string }
  | { ok: false; reason: "not_found" }
  | { ok: false; reason: "not_waiting" | "not_in_queue"; status: string };

const SCAN_BATCH = 1000;

/** The hash fields the index listing filters and orders by (its first pass). */
const FILTER_FIELDS = ["function_name", "queue_name", "status", "enqueue_time"] as const;

/** Jobs: read one, list with filters, trace, and the operator actions on one job. */
export class JobsApi {
  private readonly scripts: ScriptCaller;

  constructor(
    private readonly redis: Redis,
    private readonly settings: ApiSettings,
    private readonly queues: QueuesApi,
  ) {
    this.scripts = registerScripts(redis);
  }

  /** The job hash as stored, or undefined. */
  async hash(id: string): Promise<Record<string, string> | undefined> {
    const hash = await this.redis.hgetall(jobKey(id));
    return Object.keys(hash).length === 0 ? undefined : hash;
  }

  /**
   * The job's latest progress (live jobs: what its handler last reported, coalesced), or
   * undefined when it reported none or does not exist.
   */
  progress(id: string): Promise<ProgressValue | undefined> {
    return jobProgress(this.redis, id);
  }

  /** One job, or undefined. */
  async get(id: string): Promise<JobView | undefined> {
    const hash = await this.hash(id);
    return hash && jobView(id, hash);
  }

  /** The job's timeline (see {@link jobTimeline}), or undefined when it does not exist. */
  async trace(id: string): Promise<TraceEvent[] | undefined> {
    const hash = await this.hash(id);
    return hash && jobTimeline(hash);
  }

  /** Jobs matching the filters, newest enqueue_time first. */
  async list(
    options: JobListOptions = {},
  ): Promise<{ jobs: JobView[]; source: "index" | "scan"; scanned?: number }> {
    const limit = Math.max(1, options.limit ?? 20);
    let mode = options.mode ?? "auto";
    if (mode === "auto") mode = (await this.redis.dbsize()) <= SCAN_LIMIT ? "scan" : "index";
    if (mode === "scan") {
      const { jobs, scanned } = await this.scanList(options, limit);
      return { jobs, source: "scan", scanned };
    }
    return { jobs: await this.indexList(options, limit), source: "index" };
  }

  private async scanList(
    options: JobListOptions,
    limit: number,
  ): Promise<{ jobs: JobView[]; scanned: number }> {
    let kept: JobView[] = [];
    let scanned = 0;
    const trim = () => {
      kept.sort(newestFirst);
      kept = kept.slice(0, limit);
    };
    for await (const keys of scanKeys(this.redis, `${Prefix.job}*`, {
      count: SCAN_BATCH,
      signal: options.signal,
    })) {
      const ids = keys.map((key) => key.slice(Prefix.job.length));
      for (const view of await jobViews(this.redis, ids))
        if (matches(view, filterOf(options))) kept.push(view);
      if (kept.length > limit * 4) trim();
      scanned += keys.length;
      options.onProgress?.(scanned);
    }
    trim();
    return { jobs: kept, scanned };
  }

  /** Candidates from every index that can hold a job of the wanted status, then filtered. */
  private async indexList(options: JobListOptions, limit: number): Promise<JobView[]> {
    const depth = Math.max(limit * 5, 500);
    const status = options.status?.toUpperCase();
    const wants = (...statuses: string[]) => !status || statuses.includes(status);
    const ids = new Set<string>();
    if (wants("PENDING", "RETRYING")) {
      const names = options.queue ? [queueKey(options.queue)] : await this.queues.names();
      const pipeline = this.redis.pipeline();
      for (const name of names) pipeline.zrevrange(name, 0, depth - 1);
      for (const [, members] of (await pipeline.exec()) ?? [])
        for (const id of (members as string[] | null) ?? []) ids.add(id);
    }
    if (wants("ACTIVE")) for (const id of await this.redis.zrange(LEASES_KEY, 0, 9999)) ids.add(id);
    if (wants("FAILED"))
      for (const id of await this.redis.lrange(this.settings.defaultDlqName, 0, depth - 1))
        ids.add(id);
    if (wants("COMPLETED", "FAILED", "CANCELLED")) {
      const entries = await this.redis.xrevrange(RECENT_KEY, "+", "-", "COUNT", depth * 4);
      let fromRecent = 0;
      for (const [, fields] of entries) {
        for (const id of recentIds(fields)) {
          ids.add(id);
          fromRecent += 1;
        }
        if (fromRecent >= depth * 4) break;
      }
    }
    // Two passes: the fields the filters and the order need for every candidate, then whole
    // views of the `limit` survivors only (a few thousand candidates, a few dozen views).
    const candidates = [...ids];
    const pipeline = this.redis.pipeline();
    for (const id of candidates) pipeline.hmget(jobKey(id), ...FILTER_FIELDS);
    const light: JobView[] = [];
    ((await pipeline.exec()) ?? []).forEach(([error, values], i) => {
      if (error) throw error;
      const hash: Record<string, string> = {};
      FILTER_FIELDS.forEach((field, k) => {
        const value = (values as Array<string | null>)[k];
        if (value !== null && value !== undefined) hash[field] = value;
      });
      const view = jobView(candidates[i]!, hash);
      if (view && matches(view, filterOf(options))) light.push(view);
    });
    const chosen = light.sort(newestFirst).slice(0, limit);
    const views = (
      await jobViews(
        this.redis,
        chosen.map((v) => v.id),
      )
    ).filter((v) => matches(v, filterOf(options)));
    return views.sort(newestFirst);
  }

  /**
   * Enqueues a new job with the same function and params (RRQ's `job replay`: a new id, the
   * configured default retries, timeout and result TTL). Throws RrqError when the job is gone.
   */
  async replay(id: string, options: { queue?: string } = {}): Promise<string> {
    const hash = await this.hash(id);
    if (!hash) throw new RrqError("invalid_argument", `Job '${id}' not found`);
    if (!hash.function_name) throw new RrqError("invalid_argument", "job missing function_name");
    let params: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(hash.job_params ?? "{}");
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
        params = parsed as Record<string, unknown>;
    } catch {
      // RRQ replays unparseable params as {}
    }
    const producer = new Producer(this.settings.producer, this.redis);
    return producer.enqueue(hash.function_name, params, {
      queueName: options.queue ?? (hash.queue_name || this.settings.defaultQueueName),
    });
  }

  /**
   * Cancels a job waiting in its queue (PENDING, or RETRYING: rrqkit also allows that), or one
   * running on an rrqkit orchestrator: it is CANCELLED when this returns, its runner gets a
   * cancel frame and a late result of that attempt is fenced off (src/control/cancel.ts).
   */
  async cancel(id: string): Promise<CancelResult> {
    const reply = await runCancel(
      this.redis,
      this.scripts,
      id,
      this.settings.defaultResultTtlSeconds,
    );
    if (reply.code === "cancelled")
      return reply.workerId === null ? { ok: true } : { ok: true, workerId: reply.workerId };
    if (reply.reason === "not_found") return { ok: false, reason: "not_found" };
    return { ok: false, reason: reply.reason, status: reply.status ?? "" };
  }

  /**
   * Deletes a job: its hash, events stream, queue entry, DLQ entry and unique lock. An ACTIVE
   * job is refused unless `force` (its running attempt then finds the job gone and writes
   * nothing).
   */
  async delete(id: string, options: { force?: boolean } = {}): Promise<DeleteResult> {
    const [status, dlqName] = await this.redis.hmget(jobKey(id), "status", "dlq_name");
    if (status === "FAILED") {
      const dlq = dlqKey(dlqName || this.settings.defaultDlqName);
      await currentDlqSummary(this.redis, dlq);
      const [done] = await this.scripts.run<number[]>(
        this.redis,
        "dlq-take",
        [dlq, dlqStatsKey(dlq), ""],
        ["purge", Date.now(), formatTimestamp(Date.now()), "1", "index", id, 0],
      );
      if (done === 1) return { ok: true, status };
    }
    const [code, was] = await this.scripts.run<[number, string]>(
      this.redis,
      "job-delete",
      [jobKey(id), eventsKey(id), LEASES_KEY],
      [id, options.force ? "1" : "0"],
    );
    if (code === 1) return { ok: true, status: was };
    if (code === -1) return { ok: false, reason: "not_found" };
    return { ok: false, reason: "active", status: was };
  }

  /** Moves a waiting job (PENDING or RETRYING) to run at `when`. */
  async reschedule(id: string, when: Date | number): Promise<RescheduleResult> {
    const ms = typeof when === "number" ? when : when.getTime();
    if (!Number.isFinite(ms))
      throw new RrqError("invalid_argument", "the new run time is not a time");
    for (let attempt = 0; attempt < 3; attempt++) {
      const queue = await this.redis.hget(jobKey(id), "queue_name");
      const key = queueKey(queue || this.settings.defaultQueueName);
      const [code, status] = await this.scripts.run<[number, string]>(
        this.redis,
        "job-reschedule",
        [jobKey(id), key],
        [id, Math.round(ms), formatTimestamp(ms)],
      );
      if (code === 1) return { ok: true, queue: key };
      if (code === -1) return { ok: false, reason: "not_found" };
      if (code === 0) return { ok: false, reason: "not_waiting", status };
      // -3: not in the queue its hash names; the job may have moved meanwhile, so read again
      if (attempt === 2) return { ok: false, reason: "not_in_queue", status };
    }
    return { ok: false, reason: "not_found" };
  }
}

const filterOf = (o: JobListOptions) => ({
  status: o.status,
  queue: o.queue,
  functionName: o.functionName,
});

/**
 * The job ids of one `rrq:recent` entry: `j` (one finished job) or `js` (a JSON array: the
 * successes one batched completion wrote). A malformed entry yields none.
 */
export function recentIds(fields: readonly string[]): string[] {
  const { j: one, js: many } = hashFromPairs(fields);
  if (one) return [one];
  if (!many) return [];
  try {
    const parsed: unknown = JSON.parse(many);
    return Array.isArray(parsed)
      ? parsed.filter((id): id is string => typeof id === "string" && id !== "")
      : [];
  } catch {
    return [];
  }
}

/** RRQ's order: enqueue_time descending, jobs without one last. */
export function newestFirst(a: JobView, b: JobView): number {
  return (b.enqueueTime ?? 0) - (a.enqueueTime ?? 0);
}
