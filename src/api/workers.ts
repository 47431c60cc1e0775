import type { Redis } from "ioredis";
import { activeKey, healthKey, Prefix } from "../store/keys.js";
import type { JobView } from "./records.js";
import { jobViewsInOrder, scanKeys } from "./scan.js";

/** A worker's health record (`rrq:health:worker:<id>`, RRQ's payload). */
export interface WorkerHealth {
  readonly id: string;
  /** Seconds left on the record; it disappears when the worker stops heartbeating. */
  readonly ttlSeconds: number;
  /** The parsed payload, or undefined when the key vanished or does not hold a JSON object. */
  readonly health: Readonly<Record<string, unknown>> | undefined;
}

/** One job in a worker's active set, with its claim time (epoch seconds, RRQ's score). */
export interface ActiveJob {
  readonly id: string;
  readonly claimedAt: number;
  readonly job: JobView | undefined;
}

/** Workers: their health records and the jobs each is running. */
export class WorkersApi {
  constructor(private readonly redis: Redis) {}

  /**
   * Worker ids with a health key, found as RRQ finds them: a SCAN for `rrq:health:worker:*`
   * (non-blocking; proportional to the number of keys, not of workers).
   */
  async ids(): Promise<string[]> {
    const ids = new Set<string>();
    for await (const keys of scanKeys(this.redis, `${Prefix.health}*`))
      for (const key of keys) ids.add(key.slice(Prefix.health.length));
    return [...ids].sort();
  }

  /** Every worker's health record (RRQ's `check`). */
  async list(): Promise<WorkerHealth[]> {
    const ids = await this.ids();
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.get(healthKey(id)).ttl(healthKey(id));
    const replies = (await pipeline.exec()) ?? [];
    const workers: WorkerHealth[] = [];
    ids.forEach((id, i) => {
      const raw = replies[i * 2]?.[1] as string | null;
      const ttl = replies[i * 2 + 1]?.[1] as number;
      if (raw === null && ttl === -2) return; // expired since it was listed
      let health: Record<string, unknown> | undefined;
      try {
        const parsed: unknown = raw === null ? undefined : JSON.parse(raw);
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
          health = parsed as Record<string, unknown>;
      } catch {
        // RRQ reports such a record as "Health data missing"
      }
      workers.push({ id, ttlSeconds: ttl > 0 ? ttl : 0, health });
    });
    return workers;
  }

  /** The jobs in a worker's active set (`rrq:active:jobs:<id>`), oldest claim first. */
  async activeJobs(workerId: string, limit = 1000): Promise<ActiveJob[]> {
    const flat = await this.redis.zrange(activeKey(workerId), 0, limit - 1, "WITHSCORES");
    const ids: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      ids.push(flat[i]!);
      scores.push(Number(flat[i + 1]));
    }
    const jobs = await jobViewsInOrder(this.redis, ids);
    return ids.map((id, i) => ({ id, claimedAt: scores[i]!, job: jobs[i] }));
  }
}
