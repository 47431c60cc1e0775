import type { CronApi } from "../../api/cron.js";
import { jobJson, jobView, matches, type JobView } from "../../api/records.js";
import { jobRuns, jobTimeline } from "../../api/trace.js";
import { jobViewsInOrder, listPages, scanKeys } from "../../api/scan.js";
import { TOMBSTONE } from "../../api/dlq-summary.js";
import type { PausedInfo, RrqApi, WorkerHealth } from "../../api/index.js";
import { quietSince } from "../../control/quiet.js";
import { jobKey, LEASES_KEY, Prefix, queueKey, RECENT_KEY } from "../../store/keys.js";
import { HttpError } from "./http.js";
import { PerMinuteCounter } from "./per-minute.js";

/**
 * The dashboard's read endpoints, each a bounded number of short Redis commands over rrqkit's
 * bookkeeping indexes (queue ZSETs, counters, the recent-jobs feed, the DLQ summary, leases):
 * none walks the job keyspace, so they answer as fast with a million jobs as with ten. The one
 * keyspace SCAN the data API needs (finding worker health keys) runs in the background and is
 * cached (see {@link WorkerDirectory}).
 */

/** Page size limits of list endpoints. */
export const MAX_PAGE = 200;
/** DLQ entries a filtered DLQ read looks at, at most (newest first). */
export const DLQ_EXAMINE_LIMIT = 5000;

/** One queue row of the overview and queues pages. */
export interface QueueRow {
  readonly name: string;
  readonly depth: number;
  readonly ready: number;
  readonly deferred: number;
  readonly oldestAgeMs: number;
  readonly running: number;
  /** The queue's pause (flow control: `rrq queue pause`), or null. */
  readonly paused: PausedInfo | null;
  /** Jobs parked by flow control (PENDING, not in the ZSET, so not in `depth`). */
  readonly parked: number;
}

/** Worker ids with a health key, found by a cached background SCAN (at most every 10 s). */
export class WorkerDirectory {
  private ids: string[] = [];
  private scannedAt = 0;
  private scanning: Promise<void> | undefined;

  constructor(
    private readonly api: RrqApi,
    private readonly maxAgeMs = 10_000,
  ) {}

  /**
   * The known ids; the first call waits for a scan (a worker serving the dashboard has written
   * its health record by then), later ones refresh in the background (an empty list after 2 s).
   */
  async current(): Promise<string[]> {
    const maxAge = this.ids.length === 0 ? Math.min(2000, this.maxAgeMs) : this.maxAgeMs;
    const stale = Date.now() - this.scannedAt > maxAge;
    if (stale && !this.scanning) {
      this.scanning = this.scan().finally(() => (this.scanning = undefined));
      // a background refresh that fails (Redis away, the API closed at shutdown) keeps the old
      // list and is tried again on a later call; only the first call waits for, and sees, it
      this.scanning.catch(() => undefined);
    }
    if (this.scannedAt === 0 && this.scanning) await this.scanning;
    return this.ids;
  }

  private async scan(): Promise<void> {
    const found = new Set<string>();
    for await (const keys of scanKeys(this.api.redis, `${Prefix.health}*`, { count: 5000 }))
      for (const key of keys) found.add(key.slice(Prefix.health.length));
    this.ids = [...found].sort();
    this.scannedAt = Date.now();
  }
}

const json = (view: JobView) => jobJson(view);

/** The dashboard's reads over one data API. */
export class DashboardReads {
  readonly workerDirectory: WorkerDirectory;
  private readonly perMinute: PerMinuteCounter;

  constructor(
    private readonly api: RrqApi,
    private readonly cron: CronApi | undefined,
    private readonly traceUrl: string | undefined,
  ) {
    this.workerDirectory = new WorkerDirectory(api);
    this.perMinute = new PerMinuteCounter(api.redis);
  }

  private get redis() {
    return this.api.redis;
  }

  /** Everything the overview page shows. */
  async overview(now = Date.now()) {
    const [totals, history, perMinute, queues, workers, dlq, latency] = await Promise.all([
      this.api.stats.totals(),
      this.api.stats.history(14, now),
      this.perMinute.read(now),
      this.queueRows(now),
      this.workerHealth(),
      this.api.dlq.stats(),
      this.startLatency(),
    ]);
    const { byQueue: _byQueue, ...counters } = totals;
    return {
      totals: counters,
      history,
      perMinute,
      queues,
      workers: { count: workers.length, quiet: workers.filter((w) => w.quiet).length },
      dlq: { entries: dlq.entries },
      latency,
      now,
    };
  }

  /** Sizes of every known queue, with the jobs running from each. */
  async queueRows(now = Date.now()): Promise<QueueRow[]> {
    const [summaries, running] = await Promise.all([
      this.api.queues.list({ includeEmpty: true, now }),
      this.runningByQueue(),
    ]);
    return summaries.map((q) => ({
      name: q.name,
      depth: q.pending,
      ready: q.ready,
      deferred: q.pending - q.ready,
      oldestAgeMs: q.latencyMs,
      running: running.get(q.name) ?? 0,
      paused: q.paused,
      parked: q.parked,
    }));
  }

  /**
   * A page of a queue by rank (oldest run-at first): `ready` entries are ranks 0 … ready − 1,
   * `deferred` the rest. `cursor` is the offset within the state; O(log n + limit).
   */
  async queueJobs(
    name: string,
    options: { state?: string; cursor?: string; limit?: number; now?: number },
  ) {
    const key = queueKey(name);
    const limit = Math.min(MAX_PAGE, Math.max(1, options.limit ?? 50));
    const offset = Math.max(0, Number.parseInt(options.cursor ?? "0", 10) || 0);
    const now = options.now ?? Date.now();
    const state = options.state ?? "all";
    if (!["ready", "deferred", "all"].includes(state))
      throw new HttpError(400, "invalid_argument", "state must be ready, deferred or all");
    const [total, ready] = await Promise.all([
      this.redis.zcard(key),
      this.redis.zcount(key, "-inf", now),
    ]);
    const [from, to] =
      state === "ready" ? [0, ready] : state === "deferred" ? [ready, total] : [0, total];
    const start = from + offset;
    const stop = Math.min(to, start + limit) - 1;
    const flat = stop >= start ? await this.redis.zrange(key, start, stop, "WITHSCORES") : [];
    const ids: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      ids.push(flat[i]!);
      scores.push(Number(flat[i + 1]));
    }
    const views = await jobViewsInOrder(this.redis, ids);
    const jobs = ids.map((id, i) => ({
      ...(views[i] ? json(views[i]) : { id, status: null, missing: true }),
      runAt: new Date(scores[i]!).toISOString(),
    }));
    const next = start + ids.length < to ? String(offset + ids.length) : null;
    return { queue: key, total, ready, deferred: total - ready, jobs, next };
  }

  /** Job search: one id, or the data API's index listing (never a keyspace scan). */
  async jobs(filters: {
    id?: string;
    function?: string;
    status?: string;
    queue?: string;
    limit?: number;
  }) {
    if (filters.id) {
      const view = await this.api.jobs.get(filters.id.trim());
      return { jobs: view ? [json(view)] : [] };
    }
    const { jobs } = await this.api.jobs.list({
      mode: "index",
      limit: Math.min(MAX_PAGE, Math.max(1, filters.limit ?? 50)),
      ...(filters.function ? { functionName: filters.function } : {}),
      ...(filters.status ? { status: filters.status } : {}),
      ...(filters.queue ? { queue: filters.queue } : {}),
    });
    return { jobs: jobs.map(json) };
  }

  /** One job: its view, raw hash, timeline, runs, lease and trace link; 404 when gone. */
  async job(id: string) {
    const hash = await this.api.jobs.hash(id);
    const view = hash && jobView(id, hash);
    if (!hash || !view) throw new HttpError(404, "not_found", `job '${id}' not found`);
    const leaseScore = await this.redis.zscore(LEASES_KEY, id);
    const traceId = traceIdOf(hash.trace_context);
    return {
      job: json(view),
      hash,
      trace: jobTimeline(hash),
      runs: jobRuns(hash),
      lease: leaseScore === null ? null : { expiresAt: new Date(Number(leaseScore)).toISOString() },
      traceId,
      traceUrl: traceId && this.traceUrl ? this.traceUrl.replaceAll("{trace_id}", traceId) : null,
    };
  }

  /**
   * The DLQ summary and its newest entries matching the filters (at most 100; a filtered read
   * looks at the newest {@link DLQ_EXAMINE_LIMIT} entries only and says so with `examined`).
   */
  async dlq(filters: { name?: string; function?: string; queue?: string; error?: string }) {
    const dlq = this.api.dlq.key(filters.name);
    const summary = await this.api.dlq.stats({ dlq });
    const entries: ReturnType<typeof json>[] = [];
    let examined = 0;
    const filter = { queue: filters.queue, functionName: filters.function };
    for await (const page of listPages(this.redis, dlq, { pageSize: 500 })) {
      const ids = page.ids.filter((id) => id !== TOMBSTONE);
      const views = await jobViewsInOrder(this.redis, ids);
      for (const view of views) {
        if (!view || !matches(view, filter)) continue;
        if (filters.error && !errorMatches(view.lastError, filters.error)) continue;
        if (entries.length < 100) entries.push(json(view));
      }
      examined += page.ids.length;
      if (entries.length >= 100 || examined >= DLQ_EXAMINE_LIMIT) break;
    }
    return { summary, entries, examined };
  }

  /** Health records with their quiet state (from the quiet keys, the switch's truth). */
  async workerHealth(): Promise<
    Array<WorkerHealth & { quiet: boolean; quietSince: string | null }>
  > {
    const ids = await this.workerDirectory.current();
    const workers = (await this.api.workers.list(ids)).filter((w) => w.health !== undefined);
    const quiet = await quietSince(
      this.redis,
      workers.map((w) => w.id),
    );
    return workers.map((w) => ({
      ...w,
      quiet: quiet.get(w.id) != null || w.health?.quiet === true,
      quietSince: quiet.get(w.id) ?? null,
    }));
  }

  /** The workers page. */
  async workers() {
    return { workers: await this.workerHealth() };
  }

  /** The cron page (empty without a configuration). */
  async cronEntries() {
    return { entries: this.cron ? await this.cron.list() : [] };
  }

  /** Enqueue→start latency of the newest finished jobs (up to 200 from the recent feed). */
  async startLatency(): Promise<{ samples: number; avgMs: number | null; p95Ms: number | null }> {
    const entries = await this.redis.xrevrange(RECENT_KEY, "+", "-", "COUNT", 200);
    const ids: string[] = [];
    for (const [, fields] of entries)
      for (let i = 0; i + 1 < fields.length; i += 2)
        if (fields[i] === "j") ids.push(fields[i + 1]!);
    const picked = ids.slice(0, 200);
    const pipeline = this.redis.pipeline();
    for (const id of picked) pipeline.hmget(jobKey(id), "enqueue_time", "start_time");
    const waits: number[] = [];
    for (const [error, reply] of (await pipeline.exec()) ?? []) {
      if (error) continue;
      const [enq, start] = reply as Array<string | null>;
      if (!enq || !start) continue;
      const wait = Date.parse(start) - Date.parse(enq);
      if (Number.isFinite(wait) && wait >= 0) waits.push(wait);
    }
    if (waits.length === 0) return { samples: 0, avgMs: null, p95Ms: null };
    waits.sort((a, b) => a - b);
    return {
      samples: waits.length,
      avgMs: Math.round(waits.reduce((s, w) => s + w, 0) / waits.length),
      p95Ms: waits[Math.min(waits.length - 1, Math.floor(waits.length * 0.95))]!,
    };
  }

  /** Jobs holding an rrqkit lease, by queue key (bounded by the fleet's load, not the backlog). */
  private async runningByQueue(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const ids = await this.redis.zrange(LEASES_KEY, 0, 9999);
    if (ids.length === 0) return counts;
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hget(jobKey(id), "queue_name");
    for (const [, queue] of (await pipeline.exec()) ?? []) {
      if (typeof queue !== "string" || queue === "") continue;
      counts.set(queueKey(queue), (counts.get(queueKey(queue)) ?? 0) + 1);
    }
    return counts;
  }
}

/** The trace id of a job's `trace_context` (W3C `traceparent`), or null. */
export function traceIdOf(traceContext: string | undefined): string | null {
  if (!traceContext) return null;
  try {
    const parsed = JSON.parse(traceContext) as Record<string, unknown>;
    const parent = typeof parsed?.traceparent === "string" ? parsed.traceparent : "";
    const match = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/i.exec(parent.trim());
    return match ? match[1]!.toLowerCase() : null;
  } catch {
    return null;
  }
}

/** The DLQ summary truncates errors to 100 characters; a group's text matches its jobs. */
function errorMatches(lastError: string | undefined, wanted: string): boolean {
  if (lastError === undefined) return false;
  const truncated = lastError.length > 100 ? `${lastError.slice(0, 97)}...` : lastError;
  return truncated === wanted || lastError === wanted;
}

/** The JSON shapes of the read endpoints (what `JSON.parse` of each answer gives). */
export type OverviewJson = Awaited<ReturnType<DashboardReads["overview"]>>;
/** `GET queues/:name/jobs`. */
export type QueueJobsJson = Awaited<ReturnType<DashboardReads["queueJobs"]>>;
/** `GET jobs`. */
export type JobsJson = Awaited<ReturnType<DashboardReads["jobs"]>>;
/** `GET jobs/:id`. */
export type JobDetailJson = Awaited<ReturnType<DashboardReads["job"]>>;
/** `GET dlq`. */
export type DlqJson = Awaited<ReturnType<DashboardReads["dlq"]>>;
/** `GET workers`. */
export type WorkersJson = Awaited<ReturnType<DashboardReads["workers"]>>;
/** `GET cron`. */
export type CronJson = Awaited<ReturnType<DashboardReads["cronEntries"]>>;
