import type { Redis } from "ioredis";
import { formatTimestamp, parseTimestamp } from "./encoding.js";
import { hashFromPairs } from "./job.js";
import { activeKey, eventsKey, healthKey, jobKey, jobLockKey, Prefix, queueKey } from "./keys.js";
import { registerScripts, type ScriptCaller } from "./scripts.js";

/** A job claimed by {@link JobStore.claim}, with the hash as it was after the claim. */
export interface ClaimedJob {
  id: string;
  hash: Record<string, string>;
}

/** Result of a fenced write: written, not ours (another worker holds the job), or job gone. */
export type FencedWrite = "written" | "not_owner" | "gone";

const fenced = (code: number): FencedWrite =>
  code > 0 ? "written" : code === 0 ? "not_owner" : "gone";

/** The worker's Redis operations. Every multi-step change is one Lua script (src/store/lua). */
export class JobStore {
  readonly scripts: ScriptCaller;

  constructor(readonly redis: Redis) {
    this.scripts = registerScripts(redis);
  }

  /** Claims up to `max` ready jobs of one queue and returns them with their hashes. */
  async claim(
    queue: string,
    workerId: string,
    max: number,
    defaultLockMs: number,
    extensionSeconds: number,
  ): Promise<{ claimed: ClaimedJob[]; nextScore: number | undefined }> {
    const now = Date.now();
    const [flat, next] = await this.scripts.run<[Array<string | string[]>, string | null]>(
      this.redis,
      "claim-ready",
      [queue, activeKey(workerId)],
      [
        workerId,
        now,
        max,
        defaultLockMs,
        extensionSeconds,
        formatTimestamp(now),
        Math.floor(now / 1000),
      ],
    );
    const claimed: ClaimedJob[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      claimed.push({ id: flat[i] as string, hash: hashFromPairs(flat[i + 1] as string[]) });
    }
    return { claimed, nextScore: next == null ? undefined : Number(next) };
  }

  /** Records success (result, TTLs, events entry) and releases the job, if still ours. */
  async completeSuccess(
    jobId: string,
    workerId: string,
    resultJson: string,
    defaultTtlSeconds: number,
  ): Promise<FencedWrite> {
    const code = await this.scripts.run<number>(
      this.redis,
      "complete-success",
      [jobKey(jobId), eventsKey(jobId), activeKey(workerId), jobLockKey(jobId)],
      [jobId, workerId, resultJson, formatTimestamp(Date.now()), defaultTtlSeconds],
    );
    return fenced(code);
  }

  /** Schedules another attempt at `scoreMs`, if still ours; returns the write result. */
  async retry(
    jobId: string,
    queue: string,
    workerId: string,
    scoreMs: number,
    error: string,
  ): Promise<FencedWrite> {
    const code = await this.scripts.run<number>(
      this.redis,
      "retry-job",
      [jobKey(jobId), queueKey(queue), activeKey(workerId), jobLockKey(jobId)],
      [jobId, workerId, scoreMs, error, formatTimestamp(scoreMs)],
    );
    return fenced(code);
  }

  /**
   * Moves a job to a DLQ list, if still ours (`workerId` "" skips the check, for quarantining
   * a hash this worker could not parse). `countAttempt` increments current_retries first.
   */
  async moveToDlq(
    jobId: string,
    dlq: string,
    workerId: string,
    error: string,
    countAttempt: boolean,
    activeOf = workerId,
  ): Promise<FencedWrite> {
    const code = await this.scripts.run<number>(
      this.redis,
      "move-to-dlq",
      [jobKey(jobId), eventsKey(jobId), dlq, activeKey(activeOf), jobLockKey(jobId)],
      [jobId, workerId, error, formatTimestamp(Date.now()), countAttempt ? "1" : "0"],
    );
    return fenced(code);
  }

  /** Gives a claimed job back to its queue without counting an attempt. */
  async release(
    jobId: string,
    queue: string,
    workerId: string,
    message: string,
    scoreMs = Date.now(),
  ): Promise<FencedWrite> {
    const code = await this.scripts.run<number>(
      this.redis,
      "release-claim",
      [jobKey(jobId), queueKey(queue), activeKey(workerId), jobLockKey(jobId)],
      [jobId, workerId, scoreMs, message],
    );
    return fenced(code);
  }

  /** Writes the worker's health record with a TTL. */
  async writeHealth(workerId: string, payload: object, ttlSeconds: number): Promise<void> {
    await this.redis.set(healthKey(workerId), JSON.stringify(payload), "EX", ttlSeconds);
  }

  /** Worker ids that have an active-jobs set (SCAN, COUNT 100; never blocks Redis). */
  async workersWithActiveSets(): Promise<string[]> {
    const ids: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.scan(
        cursor,
        "MATCH",
        `${Prefix.active}*`,
        "COUNT",
        100,
      );
      cursor = next;
      for (const key of keys) ids.push(key.slice(Prefix.active.length));
    } while (cursor !== "0");
    return ids;
  }

  /** Seconds left on a worker's health key (≤ 0 or -2 when dead). */
  healthTtl(workerId: string): Promise<number> {
    return this.redis.ttl(healthKey(workerId));
  }

  /** Job ids in a worker's active set. */
  activeJobs(workerId: string, limit = 1000): Promise<string[]> {
    return this.redis.zrange(activeKey(workerId), 0, limit - 1);
  }

  /**
   * Puts one job of a dead worker back in its queue (see recover-orphan-3.lua). Returns the
   * script's verdict: locked, missing, queued, recovered or terminal.
   */
  async recoverOrphan(jobId: string, deadWorkerId: string, defaultQueue: string): Promise<string> {
    const [queueName, nextRun] = await this.redis.hmget(
      jobKey(jobId),
      "queue_name",
      "next_scheduled_run_time",
    );
    const now = Date.now();
    const scheduled = nextRun ? parseTimestamp(nextRun) : undefined;
    const score = scheduled ?? now;
    return this.scripts.run<string>(
      this.redis,
      "recover-orphan",
      [jobKey(jobId), activeKey(deadWorkerId), jobLockKey(jobId)],
      [jobId, queueKey(queueName || defaultQueue), score, formatTimestamp(score)],
    );
  }

  /** The job hash, or undefined when it does not exist. */
  async getJobHash(jobId: string): Promise<Record<string, string> | undefined> {
    const hash = await this.redis.hgetall(jobKey(jobId));
    return Object.keys(hash).length === 0 ? undefined : hash;
  }
}
