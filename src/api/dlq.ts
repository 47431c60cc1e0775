import type { Redis } from "ioredis";
import { RrqError } from "../errors.js";
import { formatTimestamp } from "../store/encoding.js";
import { dlqKey, dlqStatsKey, jobKey, queueKey } from "../store/keys.js";
import { registerScripts, type ScriptCaller } from "../store/scripts.js";
import {
  compactDlq,
  currentDlqSummary,
  dlqSummary,
  TOMBSTONE,
  type DlqSummary,
  type WalkProgress,
} from "./dlq-summary.js";
import { jobView, matches, type JobView } from "./records.js";
import { jobViewsInOrder, listPages } from "./scan.js";
import type { ApiSettings } from "./settings.js";

/** Which DLQ entries an operation applies to (RRQ's `dlq requeue` filters). */
export interface DlqSelection {
  /** DLQ name or key (default: the configured default DLQ). */
  dlq?: string;
  queue?: string;
  functionName?: string;
  jobId?: string;
  /** At most this many jobs, newest first. */
  limit?: number;
  /** Required when no filter is given. */
  all?: boolean;
}

/** Options of a bulk DLQ operation. */
export interface DlqBulkOptions {
  /** Jobs per Lua call (default 500): each call is short, so Redis never stalls. */
  batchSize?: number;
  dryRun?: boolean;
  /** Called after every batch: jobs handled, DLQ entries examined, entries in the DLQ. */
  onProgress?: (progress: DlqProgress) => void;
  /** Stops after the current batch; the result says `interrupted`. */
  signal?: AbortSignal;
}

/** Progress of a bulk DLQ operation. */
export interface DlqProgress {
  /** Jobs requeued or purged so far. */
  readonly done: number;
  /** DLQ entries looked at so far (out of `total`). */
  readonly examined: number;
  readonly total: number;
}

/** One page of {@link DlqApi.select}. */
export interface DlqSelectionPage {
  /** Matching entries: job id and its position counted from the list's tail. */
  readonly entries: Array<{ id: string; index: number }>;
  /** Entries of the list looked at so far, and the list's length when the walk began. */
  readonly examined: number;
  readonly total: number;
}

/** What a bulk DLQ operation did. */
export interface DlqBulkResult {
  /** Ids the selection matched (all of them for a dry run). */
  readonly selected: readonly string[];
  /** Jobs requeued or purged. */
  readonly done: number;
  /** Entries dropped because their job hash had expired. */
  readonly missing: number;
  /** Entries skipped (already gone, or not FAILED any more). */
  readonly skipped: number;
  readonly interrupted: boolean;
  /** Requeue: how many jobs went to each queue key (empty for purges and dry runs). */
  readonly queues: Readonly<Record<string, number>>;
}

/** Up to this many entries, `list` reads the whole DLQ and sorts it as RRQ does. */
export const DLQ_SORT_LIMIT = 10_000;

/** The dead-letter queues: list, stats, inspect, requeue and purge. */
export class DlqApi {
  private readonly scripts: ScriptCaller;

  constructor(
    private readonly redis: Redis,
    private readonly settings: ApiSettings,
  ) {
    this.scripts = registerScripts(redis);
  }

  /** The list key of a DLQ name (default: the configured one). */
  key(name?: string): string {
    return dlqKey(name || this.settings.defaultDlqName);
  }

  /**
   * A page of DLQ jobs, newest failure first, and the DLQ length. Up to {@link DLQ_SORT_LIMIT}
   * entries this is RRQ's exact order (every job read and sorted by completion_time); beyond
   * it, the list is walked from its head (newest pushes first) only as far as the page needs.
   */
  async list(
    options: Omit<DlqSelection, "jobId" | "all" | "limit"> & {
      offset?: number;
      limit?: number;
      batchSize?: number;
    } = {},
  ): Promise<{ jobs: JobView[]; total: number }> {
    const dlq = this.key(options.dlq);
    const offset = Math.max(0, options.offset ?? 0);
    const limit = Math.max(1, options.limit ?? 20);
    const total = await this.redis.llen(dlq);
    const filter = { queue: options.queue, functionName: options.functionName };
    const found: JobView[] = [];
    const exhaustive = total <= DLQ_SORT_LIMIT;
    for await (const page of listPages(this.redis, dlq, { pageSize: options.batchSize ?? 100 })) {
      const ids = page.ids.filter((id) => id !== TOMBSTONE);
      for (const view of await jobViewsInOrder(this.redis, ids))
        if (view && matches(view, filter)) found.push(view);
      if (!exhaustive && found.length >= offset + limit) break;
    }
    found.sort((a, b) => (b.completionTime ?? 0) - (a.completionTime ?? 0));
    return { jobs: found.slice(offset, offset + limit), total };
  }

  /** The DLQ's summary (see {@link dlqSummary}); `rebuild` recounts it from the list. */
  stats(
    options: { dlq?: string; rebuild?: boolean; onProgress?: WalkProgress } = {},
  ): Promise<DlqSummary> {
    return dlqSummary(this.redis, this.key(options.dlq), options);
  }

  /** A job's hash, whether or not it is in a DLQ (as RRQ's `dlq inspect`). */
  async inspect(id: string): Promise<Record<string, string> | undefined> {
    const hash = await this.redis.hgetall(jobKey(id));
    return Object.keys(hash).length === 0 ? undefined : hash;
  }

  /**
   * Matching entries in list order (newest first), page by page. Entries whose job hash is gone
   * are not matched (as RRQ).
   */
  async *select(selection: DlqSelection, signal?: AbortSignal): AsyncGenerator<DlqSelectionPage> {
    const dlq = this.key(selection.dlq);
    const filter = { queue: selection.queue, functionName: selection.functionName };
    let left = selection.limit ?? Infinity;
    if (selection.jobId !== undefined) {
      const view = jobView(selection.jobId, await this.redis.hgetall(jobKey(selection.jobId)));
      // index 0 will not match, so the script falls back to one LREM of the id
      if (view && matches(view, filter) && left > 0)
        yield { entries: [{ id: selection.jobId, index: 0 }], examined: 1, total: 1 };
      return;
    }
    let examined = 0;
    for await (const page of listPages(this.redis, dlq, { pageSize: 500, signal })) {
      const total = examined - page.tailStart;
      const views = await jobViewsInOrder(this.redis, page.ids);
      const entries: Array<{ id: string; index: number }> = [];
      page.ids.forEach((id, i) => {
        const view = views[i];
        if (left > 0 && id !== TOMBSTONE && view && matches(view, filter)) {
          entries.push({ id, index: page.tailStart + i });
          left--;
        }
      });
      examined += page.ids.length;
      yield { entries, examined, total };
      if (left <= 0) return;
    }
  }

  /**
   * Puts DLQ jobs back in a queue: `targetQueue` when given, else each job's own queue (its
   * `queue_name`; the default queue for a job that names none). RRQ 0.11 sends them all to the
   * default queue, where the runners serving the job's queue may never look. Attempt counters
   * are reset (`current_retries` and `recovery_count` to 0) unless `keepAttempts`, and the 7-day
   * expiry the DLQ gave the job is removed. Each batch is one Lua call; an interrupted run leaves
   * every job either requeued or still in the DLQ.
   */
  requeue(
    selection: DlqSelection,
    options: DlqBulkOptions & { targetQueue?: string; keepAttempts?: boolean } = {},
  ): Promise<DlqBulkResult> {
    const own = !options.targetQueue;
    const target = queueKey(options.targetQueue || this.settings.defaultQueueName);
    const action = own ? "requeue-own" : "requeue";
    return this.take(action, selection, options, target, options.keepAttempts ?? false);
  }

  /** Deletes DLQ jobs for good (hash, events stream and DLQ entry). */
  purge(selection: DlqSelection, options: DlqBulkOptions = {}): Promise<DlqBulkResult> {
    return this.take("purge", selection, options, "", false);
  }

  private async take(
    action: "requeue" | "requeue-own" | "purge",
    selection: DlqSelection,
    options: DlqBulkOptions,
    target: string,
    keepAttempts: boolean,
  ): Promise<DlqBulkResult> {
    const filtered =
      selection.queue !== undefined ||
      selection.functionName !== undefined ||
      selection.jobId !== undefined;
    if (!filtered && !selection.all)
      throw new RrqError(
        "invalid_argument",
        `Refusing to ${action === "purge" ? "purge" : "requeue"} all jobs without --all or filters.`,
      );
    const dlq = this.key(selection.dlq);
    const batch = Math.max(1, options.batchSize ?? 500);
    if (options.dryRun) {
      const selected: string[] = [];
      for await (const page of this.select(selection, options.signal))
        selected.push(...page.entries.map((e) => e.id));
      return { selected, done: 0, missing: 0, skipped: 0, interrupted: false, queues: {} };
    }
    await currentDlqSummary(this.redis, dlq);
    const now = Date.now();
    const call = (mode: "pop" | "index", args: Array<string | number>) =>
      this.scripts.run<[number, number, number, number, ...Array<string | number>]>(
        this.redis,
        "dlq-take",
        [dlq, dlqStatsKey(dlq), target],
        [action, now, formatTimestamp(now), keepAttempts ? "1" : "0", mode, ...args],
      );
    let done = 0;
    let missing = 0;
    let skipped = 0;
    let tombstones = 0;
    const queues: Record<string, number> = {};
    const tally = ([d, m, s, t, ...perQueue]: [number, number, number, number, ...unknown[]]) => {
      done += d;
      missing += m;
      skipped += s;
      tombstones += t;
      for (let i = 0; i + 1 < perQueue.length; i += 2) {
        const queue = String(perQueue[i]);
        queues[queue] = (queues[queue] ?? 0) + Number(perQueue[i + 1]);
      }
    };
    let interrupted = false;
    try {
      if (!filtered) {
        // Everything (up to limit): pop from the head, O(batch) per call, no tombstones.
        const total = Math.min(await this.redis.llen(dlq), selection.limit ?? Infinity);
        let examined = 0;
        while (examined < total) {
          if (options.signal?.aborted) {
            interrupted = true;
            break;
          }
          const count = Math.min(batch, total - examined);
          const result = await call("pop", [count]);
          tally(result);
          examined += count;
          options.onProgress?.({ done, examined, total });
          if (result[0] + result[1] + result[2] === 0 && (await this.redis.llen(dlq)) === 0) break;
        }
      } else {
        for await (const page of this.select(selection, options.signal)) {
          for (let i = 0; i < page.entries.length; i += batch) {
            const chunk = page.entries.slice(i, i + batch);
            tally(
              await call(
                "index",
                chunk.flatMap((e) => [e.id, e.index]),
              ),
            );
          }
          options.onProgress?.({ done, examined: page.examined, total: page.total });
          if (options.signal?.aborted) break;
        }
        interrupted = options.signal?.aborted ?? false;
      }
    } finally {
      if (tombstones > 0) await compactDlq(this.redis, dlq);
    }
    return { selected: [], done, missing, skipped, interrupted, queues };
  }
}
