import type { Redis } from "ioredis";
import { localClock, type Clock } from "../clock/redis-clock.js";
import { RrqError } from "../errors.js";
import { FlowStore, type BreakerState } from "../store/flow-store.js";
import { bareQueueName, pausedKey, Prefix, queueKey } from "../store/keys.js";
import { registerScripts } from "../store/scripts.js";

/**
 * The operator side of flow control (README "Flow control"): pausing and resuming queues, and
 * reading what holds jobs back (paused queues, parked counts, circuit breakers, one job's wait
 * reason). A thin layer over {@link FlowStore}, which owns the keys and scripts; what this adds
 * is the operator's view: queue names checked and normalised to full keys, and answers that say
 * what changed.
 */

/** A paused queue: since when (epoch ms) and the operator's reason. */
export interface PausedInfo {
  readonly since: number;
  readonly reason?: string;
}

/** What {@link FlowApi.pauseQueue} did. */
export interface PauseResult {
  /** The full queue key. */
  readonly queue: string;
  /** The pause in force now (the earlier one when the queue was already paused). */
  readonly paused: PausedInfo;
  /** The queue was already paused: nothing was changed. */
  readonly wasPaused: boolean;
}

/** What {@link FlowApi.resumeQueue} did. */
export interface ResumeResult {
  /** The full queue key. */
  readonly queue: string;
  /** The pause that was lifted; undefined when the queue was not paused. */
  readonly wasPaused: PausedInfo | undefined;
}

/** Longest bare queue name accepted (the paused key and wake channel embed it). */
const MAX_QUEUE_NAME = 256;

/**
 * The full key of an operator-given queue name (bare or `rrq:queue:`-prefixed). Throws an
 * `invalid_argument` RrqError naming the value when it cannot be a queue: empty, control
 * characters or whitespace, too long, or another rrq key (`rrq:dlq:x`, `rrq:job:y`), which is a
 * mistake far more often than a queue really named so.
 */
export function checkedQueueKey(name: string): string {
  const shown = JSON.stringify(name.length > 60 ? `${name.slice(0, 57)}...` : name);
  const bare = bareQueueName(name);
  if (bare.trim() === "") throw new RrqError("invalid_argument", `queue name ${shown} is empty`);
  if (/[\s\p{Cc}]/u.test(bare))
    throw new RrqError(
      "invalid_argument",
      `queue name ${shown} holds whitespace or control characters`,
    );
  if ([...bare].length > MAX_QUEUE_NAME)
    throw new RrqError(
      "invalid_argument",
      `queue name ${shown} is longer than ${MAX_QUEUE_NAME} characters`,
    );
  if (bare.startsWith("rrq:") && !name.startsWith(Prefix.queue))
    throw new RrqError(
      "invalid_argument",
      `queue name ${shown} is another rrq key, not a queue (give the bare name or rrq:queue:<name>)`,
    );
  return queueKey(name);
}

/** Pause, resume, and the reads of what flow control holds back. */
export class FlowApi {
  /** The store the worker's flow control uses (same keys, same scripts). */
  readonly store: FlowStore;

  constructor(
    private readonly redis: Redis,
    clock: Clock = localClock,
  ) {
    this.store = new FlowStore(redis, registerScripts(redis), clock);
  }

  /**
   * Pauses a queue: workers claim nothing from it (jobs already running finish) until
   * {@link resumeQueue}. A queue nothing has seen yet may be paused (it stays paused for when it
   * appears). An already paused queue is left as it is (its first reason and time stand).
   */
  async pauseQueue(name: string, reason?: string): Promise<PauseResult> {
    const queue = checkedQueueKey(name);
    const cleanReason = reason?.trim() || undefined;
    const before = await this.pausedInfo(queue);
    if (before) return { queue, paused: before, wasPaused: true };
    await this.store.pause(queue, cleanReason);
    const now = (await this.pausedInfo(queue)) ?? {
      since: Date.now(),
      ...(cleanReason ? { reason: cleanReason } : {}),
    };
    return { queue, paused: now, wasPaused: false };
  }

  /**
   * Resumes a queue and wakes the workers waiting on it (the store publishes the queue's wake
   * channel). Resuming a queue that is not paused changes nothing and says so.
   */
  async resumeQueue(name: string): Promise<ResumeResult> {
    const queue = checkedQueueKey(name);
    const before = await this.pausedInfo(queue);
    // resumed even when not paused: the wake is harmless, and a pause that raced in is lifted
    await this.store.resume(queue);
    return { queue, wasPaused: before };
  }

  /** The pause of one queue, or undefined. */
  async pausedInfo(name: string): Promise<PausedInfo | undefined> {
    return parsePaused(await this.redis.get(pausedKey(name)));
  }

  /**
   * Paused queues by full queue key, queues nothing has seen yet included. Cheap enough for a
   * page refreshed every second: one SMEMBERS of the paused-queue index (rrq:fc:paused-queues)
   * and one MGET of the paused keys, whatever the size of the keyspace.
   */
  async pausedQueues(): Promise<Map<string, PausedInfo>> {
    const byKey = new Map<string, PausedInfo>();
    for (const [name, info] of await this.store.pausedQueues()) byKey.set(queueKey(name), info);
    return byKey;
  }

  /** Every circuit breaker, not closed ones first, then by scope. */
  async breakers(): Promise<BreakerState[]> {
    const rank = (b: BreakerState) => (b.state === "closed" ? 1 : 0);
    return (await this.store.breakers()).sort(
      (a, b) => rank(a) - rank(b) || a.scope.localeCompare(b.scope),
    );
  }

  /** Parked jobs per full queue key (approximate: a counter the flow scripts keep). */
  async parkedCounts(): Promise<Map<string, number>> {
    const byKey = new Map<string, number>();
    for (const [name, n] of await this.store.parkedCounts()) {
      const key = queueKey(name);
      byKey.set(key, (byKey.get(key) ?? 0) + Math.max(0, n));
    }
    return byKey;
  }

  /** Why a PENDING job does not run yet (a human sentence), or undefined. */
  waitReason(hash: Record<string, string>): Promise<string | undefined> {
    return this.store.waitReason(hash);
  }
}

/** A paused key's JSON `{since, reason?}`; a malformed value still reads as paused (since 0). */
export function parsePaused(text: string | null): PausedInfo | undefined {
  if (text === null) return undefined;
  try {
    const parsed = JSON.parse(text) as { since?: unknown; reason?: unknown };
    const since = typeof parsed?.since === "number" ? parsed.since : 0;
    const reason =
      typeof parsed?.reason === "string" && parsed.reason !== "" ? parsed.reason : undefined;
    return reason === undefined ? { since } : { since, reason };
  } catch {
    // the key's existence is what pauses the queue (the claim script checks EXISTS)
    return { since: 0 };
  }
}

export type { BreakerState };
