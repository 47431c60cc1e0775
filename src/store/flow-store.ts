import type { Redis } from "ioredis";
import { localClock, type Clock } from "../clock/redis-clock.js";
import {
  breakerKey,
  breakerWaitKey,
  FLOW_NEEDS_PREFIX,
  FLOW_WAITING_KEY,
  FLOW_BREAKERS_KEY,
  FLOW_PARKED_KEY,
  FLOW_PAUSED_QUEUES_KEY,
  flowOrderKey,
  flowOrderWaitKey,
  flowRunKey,
  flowWaitKey,
  pausedKey,
  queueKey,
  wakeChannel,
} from "./keys.js";
import { FlowReleaseBatcher } from "./flow-release-batch.js";
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

/**
 * How long jobs requeued from a needs-set are left to the worker that requeued them (other
 * workers' claims leave them in the queue instead of parking them again).
 */
const NEEDS_ROUTE_MS = 2000;

/** Epoch ms as ISO 8601 (UTC), for the wait reasons. */
const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * The flow-control Redis operations besides the claim (claim-ready-4.lua): releases, the
 * sweeper's step, breaker records, pause and resume (src/store/lua/flow-release-n.lua,
 * flow-sweep-0.lua, breaker-record-1.lua, queue-pause-1.lua; parking in lua/lib/flow-park.lua),
 * and the reads the operator tools show (README "Flow control").
 */
export class FlowStore {
  /** Coalesces the releases of one event-loop turn into one script call. */
  private readonly releases: FlowReleaseBatcher;

  /**
   * @param scripts the caller {@link registerScripts} returned for `redis`.
   * @param clock the "now" the scripts compare breaker times and pause stamps with (the
   * worker's Redis clock; the local clock by default).
   */
  constructor(
    readonly redis: Redis,
    readonly scripts: ScriptCaller,
    readonly clock: Clock = localClock,
  ) {
    this.releases = new FlowReleaseBatcher(redis, scripts, clock);
  }

  /**
   * Frees a job's concurrency slot and moves its session on after an attempt (run after the
   * attempt's own write); parked jobs that may run now go back to their queues. Idempotent.
   * Releases asked for in the same event-loop turn share one flow-release-n.lua call
   * (src/store/flow-release-batch.ts). Returns the number of jobs unparked.
   */
  release(jobId: string, mode: FlowReleaseMode, sessionOnDead: SessionOnDead): Promise<number> {
    return this.releases.release(jobId, mode, sessionOnDead);
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

  /**
   * Paused queues by bare name: the members of rrq:fc:paused-queues (queue-pause-1.lua keeps
   * it), read with one MGET of their paused keys, which stay the truth the claim checks. A
   * member whose key is gone (deleted by hand) is left out and dropped from the set.
   */
  async pausedQueues(): Promise<Map<string, { since: number; reason?: string }>> {
    const out = new Map<string, { since: number; reason?: string }>();
    const names = await this.redis.smembers(FLOW_PAUSED_QUEUES_KEY);
    if (names.length === 0) return out;
    const values = await this.redis.mget(...names.map(pausedKey));
    const gone: string[] = [];
    names.forEach((name, i) => {
      const value = values[i];
      if (value == null) gone.push(name);
      else out.set(name, parsePause(value));
    });
    await this.dropFromIndex(FLOW_PAUSED_QUEUES_KEY, gone, pausedKey);
    return out;
  }

  /**
   * Every breaker, with the number of jobs it holds: the scopes of rrq:fc:breakers
   * (breaker-record-1.lua keeps it), each read with HGETALL and ZCARD in one pipeline. A scope
   * whose hash is gone (deleted by hand) is left out and dropped from the set.
   */
  async breakers(): Promise<BreakerState[]> {
    const scopes = await this.redis.smembers(FLOW_BREAKERS_KEY);
    if (scopes.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const scope of scopes) {
      pipeline.hgetall(breakerKey(scope));
      pipeline.zcard(breakerWaitKey(scope));
    }
    const replies = (await pipeline.exec()) ?? [];
    const out: BreakerState[] = [];
    const gone: string[] = [];
    scopes.forEach((scope, i) => {
      const [hashError, hash] = replies[2 * i] ?? [];
      const [, held] = replies[2 * i + 1] ?? [];
      if (hashError || !hash || typeof hash !== "object") return; // not a hash: not ours
      const h = hash as Record<string, string>;
      if (Object.keys(h).length === 0) gone.push(scope);
      else out.push(breakerFrom(scope, h, Number(held ?? 0)));
    });
    await this.dropFromIndex(FLOW_BREAKERS_KEY, gone, breakerKey);
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
  /**
   * Requeues the jobs of `runner` parked for capability tags that one of `tagSets` (the tag
   * sets of its connected processes, each a list) now covers (issue 23): SSCANs the index
   * rrq:fc:waiting for `rrq:fc:needs:<runner>:*` and unparks each covered set. Returns the
   * number of jobs requeued.
   */
  async unparkNeeds(
    runner: string,
    tagSets: readonly (readonly string[])[],
    workerId = "",
  ): Promise<number> {
    if (tagSets.length === 0) return 0;
    const sets = tagSets.map((tags) => new Set(tags));
    const prefix = `${FLOW_NEEDS_PREFIX}${runner}:`;
    const pattern = `${prefix.replace(/[*?[\]\\]/g, "\\$&")}*`;
    const covered: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.sscan(
        FLOW_WAITING_KEY,
        cursor,
        "MATCH",
        pattern,
        "COUNT",
        1000,
      );
      cursor = next;
      for (const key of keys) {
        if (!key.startsWith(prefix)) continue;
        const needs = key.slice(prefix.length).split(",");
        if (sets.some((set) => needs.every((tag) => set.has(tag)))) covered.push(key);
      }
    } while (cursor !== "0");
    let total = 0;
    for (let i = 0; i < covered.length; i += 100) {
      const keys = covered.slice(i, i + 100);
      for (;;) {
        const done = await this.scripts.run<number>(this.redis, "flow-needs-unpark", keys, [
          1000,
          workerId,
          this.clock.now() + NEEDS_ROUTE_MS,
        ]);
        total += done;
        if (done < 1000) break;
      }
    }
    return total;
  }

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
    if (wait?.startsWith(FLOW_NEEDS_PREFIX)) {
      const rest = wait.slice(FLOW_NEEDS_PREFIX.length);
      const colon = rest.indexOf(":");
      const runner = rest.slice(0, colon);
      const tags = rest
        .slice(colon + 1)
        .split(",")
        .join(", ");
      return `waiting for a runner with ${tags} (no process of runner '${runner}' offering those tags is connected)`;
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

  /**
   * Removes index members whose key was found missing. The SREM and a fresh EXISTS run in one
   * MULTI, and a member whose key exists again (paused or created since the read, whose script
   * SADDed before our SREM) is added back: the index never loses a live key, at worst it keeps a
   * stale member until the next read.
   */
  private async dropFromIndex(
    index: string,
    members: readonly string[],
    keyOf: (member: string) => string,
  ): Promise<void> {
    if (members.length === 0) return;
    const multi = this.redis.multi().srem(index, ...members);
    for (const member of members) multi.exists(keyOf(member));
    const replies = (await multi.exec()) ?? [];
    const back = members.filter((_, i) => Number(replies[i + 1]?.[1] ?? 0) > 0);
    if (back.length > 0) await this.redis.sadd(index, ...back);
  }
}

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
