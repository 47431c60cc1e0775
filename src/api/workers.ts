import type { Redis } from "ioredis";
import { reportedStatus } from "../orchestrator/heartbeat.js";
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
  /** The record's `implementation` (rrqkit writes "rrqkit"; RRQ 0.11 writes none). */
  readonly implementation: string | undefined;
  /** The record's `version` (rrqkit's package version; RRQ 0.11 writes none). */
  readonly version: string | undefined;
  /**
   * The record's status, made consistent with its active count: "idle (no jobs)" beside running
   * jobs (what RRQ's loop writes, and earlier rrqkit builds did) reads "running".
   */
  readonly status: string | undefined;
}

/** How `rrq check` names a worker whose record has no `implementation`. */
export const UNKNOWN_IMPLEMENTATION = "rrq (RRQ 0.11 or unknown)";

/** `rrqkit 0.1.0`, or {@link UNKNOWN_IMPLEMENTATION} for a record without the field. */
export function implementationLabel(worker: WorkerHealth): string {
  if (!worker.implementation) return UNKNOWN_IMPLEMENTATION;
  return worker.version ? `${worker.implementation} ${worker.version}` : worker.implementation;
}

const stringField = (health: Readonly<Record<string, unknown>> | undefined, key: string) =>
  typeof health?.[key] === "string" ? health[key] : undefined;

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

  /**
   * Every worker's health record (RRQ's `check`); with `known`, the records of those ids only
   * (no SCAN: the dashboard keeps its own cached list).
   */
  async list(known?: readonly string[]): Promise<WorkerHealth[]> {
    const ids = known ?? (await this.ids());
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
      const status = stringField(health, "status");
      const active = Number(health?.active_jobs) || 0;
      workers.push({
        id,
        ttlSeconds: ttl > 0 ? ttl : 0,
        health,
        implementation: stringField(health, "implementation"),
        version: stringField(health, "version"),
        status: status === undefined ? undefined : reportedStatus(status, active),
      });
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
