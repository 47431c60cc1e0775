import type { Redis } from "ioredis";
import { hashFromPairs } from "../store/job.js";
import { jobKey, LEASES_KEY, Prefix, QUEUES_KEY, queueKey, queueStatsKey } from "../store/keys.js";
import { currentDlqSummary } from "./dlq-summary.js";
import type { FlowApi, PausedInfo } from "./flow.js";
import { sameQueue, type JobView } from "./records.js";
import { jobViewsInOrder, scanKeys } from "./scan.js";
import type { ApiSettings } from "./settings.js";

/** One queue as `rrq queue list` shows it. Scores are run-at times in epoch ms. */
export interface QueueSummary {
  /** The full queue key. */
  readonly name: string;
  /** Jobs in the ZSET (ZCARD): ready, deferred and waiting retries alike (RRQ's "Pending"). */
  readonly pending: number;
  /** Jobs whose run-at time has come (ZCOUNT -inf now). */
  readonly ready: number;
  readonly oldestScore: number | undefined;
  readonly newestScore: number | undefined;
  /** How long the oldest ready job has waited, in ms (0 when none is ready). */
  readonly latencyMs: number;
  /** The queue's pause (flow control), or null when workers claim from it. */
  readonly paused: PausedInfo | null;
  /**
   * Jobs of this queue parked by flow control (waiting for a concurrency slot, their session's
   * turn or a circuit breaker): PENDING but not in the ZSET, so not in `pending`. Approximate.
   */
  readonly parked: number;
}

/** One row of `rrq queue stats`. */
export interface QueueStats {
  readonly name: string;
  /** pending + active + completed + failed (RRQ's sum). */
  readonly total: number;
  readonly pending: number;
  readonly active: number;
  readonly completed: number;
  readonly failed: number;
  readonly retried: number;
  readonly cancelled: number;
  /** Entries of the default DLQ that belong to this queue. */
  readonly dlq: number;
  /** Mean wait of the first 100 entries (now − score), in seconds; undefined when empty. */
  readonly avgWaitSeconds: number | undefined;
}

/** Up to this many keys, queue stats count job hashes (RRQ's way) unless told otherwise. */
export const STATS_SCAN_LIMIT = 10_000;

/** Where queue stats' Active/Completed/Failed came from. */
export type StatsSource = { kind: "counters" } | { kind: "scan"; maxScan: number; scanned: number };

/** One entry of a queue page (`rrq queue inspect`). */
export interface QueueEntry {
  readonly id: string;
  readonly score: number;
  /** Undefined when the job hash is gone (a stale entry). */
  readonly job: JobView | undefined;
}

/**
 * Queues: discovery, sizes, latency, per-status counts and paged contents. Nothing here walks
 * the job keyspace unless asked to (`discover({ scan: true })`, `stats({ maxScan })`).
 */
export class QueuesApi {
  constructor(
    private readonly redis: Redis,
    private readonly settings: ApiSettings,
    private readonly flow?: FlowApi,
  ) {}

  /**
   * Queue keys: the `rrq:queues` registry (rrqkit producers, workers and the CLI add to it) plus
   * the queues the configuration names. When the registry does not exist yet (only RRQ's own
   * components have written), or with `scan`, the keyspace is SCANned for `rrq:queue:*` once
   * and the registry is filled from it.
   */
  async names(options: { scan?: boolean } = {}): Promise<string[]> {
    let registered = await this.redis.smembers(QUEUES_KEY);
    if (options.scan || registered.length === 0) {
      const found = new Set<string>();
      for await (const keys of scanKeys(this.redis, `${Prefix.queue}*`)) {
        for (const key of keys) found.add(key);
      }
      if (found.size > 0) await this.redis.sadd(QUEUES_KEY, ...found);
      registered = [...new Set([...registered, ...found])];
    }
    return [...new Set([...registered, ...this.settings.knownQueues].map(queueKey))].sort();
  }

  /**
   * Sizes, latency, pause and parked count of every known queue. Empty ones are listed only with
   * `includeEmpty`, unless paused or holding parked jobs (an operator wants to see those).
   */
  async list(
    options: {
      includeEmpty?: boolean;
      scan?: boolean;
      now?: number;
    } = {},
  ): Promise<QueueSummary[]> {
    const known = await this.names(options);
    const [paused, parked] = await Promise.all([
      this.flow?.pausedQueues() ?? new Map<string, PausedInfo>(),
      this.flow?.parkedCounts() ?? new Map<string, number>(),
    ]);
    // a queue paused before anything was enqueued to it is a queue the operator named
    const names = [...new Set([...known, ...paused.keys(), ...parked.keys()])].sort();
    const now = options.now ?? Date.now();
    const pipeline = this.redis.pipeline();
    for (const name of names) {
      pipeline.zcard(name);
      pipeline.zcount(name, "-inf", now);
      pipeline.zrange(name, 0, 0, "WITHSCORES");
      pipeline.zrange(name, -1, -1, "WITHSCORES");
    }
    const replies = (await pipeline.exec()) ?? [];
    const rows: QueueSummary[] = [];
    names.forEach((name, i) => {
      const part = replies.slice(i * 4, i * 4 + 4);
      if (part.some(([error]) => error)) return; // not a ZSET: not a queue
      const [pending, ready, oldest, newest] = part.map(([, value]) => value) as [
        number,
        number,
        string[],
        string[],
      ];
      const pause = paused.get(name) ?? null;
      const held = parked.get(name) ?? 0;
      if (pending === 0 && held === 0 && pause === null && !options.includeEmpty) return;
      const oldestScore = oldest[1] === undefined ? undefined : Number(oldest[1]);
      rows.push({
        name,
        pending,
        ready,
        oldestScore,
        newestScore: newest[1] === undefined ? undefined : Number(newest[1]),
        latencyMs: ready > 0 && oldestScore !== undefined ? Math.max(0, now - oldestScore) : 0,
        paused: pause,
        parked: held,
      });
    });
    return rows;
  }

  /** Whether the queue's ZSET exists. */
  async exists(name: string): Promise<boolean> {
    return (await this.redis.exists(queueKey(name))) === 1;
  }

  /**
   * Whether a queue is known although its ZSET may be empty (Redis drops an empty ZSET, so
   * EXISTS cannot tell an idle queue from a typo): registered in `rrq:queues`, named by the
   * configuration, or paused; and how many of its jobs are running now (holding an rrqkit lease;
   * jobs run by RRQ's own orchestrator hold none and are not counted).
   */
  async presence(name: string): Promise<{ known: boolean; running: number }> {
    const key = queueKey(name);
    const registered = await this.redis.sismember(QUEUES_KEY, key);
    const configured = this.settings.knownQueues.map(queueKey).includes(key);
    const running = (await this.activeByQueue()).get(key) ?? 0;
    const paused = (await this.flow?.pausedInfo(key)) !== undefined;
    return { known: registered === 1 || configured || running > 0 || paused, running };
  }

  /** Entries `offset … offset + limit − 1` by score (oldest first), with their jobs. */
  async page(
    name: string,
    options: { offset?: number; limit?: number } = {},
  ): Promise<{ total: number; entries: QueueEntry[] }> {
    const key = queueKey(name);
    const offset = Math.max(0, options.offset ?? 0);
    const limit = Math.max(1, options.limit ?? 20);
    const [[, total], [, flat]] = (await this.redis
      .multi()
      .zcard(key)
      .zrange(key, offset, offset + limit - 1, "WITHSCORES")
      .exec()) as [[unknown, number], [unknown, string[]]];
    const ids: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      ids.push(flat[i]!);
      scores.push(Number(flat[i + 1]));
    }
    const jobs = await jobViewsInOrder(this.redis, ids);
    return { total, entries: ids.map((id, i) => ({ id, score: scores[i]!, job: jobs[i] })) };
  }

  /**
   * Per-status counts. Pending is ZCARD and DLQ comes from the default DLQ's summary, always.
   * Active, Completed and Failed come from one of two sources:
   * - "scan" (RRQ's method): job hashes counted by status over the first `maxScan` job keys SCAN
   *   returns (0 = all). Exact "jobs present now" semantics, O(jobs).
   * - "counters": Active counts rrqkit leases (`rrq:leases`); Completed and Failed are rrqkit's
   *   per-queue lifetime counters (`rrq:stats:queue:<name>`). O(queues + running jobs), but
   *   jobs RRQ's own orchestrator finished are not counted.
   * `maxScan` selects "scan"; otherwise "auto" (the default) scans every job when the database
   * has at most {@link STATS_SCAN_LIMIT} keys and uses the counters above that.
   */
  async stats(
    options: {
      queues?: readonly string[];
      maxScan?: number;
      mode?: "auto" | "counters" | "scan";
      now?: number;
    } = {},
  ): Promise<{ rows: QueueStats[]; source: StatsSource }> {
    const names = options.queues?.length
      ? [...new Set(options.queues.map(queueKey))].sort()
      : await this.names();
    const now = options.now ?? Date.now();
    let maxScan = options.maxScan;
    if (maxScan === undefined && options.mode === "scan") maxScan = 0;
    if (maxScan === undefined && (options.mode ?? "auto") === "auto")
      maxScan = (await this.redis.dbsize()) <= STATS_SCAN_LIMIT ? 0 : undefined;
    const scanned = maxScan === undefined ? undefined : await this.scanCounts(names, maxScan);
    const active = scanned ? undefined : await this.activeByQueue();
    const dlq = await this.dlqByQueue();
    const pipeline = this.redis.pipeline();
    for (const name of names) {
      pipeline.zcard(name);
      pipeline.hgetall(queueStatsKey(name));
      pipeline.zrange(name, 0, 99, "WITHSCORES");
    }
    const replies = (await pipeline.exec()) ?? [];
    const rows: QueueStats[] = [];
    names.forEach((name, i) => {
      const [[e1, pending], [e2, counters], [e3, head]] = replies.slice(i * 3, i * 3 + 3) as [
        [Error | null, number],
        [Error | null, Record<string, string> | string[]],
        [Error | null, string[]],
      ];
      if (e1 || e2 || e3) return;
      const c = Array.isArray(counters) ? hashFromPairs(counters) : counters;
      const counted = scanned?.counts.get(name);
      const row = {
        name,
        pending,
        active: counted ? counted.active : (active?.get(name) ?? 0),
        completed: counted ? counted.completed : Number(c.completed ?? 0),
        failed: counted ? counted.failed : Number(c.failed ?? 0),
        retried: Number(c.retried ?? 0),
        cancelled: Number(c.cancelled ?? 0),
        dlq: [...dlq].filter(([queue]) => sameQueue(queue, name)).reduce((n, [, k]) => n + k, 0),
        avgWaitSeconds: averageWait(head, now),
      };
      const total = row.pending + row.active + row.completed + row.failed;
      if (total > 0) rows.push({ ...row, total });
    });
    const source: StatsSource = scanned
      ? { kind: "scan", maxScan: maxScan!, scanned: scanned.scanned }
      : { kind: "counters" };
    return { rows, source };
  }

  /** Jobs holding an rrqkit lease, by queue (the lease index is as large as the fleet's load). */
  private async activeByQueue(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const ids = await this.redis.zrange(LEASES_KEY, 0, -1);
    for (let i = 0; i < ids.length; i += 1000) {
      const pipeline = this.redis.pipeline();
      for (const id of ids.slice(i, i + 1000)) pipeline.hget(jobKey(id), "queue_name");
      for (const [, queue] of (await pipeline.exec()) ?? []) {
        if (typeof queue !== "string" || queue === "") continue;
        const key = queueKey(queue);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    return counts;
  }

  private async dlqByQueue(): Promise<Map<string, number>> {
    const { hash } = await currentDlqSummary(this.redis, this.settings.defaultDlqName);
    const counts = new Map<string, number>();
    for (const [field, value] of Object.entries(hash))
      if (field.startsWith("q:")) counts.set(field.slice(2), Number(value));
    return counts;
  }

  /** RRQ's method: statuses of the first `maxScan` job hashes SCAN returns (0 = all). */
  private async scanCounts(
    names: readonly string[],
    maxScan: number,
  ): Promise<{
    counts: Map<string, { active: number; completed: number; failed: number }>;
    scanned: number;
  }> {
    const counts = new Map(names.map((n) => [n, { active: 0, completed: 0, failed: 0 }]));
    let scanned = 0;
    scan: for await (const keys of scanKeys(this.redis, `${Prefix.job}*`, { count: 200 })) {
      const batch = maxScan > 0 ? keys.slice(0, maxScan - scanned) : keys;
      const pipeline = this.redis.pipeline();
      for (const key of batch) pipeline.hmget(key, "queue_name", "status");
      for (const [, reply] of (await pipeline.exec()) ?? []) {
        const [queue, status] = (reply ?? []) as Array<string | null>;
        const row = queue ? counts.get(queueKey(queue)) : undefined;
        const kind = status?.toLowerCase();
        if (row && (kind === "active" || kind === "completed" || kind === "failed")) row[kind]++;
      }
      scanned += batch.length;
      if (maxScan > 0 && scanned >= maxScan) break scan;
    }
    return { counts, scanned };
  }
}

/** RRQ's Avg Wait: mean of now − score over the given WITHSCORES entries, in seconds. */
function averageWait(flat: string[], now: number): number | undefined {
  const scores: number[] = [];
  for (let i = 1; i < flat.length; i += 2) scores.push(Number(flat[i]));
  if (scores.length === 0) return undefined;
  return scores.reduce((sum, s) => sum + (now - s) / 1000, 0) / scores.length;
}
