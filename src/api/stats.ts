import type { Redis } from "ioredis";
import { hashFromPairs } from "../store/job.js";
import { dayStatsKey, queueStatsKey } from "../store/keys.js";
import type { QueuesApi } from "./queues.js";

/** Outcome counters. `processed` = every finished attempt; `failedAttempts` = retried + failed. */
export interface Counters {
  readonly completed: number;
  /** Attempts that failed and were scheduled for another try. */
  readonly retried: number;
  /** Jobs that failed for good (moved to a DLQ). */
  readonly failed: number;
  readonly cancelled: number;
  /** Jobs not run because their `expires_at` passed before they started (rrqkit). */
  readonly expired: number;
  readonly processed: number;
  readonly failedAttempts: number;
}

/** One UTC day of {@link StatsApi.history}. */
export interface DayStats extends Counters {
  /** `YYYY-MM-DD` (UTC). */
  readonly date: string;
}

function counters(raw: Record<string, string> | string[] | null | undefined): Counters {
  const hash = Array.isArray(raw) ? hashFromPairs(raw) : (raw ?? {});
  const n = (field: string) => Number(hash[field] ?? 0) || 0;
  const completed = n("completed");
  const retried = n("retried");
  const failed = n("failed");
  return {
    completed,
    retried,
    failed,
    cancelled: n("cancelled"),
    expired: n("expired"),
    processed: completed + retried + failed,
    failedAttempts: retried + failed,
  };
}

const sum = (all: Counters[]): Counters =>
  counters(
    Object.fromEntries(
      (["completed", "retried", "failed", "cancelled", "expired"] as const).map((k) => [
        k,
        String(all.reduce((total, c) => total + c[k], 0)),
      ]),
    ),
  );

/**
 * Processed and failed totals and per-day history, from the counters rrqkit's scripts keep
 * (`rrq:stats:queue:<name>`, `rrq:stats:day:<YYYY-MM-DD>`; days are kept 400 days). Jobs that
 * RRQ's own orchestrator finishes are not counted.
 */
export class StatsApi {
  constructor(
    private readonly redis: Redis,
    private readonly queues: QueuesApi,
  ) {}

  /** Lifetime totals, overall and per queue. */
  async totals(): Promise<Counters & { byQueue: Record<string, Counters> }> {
    const names = await this.queues.names();
    const pipeline = this.redis.pipeline();
    for (const name of names) pipeline.hgetall(queueStatsKey(name));
    const replies = (await pipeline.exec()) ?? [];
    const byQueue: Record<string, Counters> = {};
    names.forEach((name, i) => {
      byQueue[name] = counters(replies[i]?.[1] as Record<string, string>);
    });
    return { ...sum(Object.values(byQueue)), byQueue };
  }

  /** The last `days` UTC days, today first. */
  async history(days = 7, now = Date.now()): Promise<DayStats[]> {
    const dates = Array.from({ length: Math.max(1, days) }, (_, i) =>
      new Date(now - i * 86_400_000).toISOString().slice(0, 10),
    );
    const pipeline = this.redis.pipeline();
    for (const date of dates) pipeline.hgetall(dayStatsKey(date));
    const replies = (await pipeline.exec()) ?? [];
    return dates.map((date, i) => ({
      date,
      ...counters(replies[i]?.[1] as Record<string, string>),
    }));
  }
}
