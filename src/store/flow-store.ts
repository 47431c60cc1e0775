import type { Redis } from "ioredis";
import { localClock, type Clock } from "../clock/redis-clock.js";
import {
  breakerKey,
  breakerWaitKey,
  FLOW_PARKED_KEY,
  flowOrderKey,
  flowOrderWaitKey,
  flowRunKey,
  flowWaitKey,
  jobKey,
  pausedKey,
  queueKey,
  wakeChannel,
} from "./keys.js";
import type { ScriptCaller } from "./scripts.js";

/** How a job's attempt ended, for {@link FlowStore.release}. */
export type FlowReleaseMode = "requeued" | "terminal" | "dead";
/** What a session does when a job of it dies: skip to the next job, or block the session. */
export type SessionOnDead = "skip" | "block";
/** A circuit breaker's state. */
export type BreakerStateName = "closed" | "open" | "half_open";

/** One circuit breaker (`rrq:breaker:<scope>`), as read by {@link FlowStore.breakers}. */
export interface BreakerState {
  /** `function:<name>` or `runner:<name>`. */
  scope: string;
  state: BreakerStateName;
  /** Consecutive failures counted. */
  failures: number;
  /** When it last opened, epoch ms. */
  openedAt?: number;
  /** When an open breaker lets a probe through, epoch ms. */
  retryAt?: number;
  /** The probe job of a half-open breaker. */
  probe?: string;
  /** How many times it opened. */
  trips: number;
  lastError?: string;
  /** Jobs it holds (ZCARD of its bwait set). */
  held: number;
}

/** The failure threshold and cool-down of one breaker scope. */
export interface BreakerSpec {
  failures: number;
  cooldownMs: number;
}

/** Most keys a {@link FlowStore.pausedQueues} or {@link FlowStore.breakers} SCAN page asks for. */
const SCAN_COUNT = 500;

/** Epoch ms as ISO 8601 (UTC), for the wait reasons. */
const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * The flow-control Redis operations besides the claim (claim-ready-4.lua): releases, the
 * sweeper's step, breaker records, pause and resume (src/store/lua/flow-release-1.lua,
 * flow-sweep-0.lua, breaker-record-1.lua, queue-pause-1.lua; parking in lua/lib/flow-park.lua),
 * and the reads the operator tools show (README "Flow control").
 */
export class FlowStore {
  /**
   * @param scripts the caller {@link registerScripts} returned for `redis`.
   * @param clock the "now" the scripts compare breaker times and pause stamps with (the
   * worker's Redis clock; the local clock by default).
   */
  constructor(
    readonly redis: Redis,
    readonly scripts: ScriptCaller,
    readonly clock: Clock = localClock,
  ) {}

  /**
   * Frees a job's concurrency slot and moves its session on after an attempt (run after the
   * attempt's own write); parked jobs that may run now go back to their queues. Idempotent.
   * Returns the number of jobs unparked.
   */
  async release(
    jobId: string,
    mode: FlowReleaseMode,
    sessionOnDead: SessionOnDead,
  ): Promise<number> {
    return Number(
      await this.scripts.run<number>(
        this.redis,
        "flow-release",
        [jobKey(jobId)],
        [jobId, mode, sessionOnDead, this.clock.now()],
      ),
    );
  }

  /**
   * One sweeper step over rrq:fc:waiting (at most about `count` wait keys): stale slot holders
   * dropped, free slots filled, dead session heads skipped, breaker probes let through. Cursor
   * "0" starts a pass; the returned cursor is "0" when the pass is done.
   */
  async sweep(
    cursor: string,
    count: number,
    sessionOnDead: SessionOnDead,
  ): Promise<{ cursor: string; unparked: number }> {
    const [next, unparked] = await this.scripts.run<[string, number]>(
      this.redis,
      "flow-sweep",
      [],
      [this.clock.now(), cursor, Math.max(1, Math.floor(count)), sessionOnDead],
    );
    return { cursor: String(next), unparked: Number(unparked) };
  }

  /**
   * Records an attempt's outcome on the breaker of `scope` (`function:<name>` or
   * `runner:<name>`): "opened" when this failure opened it, "closed" when this success closed
   * it (its held jobs go back to their queues), "" when its state did not change.
   */
  async recordBreaker(
    scope: string,
    outcome: "success" | "failure",
    jobId: string,
    spec: BreakerSpec,
    error?: string,
  ): Promise<"opened" | "closed" | ""> {
    if (!Number.isInteger(spec.failures) || spec.failures < 1)
      throw new Error(`breaker failures must be an integer >= 1, got ${spec.failures}`);
    if (!Number.isFinite(spec.cooldownMs) || spec.cooldownMs < 0)
      throw new Error(`breaker cooldownMs must be >= 0, got ${spec.cooldownMs}`);
    const result = await this.scripts.run<string>(
      this.redis,
      "breaker-record",
      [breakerKey(scope)],
      [
        outcome,
        jobId,
        spec.failures,
        Math.round(spec.cooldownMs),
        this.clock.now(),
        (error ?? "").slice(0, 200),
      ],
    );
    return result === "opened" || result === "closed" ? result : "";
  }

  /**
   * Pauses a queue (bare name or key): claims return nothing from it until {@link resume}. A
   * queue already paused keeps its `since` and takes the new reason.
   */
  async pause(queue: string, reason?: string): Promise<void> {
    const value = JSON.stringify({ since: this.clock.now(), ...(reason ? { reason } : {}) });
    await this.scripts.run(
      this.redis,
      "queue-pause",
      [pausedKey(queue)],
      ["pause", value, wakeChannel(queueKey(queue))],
    );
  }

  /** Resumes a queue (bare name or key) and publishes its wake channel, so idle workers claim. */
  async resume(queue: string): Promise<void> {
    await this.scripts.run(
      this.redis,
      "queue-pause",
      [pausedKey(queue)],
      ["resume", "", wakeChannel(queueKey(queue))],
    );
  }

  /** Paused queues by bare name (SCAN over rrq:paused:*). */
  async pausedQueues(): Promise<Map<string, { since: number; reason?: string }>> {
    const out = new Map<string, { since: number; reason?: string }>();
    const keys = await this.scanKeys(`${PAUSED_PREFIX}*`);
    if (keys.length === 0) return out;
    const values = await this.redis.mget(...keys);
    keys.forEach((key, i) => {
      const value = values[i];
      if (value == null) return; // resumed since the scan
      out.set(key.slice(PAUSED_PREFIX.length), parsePause(value));
    });
    return out;
  }

  /** Every breaker (SCAN over rrq:breaker:*), with the number of jobs it holds. */
  async breakers(): Promise<BreakerState[]> {
    const keys = await this.scanKeys(`${BREAKER_PREFIX}*`);
    if (keys.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const key of keys) {
      pipeline.hgetall(key);
      pipeline.zcard(breakerWaitKey(key.slice(BREAKER_PREFIX.length)));
    }
    const replies = (await pipeline.exec()) ?? [];
    const out: BreakerState[] = [];
    keys.forEach((key, i) => {
      const [hashError, hash] = replies[2 * i] ?? [];
      const [, held] = replies[2 * i + 1] ?? [];
      if (hashError || !hash || typeof hash !== "object") return; // not a hash: not ours
      const h = hash as Record<string, string>;
      if (Object.keys(h).length === 0) return; // deleted since the scan
      out.push(breakerFrom(key.slice(BREAKER_PREFIX.length), h, Number(held ?? 0)));
    });
    return out;
  }

  /** Parked jobs per queue key (rrq:fc:parked; approximate), queues with none left out. */
  async parkedCounts(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const [queue, n] of Object.entries(await this.redis.hgetall(FLOW_PARKED_KEY))) {
      const count = Number(n);
      if (Number.isFinite(count) && count > 0) out.set(queue, count);
    }
    return out;
  }

  /**
   * Why a PENDING (or RETRYING) job is not running, for `rrq job show` (undefined when flow control holds
   * nothing back): parked for a concurrency slot, behind its session's head, held by an open
   * breaker, waiting for a reserved start slot, or in a paused queue.
   */
  async waitReason(hash: Record<string, string>): Promise<string | undefined> {
    // parked jobs keep their status: PENDING, or RETRYING after a failed attempt
    if (hash.status !== undefined && hash.status !== "PENDING" && hash.status !== "RETRYING")
      return undefined;
    const wait = hash.fc_wait;
    if (wait?.startsWith(WAIT_PREFIX)) {
      const key = wait.slice(WAIT_PREFIX.length);
      const running = await this.redis.zcard(flowRunKey(key));
      const cap = hash.fc_cap ?? "?";
      return `waiting for a slot of concurrency key ${key} (${running}/${cap} running)`;
    }
    if (wait?.startsWith(OWAIT_PREFIX)) {
      const okey = wait.slice(OWAIT_PREFIX.length);
      const [head] = await this.redis.zrange(flowOrderKey(okey), 0, 0);
      return head
        ? `waiting behind ${head} in session ${okey}`
        : `waiting for its turn in session ${okey}`;
    }
    if (wait?.startsWith(BWAIT_PREFIX)) {
      const scope = wait.slice(BWAIT_PREFIX.length);
      const [state, retryAt, probe] = await this.redis.hmget(
        breakerKey(scope),
        "state",
        "retry_at",
        "probe",
      );
      if (state === "open" && retryAt)
        return `held by circuit breaker ${scope} (open until ${iso(Number(retryAt))})`;
      if (state === "half_open")
        return `held by circuit breaker ${scope} (half-open, probing with job ${probe ?? "?"})`;
      return `held by circuit breaker ${scope} (${state ?? "closed"}; the sweeper releases it)`;
    }
    if (wait) return `parked in ${wait}`;
    const slot = Number(hash.fc_slot);
    if (hash.fc_slot && Number.isFinite(slot) && slot > this.clock.now())
      return `waiting for its start slot at ${iso(slot)} (start rate of ${hash.concurrency_key ?? (hash.limit_name ? `limit:${hash.limit_name}` : "its key")})`;
    if (hash.queue_name) {
      const paused = await this.redis.get(pausedKey(hash.queue_name));
      if (paused != null) {
        const { since, reason } = parsePause(paused);
        return `queue paused since ${iso(since)}${reason ? ` (${reason})` : ""}`;
      }
    }
    return undefined;
  }

  /** Every key matching `pattern` (SCAN; keys seen twice counted once). */
  private async scanKeys(pattern: string): Promise<string[]> {
    const keys = new Set<string>();
    let cursor = "0";
    do {
      const [next, page] = await this.redis.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT);
      for (const key of page) keys.add(key);
      cursor = next;
    } while (cursor !== "0");
    return [...keys];
  }
}

const PAUSED_PREFIX = pausedKey("");
const BREAKER_PREFIX = breakerKey("");
const WAIT_PREFIX = flowWaitKey("");
const OWAIT_PREFIX = flowOrderWaitKey("");
const BWAIT_PREFIX = breakerWaitKey("");

/** A paused key's JSON value; a value not written by {@link FlowStore.pause} counts as since 0. */
function parsePause(value: string): { since: number; reason?: string } {
  try {
    const parsed = JSON.parse(value) as { since?: unknown; reason?: unknown };
    const since = typeof parsed.since === "number" ? parsed.since : 0;
    return typeof parsed.reason === "string" && parsed.reason !== ""
      ? { since, reason: parsed.reason }
      : { since };
  } catch {
    return { since: 0 };
  }
}

/** A breaker hash as a {@link BreakerState}. */
function breakerFrom(scope: string, h: Record<string, string>, held: number): BreakerState {
  const num = (v: string | undefined) => (v !== undefined && v !== "" ? Number(v) : undefined);
  const state: BreakerStateName =
    h.state === "open" || h.state === "half_open" ? h.state : "closed";
  const out: BreakerState = {
    scope,
    state,
    failures: num(h.failures) ?? 0,
    trips: num(h.trips) ?? 0,
    held,
  };
  const openedAt = num(h.opened_at);
  const retryAt = num(h.retry_at);
  if (openedAt !== undefined) out.openedAt = openedAt;
  if (retryAt !== undefined) out.retryAt = retryAt;
  if (h.probe) out.probe = h.probe;
  if (h.last_error) out.lastError = h.last_error;
  return out;
}
