import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { localClock, type Clock } from "../clock/redis-clock.js";
import { CompletionBatcher } from "./completion-batch.js";
import { formatTimestamp, parseTimestamp } from "./encoding.js";
import { hashFromPairs } from "./job.js";
import {
  activeKey,
  dlqKey,
  eventsKey,
  healthKey,
  jobKey,
  jobLockKey,
  LEASES_KEY,
  ORPHAN_SCAN_KEY,
  pausedKey,
  Prefix,
  queueKey,
} from "./keys.js";
import { registerScripts, type ScriptCaller } from "./scripts.js";

/** The error type and (capped) traceback stored beside a new last_error; null = none. */
export interface ErrorDetail {
  type: string | null;
  traceback: string | null;
}

const NO_DETAIL: ErrorDetail = { type: null, traceback: null };

/** The script arguments of an {@link ErrorDetail}: "" for none. */
const detailArgs = (d: ErrorDetail): string[] => [d.type ?? "", d.traceback ?? ""];

/** A job claimed by {@link JobStore.claim}, with the hash as it was after the claim. */
export interface ClaimedJob {
  id: string;
  hash: Record<string, string>;
}

/** What {@link JobStore.claim} returns. */
export interface ClaimResult {
  claimed: ClaimedJob[];
  /** Score of the queue's first remaining entry (undefined: empty or paused-and-empty). */
  nextScore: number | undefined;
  /**
   * Jobs this call parked (cap, session, breaker) or re-scored to a later rate slot: the queue
   * is not drained even when `claimed` is short.
   */
  parked: number;
  /** The queue is paused (`rrq:paused:<queue>`): nothing was claimed or touched. */
  paused: boolean;
  /** `limit_name`s unknown to this flow config (they were held to cap 1). */
  unknownLimits: string[];
}

/** claim-ready-4.lua's reply: claimed JSON, next score, parked, paused 0/1, unknown limits JSON or "". */
type ClaimReply = [string, string | null, number?, number?, string?];

/** Identifies one attempt for fenced writes: the worker and the fence its claim received. */
export interface AttemptRef {
  jobId: string;
  workerId: string;
  fence: string;
}

/** Result of a fenced write: written, not ours (another attempt holds the job), or job gone. */
export type FencedWrite = "written" | "not_owner" | "gone";

/** What recovering one job did (see recover-job-3.lua). */
export type RecoveryVerdict = "locked" | "missing" | "terminal" | "queued" | "recovered" | "poison";

/** How long a failed claim's token is reused: under the 60 s its jobs are kept for. */
const UNANSWERED_CLAIM_REUSE_MS = 50_000;

/** Script codes: > 0 written (2: already written by this attempt, a re-sent call), 0, -1. */
const fenced = (code: number): FencedWrite =>
  code > 0 ? "written" : code === 0 ? "not_owner" : "gone";

/** The worker's Redis operations. Every multi-step change is one Lua script (src/store/lua). */
export class JobStore {
  readonly scripts: ScriptCaller;
  private readonly completions: CompletionBatcher;
  /** Tokens of claim calls that failed, by "<worker> <queue>" (see claimToken). */
  private readonly unansweredClaims = new Map<string, { value: string; at: number }>();

  /**
   * @param clock where every time others compare comes from (lease expiries, queue scores, the
   * ready cut-off): the worker passes its Redis clock; the local clock by default.
   */
  constructor(
    readonly redis: Redis,
    readonly clock: Clock = localClock,
  ) {
    this.scripts = registerScripts(redis);
    this.completions = new CompletionBatcher(redis, this.scripts, clock);
  }

  /**
   * Claims up to `max` ready jobs of one queue with a lease each, and returns their hashes
   * (claim-ready-4.lua). `flowConfig` is the queue's flow-control JSON (src/flow/flow-config.ts;
   * "" or absent: none configured): jobs held by a cap, a session, a start rate or a breaker are
   * parked or re-scored instead of claimed and counted in `parked`; a paused queue claims
   * nothing and answers `paused`; `unknownLimits` names `limit_name`s the config lacks (they ran
   * with cap 1).
   */
  async claim(
    queue: string,
    workerId: string,
    max: number,
    leaseMs: number,
    flowConfig?: string,
  ): Promise<ClaimResult> {
    const now = this.clock.now();
    const token = this.claimToken(`${workerId} ${queue}`);
    let reply: ClaimReply;
    try {
      reply = await this.scripts.run<ClaimReply>(
        this.redis,
        "claim-ready",
        [queue, activeKey(workerId), LEASES_KEY, pausedKey(queue)],
        [
          workerId,
          now,
          max,
          Math.round(leaseMs),
          formatTimestamp(now),
          Math.floor(now / 1000),
          token.value,
          flowConfig ?? "",
        ],
      );
    } catch (error) {
      token.keep();
      throw error;
    }
    const [json, next, parked, paused, unknown] = reply;
    const flat = JSON.parse(json) as Array<string | string[]>;
    const claimed: ClaimedJob[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      claimed.push({ id: flat[i] as string, hash: hashFromPairs(flat[i + 1] as string[]) });
    }
    return {
      claimed,
      nextScore: next == null ? undefined : Number(next),
      parked: Number(parked ?? 0),
      paused: Number(paused ?? 0) === 1,
      unknownLimits: unknown ? (JSON.parse(unknown) as string[]) : [],
    };
  }

  /**
   * The token of a claim call (claim-ready-4.lua keeps a call's jobs under it for 60 s, and a
   * second run with it returns them instead of claiming more). ioredis re-sends a call whose
   * reply a dropped connection lost, with the same token; a call that failed instead (a command
   * timeout, or Redis away) may still have run, so its token is handed to the next claim of the
   * same worker and queue, which then gets those jobs rather than leaving them stranded until
   * their lease expires. A kept token goes to one call only, so two claims never share one.
   */
  private claimToken(key: string): { value: string; keep(): void } {
    const kept = this.unansweredClaims.get(key);
    this.unansweredClaims.delete(key);
    const fresh = !kept || Date.now() - kept.at > UNANSWERED_CLAIM_REUSE_MS;
    const entry = fresh ? { value: randomUUID(), at: Date.now() } : kept;
    return {
      value: entry.value,
      keep: () => {
        if (!this.unansweredClaims.has(key)) this.unansweredClaims.set(key, entry);
      },
    };
  }

  /** Extends the leases of running attempts; returns the fences of attempts that lost their job. */
  async renewLeases(
    workerId: string,
    leaseMs: number,
    attempts: ReadonlyArray<{ jobId: string; fence: string }>,
  ): Promise<string[]> {
    if (attempts.length === 0) return [];
    const pairs = attempts.flatMap((a) => [a.jobId, a.fence]);
    return this.scripts.run<string[]>(
      this.redis,
      "renew-leases",
      [LEASES_KEY, activeKey(workerId)],
      [workerId, this.clock.now(), Math.round(leaseMs), ...pairs],
    );
  }

  /**
   * Records success (result, TTLs, events entry) and releases the job, if still ours. The
   * successes of one event-loop turn share one script call (see {@link CompletionBatcher});
   * {@link completeSuccessOne} is the one-job script with the same checks and writes.
   */
  completeSuccess(
    a: AttemptRef,
    resultJson: string,
    defaultTtlSeconds: number,
  ): Promise<FencedWrite> {
    // the batch's promise itself, mapped to a FencedWrite by the batcher (one async layer less
    // per job)
    return this.completions.complete(a.workerId, a.jobId, a.fence, resultJson, defaultTtlSeconds);
  }

  /** {@link completeSuccess} as its own script call (complete-success-5.lua). */
  async completeSuccessOne(
    a: AttemptRef,
    resultJson: string,
    defaultTtlSeconds: number,
  ): Promise<FencedWrite> {
    return fenced(
      await this.completions.completeAlone(
        a.workerId,
        a.jobId,
        a.fence,
        resultJson,
        defaultTtlSeconds,
      ),
    );
  }

  /**
   * Schedules another attempt at `scoreMs`, if still ours. `detail` becomes last_error_type and
   * last_error_traceback (removed when null) and run_<k>_error_type.
   */
  async retry(
    a: AttemptRef,
    queue: string,
    scoreMs: number,
    error: string,
    detail: ErrorDetail = NO_DETAIL,
  ): Promise<FencedWrite> {
    const code = await this.scripts.run<number>(
      this.redis,
      "retry-job",
      [jobKey(a.jobId), queueKey(queue), activeKey(a.workerId), jobLockKey(a.jobId), LEASES_KEY],
      [
        a.jobId,
        a.workerId,
        a.fence,
        scoreMs,
        error,
        formatTimestamp(scoreMs),
        ...detailArgs(detail),
      ],
    );
    return fenced(code);
  }

  /**
   * A handler snoozed: the job runs again at `scoreMs` with status PENDING, without counting an
   * attempt (current_retries unchanged, `snoozes` + 1, run_<k>_outcome=snoozed), if still ours
   * (snooze-job-5.lua).
   */
  async snooze(a: AttemptRef, queue: string, scoreMs: number): Promise<FencedWrite> {
    const code = await this.scripts.run<number>(
      this.redis,
      "snooze-job",
      [jobKey(a.jobId), queueKey(queue), activeKey(a.workerId), jobLockKey(a.jobId), LEASES_KEY],
      [a.jobId, a.workerId, a.fence, scoreMs, formatTimestamp(scoreMs)],
    );
    return fenced(code);
  }

  /**
   * Moves a job to a DLQ list, if still ours; `countAttempt` increments current_retries first.
   * `detail` is written as for {@link retry}. `dlqMaxJobs` > 0 trims the list's oldest entries
   * beyond that many (the config's `dlq_max_jobs`; 0: no cap).
   */
  async moveToDlq(
    a: AttemptRef,
    dlq: string,
    error: string,
    countAttempt: boolean,
    detail: ErrorDetail = NO_DETAIL,
    dlqMaxJobs = 0,
  ): Promise<FencedWrite> {
    return this.fail(a, dlq, error, countAttempt, detail, "dlq", dlqMaxJobs);
  }

  /**
   * Ends a claimed job whose `expires_at` has passed, if still ours: FAILED with `error` and
   * last_error_type `expired`, pushed to no DLQ, no attempt counted, counted as `expired` in
   * the stats (move-to-dlq-6.lua in "expire" mode).
   */
  async expire(a: AttemptRef, error: string): Promise<FencedWrite> {
    // The DLQ key is unused in expire mode; the default one keeps the key count.
    const detail = { type: "expired", traceback: null };
    return this.fail(a, dlqKey("default"), error, false, detail, "expire", 0);
  }

  private async fail(
    a: AttemptRef,
    dlq: string,
    error: string,
    countAttempt: boolean,
    detail: ErrorDetail,
    mode: "dlq" | "expire",
    dlqMaxJobs: number,
  ): Promise<FencedWrite> {
    const code = await this.scripts.run<number>(
      this.redis,
      "move-to-dlq",
      [
        jobKey(a.jobId),
        eventsKey(a.jobId),
        dlq,
        activeKey(a.workerId),
        jobLockKey(a.jobId),
        LEASES_KEY,
      ],
      [
        a.jobId,
        a.workerId,
        a.fence,
        error,
        formatTimestamp(this.clock.now()),
        countAttempt ? "1" : "0",
        ...detailArgs(detail),
        mode,
        String(Math.max(0, Math.floor(dlqMaxJobs))),
      ],
    );
    return fenced(code);
  }

  /** Gives a claimed job back to its queue without counting an attempt, if still ours. */
  async release(
    a: AttemptRef,
    queue: string,
    message: string,
    scoreMs = this.clock.now(),
  ): Promise<FencedWrite> {
    const code = await this.scripts.run<number>(
      this.redis,
      "release-claim",
      [jobKey(a.jobId), queueKey(queue), activeKey(a.workerId), jobLockKey(a.jobId), LEASES_KEY],
      [a.jobId, a.workerId, a.fence, scoreMs, message],
    );
    return fenced(code);
  }

  /** Ids of jobs whose lease expired at or before `nowMs` (oldest first). */
  expiredLeases(nowMs: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(LEASES_KEY, "-inf", nowMs, "LIMIT", 0, limit);
  }

  /**
   * Puts a job whose holder is gone back in its queue (see recover-job-3.lua). `holder` is the
   * dead worker whose active set listed it, or undefined to use the hash's worker_id.
   */
  async recoverJob(
    jobId: string,
    recoverer: string,
    holder: string | undefined,
    options: { defaultQueue: string; maxRecoveries: number; leaseMs: number },
  ): Promise<{ verdict: RecoveryVerdict; fence: string | undefined }> {
    const [queueName, nextRun] = await this.redis.hmget(
      jobKey(jobId),
      "queue_name",
      "next_scheduled_run_time",
    );
    const now = this.clock.now();
    const score = (nextRun ? parseTimestamp(nextRun) : undefined) ?? now;
    const [verdict, fence] = await this.scripts.run<[RecoveryVerdict, string | null]>(
      this.redis,
      "recover-job",
      [jobKey(jobId), jobLockKey(jobId), LEASES_KEY],
      [
        jobId,
        recoverer,
        holder ?? "",
        queueKey(queueName || options.defaultQueue),
        score,
        formatTimestamp(score),
        options.maxRecoveries,
        Math.round(options.leaseMs),
        formatTimestamp(now),
        now,
      ],
    );
    return { verdict, fence: fence ?? undefined };
  }

  /** Writes the worker's health record with a TTL. */
  async writeHealth(workerId: string, payload: object, ttlSeconds: number): Promise<void> {
    await this.redis.set(healthKey(workerId), JSON.stringify(payload), "EX", ttlSeconds);
  }

  /**
   * Worker ids that have an active-jobs set, one page per SCAN call (MATCH rrq:active:jobs:*,
   * COUNT `count`; `more` is false on the last page): the caller paces the calls and may stop
   * between pages. The whole keyspace is walked, so a pass costs Redis about 0.5 µs per key
   * (bench/RESULTS.md).
   */
  async *activeSetHolders(count: number): AsyncGenerator<{ holders: string[]; more: boolean }> {
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.scan(
        cursor,
        "MATCH",
        `${Prefix.active}*`,
        "COUNT",
        count,
      );
      cursor = next;
      const holders = keys.map((key) => key.slice(Prefix.active.length));
      yield { holders, more: cursor !== "0" };
    } while (cursor !== "0");
  }

  /**
   * Whether `workerId` runs the orphan scan now: the first rrqkit worker to ask in an interval
   * takes the turn for `intervalMs` (SET NX PX), and the holder may run again within it. Every
   * other rrqkit worker skips its pass, so a fleet walks the keyspace once per interval instead
   * of once per worker (RRQ's orchestrators still scan on each of their heartbeats).
   */
  async takeOrphanScanTurn(workerId: string, intervalMs: number): Promise<boolean> {
    if ((await this.redis.set(ORPHAN_SCAN_KEY, workerId, "PX", intervalMs, "NX")) === "OK")
      return true;
    return (await this.redis.get(ORPHAN_SCAN_KEY)) === workerId;
  }

  /** Seconds left on a worker's health key (≤ 0 or -2 when dead). */
  healthTtl(workerId: string): Promise<number> {
    return this.redis.ttl(healthKey(workerId));
  }

  /** Job ids in a worker's active set. */
  activeJobs(workerId: string, limit = 1000): Promise<string[]> {
    return this.redis.zrange(activeKey(workerId), 0, limit - 1);
  }
}
