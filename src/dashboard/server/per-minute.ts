import type { Redis } from "ioredis";
import { minuteStatsKey, RECENT_KEY } from "../../store/keys.js";

/** One minute of the overview's chart (`t`: the minute's start, epoch ms). */
export interface MinuteRow {
  readonly t: number;
  completed: number;
  failed: number;
  /** From `rrq:stats:minute:<minute>` (retry-job-5.lua): retries are not in the feed. */
  retried: number;
  cancelled: number;
}

const MINUTE = 60_000;
/** Feed entries read per call, at most (the feed holds about 10,000). */
const READ_LIMIT = 10_000;

/**
 * Jobs finished per minute over the last hour, counted from the `rrq:recent` feed's entry ids
 * (their millisecond times): approximate, since the feed is capped at about 10,000 entries. The
 * counts are kept between calls and each call reads only the entries added since the last one,
 * so a live overview costs O(new entries), not O(feed). A feed that went backwards (deleted,
 * flushed) is counted again from scratch.
 */
export class PerMinuteCounter {
  private rows = new Map<number, MinuteRow>();
  private lastId: string | undefined;
  /** Reads run one at a time, so no entry is counted twice. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly redis: Redis) {}

  /** The 60 minutes ending with the current one, oldest first. */
  read(now = Date.now()): Promise<MinuteRow[]> {
    const next = this.queue.then(() => this.readNow(now));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async readNow(now: number): Promise<MinuteRow[]> {
    const first = Math.floor(now / MINUTE) * MINUTE - 59 * MINUTE;
    if (this.lastId !== undefined) {
      const [newest] = await this.redis.xrevrange(RECENT_KEY, "+", "-", "COUNT", 1);
      if (!newest || compareIds(newest[0], this.lastId) < 0) this.reset();
    }
    const start = this.lastId === undefined ? String(first) : nextId(this.lastId);
    const entries = await this.redis.xrange(RECENT_KEY, start, "+", "COUNT", READ_LIMIT);
    for (const [id, fields] of entries) {
      this.lastId = id;
      const t = Math.floor(Number(id.split("-")[0]) / MINUTE) * MINUTE;
      if (t < first) continue;
      let row = this.rows.get(t);
      if (!row) this.rows.set(t, (row = { t, completed: 0, failed: 0, retried: 0, cancelled: 0 }));
      let status = "";
      let count = 0;
      for (let i = 0; i + 1 < fields.length; i += 2) {
        if (fields[i] === "s") status = fields[i + 1]!;
        else if (fields[i] === "j") count = 1;
        else if (fields[i] === "js") count = countIds(fields[i + 1]!);
      }
      if (status === "COMPLETED") row.completed += count;
      else if (status === "FAILED") row.failed += count;
      else if (status === "CANCELLED") row.cancelled += count;
    }
    for (const t of this.rows.keys()) if (t < first) this.rows.delete(t);
    const retried = await this.retriedPerMinute(first);
    return Array.from({ length: 60 }, (_, i) => {
      const t = first + i * MINUTE;
      const row = this.rows.get(t) ?? { t, completed: 0, failed: 0, retried: 0, cancelled: 0 };
      return { ...row, retried: retried[i] ?? 0 };
    });
  }

  /** The retry counters of the 60 minutes from `first` (one pipeline of 60 HGETs). */
  private async retriedPerMinute(first: number): Promise<number[]> {
    const pipeline = this.redis.pipeline();
    for (let i = 0; i < 60; i++) pipeline.hget(minuteStatsKey(first + i * MINUTE), "retried");
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([error, value]) => (error ? 0 : Number(value) || 0));
  }

  private reset(): void {
    this.rows = new Map();
    this.lastId = undefined;
  }
}

/** Stream id order (`ms-seq`). */
function compareIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am - bm || as - bs;
}

/** The smallest id after `id` (an exclusive start that works before Redis 6.2's `(id`). */
function nextId(id: string): string {
  const [ms, seq] = id.split("-");
  return `${ms}-${Number(seq ?? 0) + 1}`;
}

function countIds(text: string): number {
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.length : 0;
  } catch {
    return 0;
  }
}
