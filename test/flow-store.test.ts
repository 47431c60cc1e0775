/**
 * Flow control on the Redis side (issue 22): claim-ready-4.lua's caps, sessions, start rates,
 * breakers and pause, and the release, sweep, breaker-record and pause scripts behind
 * FlowStore, against a real redis-server. Times come from a settable clock, so no assertion
 * depends on how fast the machine is.
 */
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Clock } from "../src/clock/redis-clock.js";
import type { EnqueueOptions } from "../src/producer/options.js";
import { FlowStore } from "../src/store/flow-store.js";
import { JobStore, type ClaimResult } from "../src/store/job-store.js";
import {
  breakerKey,
  breakerWaitKey,
  FLOW_BREAKERS_KEY,
  FLOW_PARKED_KEY,
  FLOW_PAUSED_QUEUES_KEY,
  FLOW_WAITING_KEY,
  flowOrderKey,
  flowOrderWaitKey,
  flowRateKey,
  flowRunKey,
  flowWaitKey,
  jobKey,
  jobLockKey,
  pausedKey,
  wakeChannel,
} from "../src/store/keys.js";
import { useStoreFixture } from "./support/store-fixture.js";

const QUEUE = "rrq:queue:flow";
const fx = useStoreFixture();

/** A clock the test moves; starts a minute ahead so every enqueued job is due. */
class TestClock implements Clock {
  t = Date.now() + 60_000;
  now(): number {
    return this.t;
  }
}

let clock: TestClock;
let store: JobStore;
let flow: FlowStore;
let connection: Redis;

beforeEach(() => {
  clock = new TestClock();
  connection = new Redis(fx.redis.url);
  store = new JobStore(connection, clock);
  flow = new FlowStore(connection, store.scripts, clock);
});
afterEach(() => connection.disconnect());

const r = () => fx.redis.client;

/** Enqueues `n` jobs of `fn` with `options`, 1 ms apart (so their order is their scores'). */
async function enqueue(n: number, options: EnqueueOptions = {}, fn = "work"): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(await fx.producer.enqueue(fn, { i }, { queueName: QUEUE, ...options }));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return ids;
}

const claim = (worker: string, max: number, config = ""): Promise<ClaimResult> =>
  store.claim(QUEUE, worker, max, 30_000, config);

const ids = (result: ClaimResult) => result.claimed.map((j) => j.id);

/** Ends a claimed job successfully (its lock goes) and releases it as "terminal". */
async function finish(result: ClaimResult, id: string): Promise<number> {
  const job = result.claimed.find((j) => j.id === id)!;
  const written = await store.completeSuccessOne(
    { jobId: id, workerId: job.hash.worker_id!, fence: job.hash.lease_fence! },
    "null",
    60,
  );
  expect(written).toBe("written");
  return flow.release(id, "terminal", "skip");
}

/**
 * Messages published on `channel` while `during` runs. A sentinel published afterwards marks
 * the end: Redis delivers a channel's messages in the order it ran the PUBLISHes.
 */
async function published(channel: string, during: () => Promise<unknown>): Promise<string[]> {
  const sub = new Redis(fx.redis.url);
  const got: string[] = [];
  let ended: () => void = () => undefined;
  const end = new Promise<void>((resolve) => (ended = resolve));
  sub.on("message", (ch: string, message: string) => {
    if (ch !== channel) return;
    if (message === "test:end") ended();
    else got.push(message);
  });
  await sub.subscribe(channel);
  try {
    await during();
    await r().publish(channel, "test:end");
    await end;
    return got;
  } finally {
    sub.disconnect();
  }
}

describe("concurrency caps", () => {
  it("cap 1: one job runs across workers, the rest are parked with their queue scores", async () => {
    const jobs = await enqueue(3, { concurrencyKey: "acct:1", concurrencyLimit: 1 });
    const scores = await Promise.all(jobs.map((id) => r().zscore(QUEUE, id)));
    const first = await claim("w1", 5);
    expect(ids(first)).toEqual([jobs[0]]);
    expect(first.parked).toBe(2);
    expect(first.claimed[0]!.hash).toMatchObject({ fc_key: "acct:1", fc_cap: "1" });
    expect(ids(await claim("w2", 5))).toEqual([]);

    const wait = flowWaitKey("acct:1");
    expect(await r().zrange(flowRunKey("acct:1"), 0, -1)).toEqual([jobs[0]]);
    expect(await r().zrange(wait, 0, -1, "WITHSCORES")).toEqual([
      jobs[1],
      scores[1],
      jobs[2],
      scores[2],
    ]);
    expect(await r().zcard(QUEUE)).toBe(0);
    expect(await r().sismember(FLOW_WAITING_KEY, wait)).toBe(1);
    expect(await r().hget(FLOW_PARKED_KEY, QUEUE)).toBe("2");
    expect(await r().hmget(jobKey(jobs[1]!), "status", "fc_wait", "fc_key", "fc_cap")).toEqual([
      "PENDING",
      wait,
      "acct:1",
      "1",
    ]);
    expect(await flow.parkedCounts()).toEqual(new Map([[QUEUE, 2]]));
    expect(await flow.waitReason(await r().hgetall(jobKey(jobs[1]!)))).toBe(
      "waiting for a slot of concurrency key acct:1 (1/1 running)",
    );
  });

  it("cap 3: claims from several workers never hold more than 3 slots", async () => {
    const jobs = await enqueue(10, { concurrencyKey: "k3", concurrencyLimit: 3 });
    const got = [
      ...ids(await claim("w1", 2)),
      ...ids(await claim("w2", 2)),
      ...ids(await claim("w3", 5)),
      ...ids(await claim("w4", 5)),
    ];
    expect(got).toEqual(jobs.slice(0, 3));
    expect(await r().zcard(flowRunKey("k3"))).toBe(3);
    expect(await r().zrange(flowWaitKey("k3"), 0, -1)).toEqual(jobs.slice(3));
  });

  it("a release frees the slot and unparks the next job with its original score", async () => {
    const jobs = await enqueue(3, { concurrencyKey: "k", concurrencyLimit: 1 });
    const score = await r().zscore(QUEUE, jobs[1]!);
    const first = await claim("w1", 5);
    const messages = await published(wakeChannel(QUEUE), async () => {
      expect(await finish(first, jobs[0]!)).toBe(1);
    });
    expect(messages).toHaveLength(1);
    expect(await r().zrange(QUEUE, 0, -1, "WITHSCORES")).toEqual([jobs[1], score]);
    expect(await r().hexists(jobKey(jobs[1]!), "fc_wait")).toBe(0);
    expect(await r().hget(FLOW_PARKED_KEY, QUEUE)).toBe("1");
    expect(await r().zcard(flowRunKey("k"))).toBe(0);
    // idempotent: a second release unparks nothing more than the free slot allows
    expect(await flow.release(jobs[0]!, "terminal", "skip")).toBe(1);
    expect(ids(await claim("w2", 5))).toEqual([jobs[1]]);
    expect(await r().zrange(flowWaitKey("k"), 0, -1)).toEqual([jobs[2]]);
  });

  it("a retried job parks and comes back like any other (status RETRYING)", async () => {
    const [a, b] = await enqueue(2, { concurrencyKey: "rt", concurrencyLimit: 1 });
    const first = await claim("w1", 5);
    const ref = { jobId: a!, workerId: "w1", fence: first.claimed[0]!.hash.lease_fence! };
    expect(await store.retry(ref, QUEUE, clock.now(), "boom")).toBe("written");
    expect(await flow.release(a!, "requeued", "skip")).toBe(1); // b, older, goes first
    const second = await claim("w2", 5);
    expect(ids(second)).toEqual([b]);
    expect(await r().hmget(jobKey(a!), "status", "fc_wait")).toEqual([
      "RETRYING",
      flowWaitKey("rt"),
    ]);
    expect(await flow.waitReason(await r().hgetall(jobKey(a!)))).toMatch(/^waiting for a slot/);
    expect(await finish(second, b!)).toBe(1);
    expect(ids(await claim("w1", 5))).toEqual([a]);
  });

  it("a late release leaves the slot of a job claimed again meanwhile alone", async () => {
    const [a] = await enqueue(1, { concurrencyKey: "late", concurrencyLimit: 1 });
    const first = await claim("w1", 5);
    const ref = { jobId: a!, workerId: "w1", fence: first.claimed[0]!.hash.lease_fence! };
    expect(await store.retry(ref, QUEUE, clock.now(), "boom")).toBe("written");
    // claimed again before the attempt's release ran: it still holds its slot
    expect(ids(await claim("w2", 5))).toEqual([a]);
    expect(await flow.release(a!, "requeued", "skip")).toBe(0);
    expect(await r().zrange(flowRunKey("late"), 0, -1)).toEqual([a]);
    const [b] = await enqueue(1, { concurrencyKey: "late", concurrencyLimit: 1 });
    expect(ids(await claim("w3", 5))).toEqual([]);
    expect(await r().zrange(flowWaitKey("late"), 0, -1)).toEqual([b]);
  });

  it("a holder whose lock is gone is stale: the claim and the sweeper drop it", async () => {
    const [a, b] = await enqueue(2, { concurrencyKey: "s", concurrencyLimit: 1 });
    await claim("w1", 5); // a runs, b parked
    await r().del(jobLockKey(a!)); // its worker died and the lease ran out; no release came
    expect(await flow.sweep("0", 100, "skip")).toEqual({ cursor: "0", unparked: 1 });
    expect(await r().zrange(flowRunKey("s"), 0, -1)).toEqual([]);
    expect(ids(await claim("w2", 5))).toEqual([b]);
    // the claim itself: c finds the slot held by b, whose lock is gone too
    const [c] = await enqueue(1, { concurrencyKey: "s", concurrencyLimit: 1 });
    await r().del(jobLockKey(b!));
    expect(ids(await claim("w3", 5))).toEqual([c]);
    expect(await r().zrange(flowRunKey("s"), 0, -1)).toEqual([c]);
  });

  it("unparking drops members whose hash is gone or not PENDING", async () => {
    const [a, b, c, d] = await enqueue(4, { concurrencyKey: "d", concurrencyLimit: 1 });
    const first = await claim("w1", 5);
    await r().del(jobKey(b!));
    await r().hset(jobKey(c!), "status", "CANCELLED");
    await r().zadd(flowRunKey("d"), 0, "x1", 0, "x2"); // stale holders: the release drops them
    expect(await finish(first, a!)).toBe(1);
    expect(await r().zrange(QUEUE, 0, -1)).toEqual([d]);
    expect(await r().exists(flowWaitKey("d"))).toBe(0);
    expect(await r().sismember(FLOW_WAITING_KEY, flowWaitKey("d"))).toBe(0);
    // the parked counter is approximate: b's hash is gone, so its queue (and count) is unknown
    expect(await r().hget(FLOW_PARKED_KEY, QUEUE)).toBe("1");
  });

  it("an unknown limit name counts as cap 1 and is reported; a configured one applies", async () => {
    const [a, b] = await enqueue(2, { limit: "nope" });
    const result = await claim("w1", 5);
    expect(ids(result)).toEqual([a]);
    expect(result.unknownLimits).toEqual(["nope"]);
    expect(await r().zrange(flowWaitKey("limit:nope"), 0, -1)).toEqual([b]);
    const known = await enqueue(3, { limit: "api" });
    const config = JSON.stringify({ l: { api: { c: 2 } } });
    const second = await claim("w1", 5, config);
    expect(ids(second)).toEqual(known.slice(0, 2));
    expect(second.unknownLimits).toEqual([]);
    expect(second.claimed[0]!.hash).toMatchObject({ fc_key: "limit:api", fc_cap: "2" });
  });

  it("a function's cap from the flow config holds jobs without flow fields", async () => {
    const jobs = await enqueue(3, {}, "charge");
    const config = JSON.stringify({ f: { charge: { c: 1 } } });
    expect(ids(await claim("w1", 5, config))).toEqual([jobs[0]]);
    expect(await r().zrange(flowWaitKey("function:charge"), 0, -1)).toEqual(jobs.slice(1));
  });
});

describe("batched releases", () => {
  /** Script calls (EVALSHA and EVAL) the server ran since the last CONFIG RESETSTAT. */
  async function scriptCalls(): Promise<number> {
    const info = await r().info("commandstats");
    let calls = 0;
    for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) calls += Number(m[1]);
    return calls;
  }

  it("releases of one turn share one script call; each caller gets its own count", async () => {
    const a = await enqueue(2, { concurrencyKey: "ba", concurrencyLimit: 1 });
    const b = await enqueue(2, { concurrencyKey: "bb", concurrencyLimit: 1 });
    const scores = await Promise.all([a[1]!, b[1]!].map((id) => r().zscore(QUEUE, id)));
    const first = await claim("w1", 5);
    expect(ids(first)).toEqual([a[0], b[0]]); // a[1] and b[1] parked
    for (const id of [a[0]!, b[0]!]) await r().del(jobLockKey(id)); // their attempts ended
    await flow.release("warm-up", "terminal", "skip"); // the script is loaded on the connection
    await r().config("RESETSTAT");
    const messages = await published(wakeChannel(QUEUE), async () => {
      expect(
        await Promise.all([
          flow.release(a[0]!, "terminal", "skip"),
          flow.release("no-such-job", "dead", "skip"),
          flow.release(b[0]!, "requeued", "skip"),
        ]),
      ).toEqual([1, 0, 1]);
    });
    expect(await scriptCalls()).toBe(1);
    expect(messages).toHaveLength(1); // one wake-up per queue per call
    expect(await r().zrange(QUEUE, 0, -1, "WITHSCORES")).toEqual([
      a[1],
      scores[0],
      b[1],
      scores[1],
    ]);
    expect(await r().exists(flowRunKey("ba"), flowRunKey("bb"))).toBe(0);
    expect(await r().sismember(FLOW_WAITING_KEY, flowWaitKey("ba"))).toBe(0);
    expect(await r().hget(FLOW_PARKED_KEY, QUEUE)).toBeNull();
  });

  it("an entry that fails in Redis fails alone; a bad mode is refused before anything is sent", async () => {
    const [a, parked] = await enqueue(2, { concurrencyKey: "fa", concurrencyLimit: 1 });
    const [x] = await enqueue(1, { concurrencyKey: "fx", concurrencyLimit: 1 });
    expect(ids(await claim("w1", 5))).toEqual([a, x]);
    for (const id of [a!, x!]) await r().del(jobLockKey(id));
    await r().del(flowRunKey("fx"));
    await r().set(flowRunKey("fx"), "not a sorted set"); // x's ZREM fails with WRONGTYPE
    const messages = await published(wakeChannel(QUEUE), async () => {
      const [bad, good] = await Promise.allSettled([
        flow.release(x!, "terminal", "skip"),
        flow.release(a!, "terminal", "skip"),
      ]);
      expect(bad.status === "rejected" && String(bad.reason)).toMatch(
        new RegExp(`flow-release of job ${x}: .*WRONGTYPE`),
      );
      expect(good).toEqual({ status: "fulfilled", value: 1 });
    });
    expect(messages).toHaveLength(1);
    expect(await r().zrange(QUEUE, 0, -1)).toEqual([parked]);
    await expect(flow.release(a!, "finished" as never, "skip")).rejects.toThrow(/'finished'/);
    await expect(flow.release(a!, "terminal", "maybe" as never)).rejects.toThrow(/'maybe'/);
  });

  it("more than 256 releases in one turn go in calls of at most 256", async () => {
    await flow.release("warm-up", "terminal", "skip");
    await r().config("RESETSTAT");
    const counts = await Promise.all(
      Array.from({ length: 300 }, (_, i) => flow.release(`gone-${i}`, "terminal", "skip")),
    );
    expect(counts).toEqual(Array.from({ length: 300 }, () => 0));
    expect(await scriptCalls()).toBe(2);
  });
});

describe("sessions (ordering_key)", () => {
  it("runs the head only; a retry keeps the head, a terminal release advances", async () => {
    const [a, b, c] = await enqueue(3, { orderingKey: "sess" });
    const first = await claim("w1", 5);
    expect(ids(first)).toEqual([a]);
    expect(first.parked).toBe(2);
    expect(await r().zrange(flowOrderWaitKey("sess"), 0, -1)).toEqual([b, c]);
    expect(await flow.waitReason(await r().hgetall(jobKey(b!)))).toBe(
      `waiting behind ${a} in session sess`,
    );
    // a retries: still the head, the others wait
    const ref = { jobId: a!, workerId: "w1", fence: first.claimed[0]!.hash.lease_fence! };
    expect(await store.retry(ref, QUEUE, clock.now(), "boom")).toBe("written");
    expect(await flow.release(a!, "requeued", "skip")).toBe(0);
    const again = await claim("w1", 5);
    expect(ids(again)).toEqual([a]);
    expect(again.claimed[0]!.hash.runs).toBe("2");
    expect(await finish(again, a!)).toBe(1);
    expect(await r().zrange(flowOrderKey("sess"), 0, -1)).toEqual([b, c]);
    expect(ids(await claim("w2", 5))).toEqual([b]);
  });

  it("a dead head: skip moves on, block keeps the session waiting", async () => {
    const [a, b] = await enqueue(2, { orderingKey: "blk" });
    const first = await claim("w1", 5);
    const ref = { jobId: a!, workerId: "w1", fence: first.claimed[0]!.hash.lease_fence! };
    expect(await store.moveToDlq(ref, "rrq:dlq:flow", "dead", true)).toBe("written");
    expect(await flow.release(a!, "dead", "block")).toBe(0);
    expect(await r().zrange(flowOrderKey("blk"), 0, 0)).toEqual([a]);
    expect(await flow.sweep("0", 100, "block")).toEqual({ cursor: "0", unparked: 0 });
    expect(ids(await claim("w1", 5))).toEqual([]);
    // with skip the sweeper drops the FAILED head and lets b run
    expect(await flow.sweep("0", 100, "skip")).toEqual({ cursor: "0", unparked: 1 });
    expect(ids(await claim("w1", 5))).toEqual([b]);
    // and the release with skip does it directly
    const [c, d] = await enqueue(2, { orderingKey: "skp" });
    const third = await claim("w1", 5);
    expect(ids(third)).toEqual([c]);
    const ref2 = { jobId: c!, workerId: "w1", fence: third.claimed[0]!.hash.lease_fence! };
    await store.moveToDlq(ref2, "rrq:dlq:flow", "dead", true);
    expect(await flow.release(c!, "dead", "skip")).toBe(1);
    expect(ids(await claim("w1", 5))).toEqual([d]);
  });

  it("the sweeper skips a head whose hash is gone; a job not yet in the session joins it", async () => {
    const [a, b] = await enqueue(2, { orderingKey: "gone" });
    await claim("w1", 5);
    await r().del(jobKey(a!), jobLockKey(a!));
    expect((await flow.sweep("0", 100, "skip")).unparked).toBe(1);
    expect(ids(await claim("w1", 5))).toEqual([b]);
    // a job whose producer did not add it to the order set (an older producer) joins at claim
    const [c] = await enqueue(1, { orderingKey: "late" });
    await r().del(flowOrderKey("late"));
    expect(ids(await claim("w1", 5))).toEqual([c]);
    expect(await r().zrange(flowOrderKey("late"), 0, -1)).toEqual([c]);
  });
});

describe("start rates", () => {
  it("reserves the next slot (re-scored in the queue) and honours it when due", async () => {
    const jobs = await enqueue(3, {
      concurrencyKey: "r",
      startRate: { limit: 2, periodSeconds: 1 },
    });
    const t0 = clock.t;
    const first = await claim("w1", 5);
    expect(ids(first)).toEqual([jobs[0]]);
    expect(first.parked).toBe(2);
    expect(await r().zrange(QUEUE, 0, -1, "WITHSCORES")).toEqual([
      jobs[1],
      String(t0 + 500),
      jobs[2],
      String(t0 + 1000),
    ]);
    expect(await r().hget(jobKey(jobs[1]!), "fc_slot")).toBe(String(t0 + 500));
    expect(Number(await r().get(flowRateKey("r")))).toBe(t0 + 1500);
    expect(await r().pttl(flowRateKey("r"))).toBeGreaterThan(60_000);
    expect(await r().exists(flowRunKey("r"))).toBe(0); // a rate alone sets no cap
    clock.t = t0 + 500;
    const second = await claim("w1", 5);
    expect(ids(second)).toEqual([jobs[1]]); // its reserved slot, though the rate key is ahead
    expect(second.claimed[0]!.hash.fc_slot).toBeUndefined();
    expect(await r().hexists(jobKey(jobs[1]!), "fc_slot")).toBe(0);
    expect(Number(await r().get(flowRateKey("r")))).toBe(t0 + 1500);
    clock.t = t0 + 1000;
    expect(ids(await claim("w1", 5))).toEqual([jobs[2]]);
  });

  it("a reservation claimed more than one spacing late is stale: a fresh slot or a new reservation", async () => {
    const jobs = await enqueue(3, {
      concurrencyKey: "late",
      startRate: { limit: 2, periodSeconds: 1 },
    });
    const t0 = clock.t;
    expect(ids(await claim("w1", 5))).toEqual([jobs[0]]); // slots t0+500, t0+1000 reserved
    // A backlog held both past their slots: only the one within a spacing (500 ms) passes; the
    // older one reserves anew after the key's last slot instead of starting beside it.
    clock.t = t0 + 1200;
    const late = await claim("w1", 5);
    expect(ids(late)).toEqual([jobs[2]]);
    expect(late.parked).toBe(1);
    expect(await r().hget(jobKey(jobs[1]!), "fc_slot")).toBe(String(t0 + 1500));
    expect(await r().zscore(QUEUE, jobs[1]!)).toBe(String(t0 + 1500));
    expect(Number(await r().get(flowRateKey("late")))).toBe(t0 + 2000);
    // Long after every slot: the stale reservation goes and the job takes the key's free slot.
    clock.t = t0 + 10_000;
    const fresh = await claim("w1", 5);
    expect(ids(fresh)).toEqual([jobs[1]]);
    expect(fresh.claimed[0]!.hash.fc_slot).toBeUndefined();
    expect(await r().hexists(jobKey(jobs[1]!), "fc_slot")).toBe(0);
    expect(Number(await r().get(flowRateKey("late")))).toBe(t0 + 10_500);
  });

  it("a parked job gives up its reservation", async () => {
    const [a, b] = await enqueue(2, {
      concurrencyKey: "rc",
      concurrencyLimit: 2,
      startRate: { limit: 1, periodSeconds: 10 },
    });
    expect(ids(await claim("w1", 5))).toEqual([a]); // b reserved a slot 10 s later
    expect(await r().hexists(jobKey(b!), "fc_slot")).toBe(1);
    // another orchestrator's job takes the second slot meanwhile
    await r().zadd(flowRunKey("rc"), clock.t, "other");
    await r().set(jobLockKey("other"), "w9");
    clock.t += 10_000;
    expect(ids(await claim("w1", 5))).toEqual([]); // the cap is full: b parks
    expect(await r().hexists(jobKey(b!), "fc_slot")).toBe(0);
    expect(await r().zrange(flowWaitKey("rc"), 0, -1)).toEqual([b]);
  });
});

describe("circuit breakers", () => {
  const config = JSON.stringify({ b: { "function:charge": 1 } });
  const spec = { failures: 2, cooldownMs: 1000 };

  it("open holds jobs, the cool-down lets one probe through, success closes", async () => {
    expect(await flow.recordBreaker("function:charge", "failure", "j0", spec, "e1")).toBe("");
    expect(await flow.recordBreaker("function:charge", "failure", "j1", spec, "e2")).toBe("opened");
    const [a, b] = await enqueue(2, {}, "charge");
    const [other] = await enqueue(1, {}, "refund");
    const held = await claim("w1", 5, config);
    expect(ids(held)).toEqual([other]);
    expect(held.parked).toBe(2);
    expect(await r().zrange(breakerWaitKey("function:charge"), 0, -1)).toEqual([a, b]);
    const reason = await flow.waitReason(await r().hgetall(jobKey(a!)));
    expect(reason).toMatch(/^held by circuit breaker function:charge \(open until .+Z\)$/);
    const [state] = await flow.breakers();
    expect(state).toMatchObject({
      scope: "function:charge",
      state: "open",
      failures: 2,
      trips: 1,
      held: 2,
      lastError: "e2",
    });

    // before the cool-down the sweeper leaves them; after it, one goes back as the probe
    expect((await flow.sweep("0", 100, "skip")).unparked).toBe(0);
    clock.t += 1000;
    expect((await flow.sweep("0", 100, "skip")).unparked).toBe(1);
    const probe = await claim("w1", 5, config);
    expect(ids(probe)).toEqual([a]);
    expect(probe.claimed[0]!.hash.fc_scope).toBe("function:charge");
    expect(await r().hmget(breakerKey("function:charge"), "state", "probe")).toEqual([
      "half_open",
      a,
    ]);
    // half open: another job of the scope waits
    const [c] = await enqueue(1, {}, "charge");
    expect(ids(await claim("w2", 5, config))).toEqual([]);
    expect(await r().zrange(breakerWaitKey("function:charge"), 0, -1)).toEqual([b, c]);

    const messages = await published(wakeChannel(QUEUE), async () => {
      expect(await flow.recordBreaker("function:charge", "success", a!, spec)).toBe("closed");
    });
    expect(messages).toHaveLength(1);
    expect(await r().zrange(QUEUE, 0, -1)).toEqual([b, c]);
    expect(await r().hmget(breakerKey("function:charge"), "state", "failures")).toEqual([
      "closed",
      "0",
    ]);
    expect(await flow.recordBreaker("function:charge", "success", b!, spec)).toBe("");
  });

  it("a failed probe opens it again; a probe that stopped running is replaced by the sweeper", async () => {
    await flow.recordBreaker("runner:py", "failure", "j0", { failures: 1, cooldownMs: 0 });
    const [a, b] = await enqueue(2, {}, "py#charge");
    const runnerConfig = JSON.stringify({ b: { "runner:py": 1 } });
    const probe = await claim("w1", 5, runnerConfig); // cool-down 0: a is the probe at once
    expect(ids(probe)).toEqual([a]);
    expect(await r().zrange(breakerWaitKey("runner:py"), 0, -1)).toEqual([b]);
    expect(
      await flow.recordBreaker("runner:py", "failure", a!, { failures: 5, cooldownMs: 0 }),
    ).toBe("opened");
    expect(await r().hget(breakerKey("runner:py"), "trips")).toBe("2");
    // half open again, with a probe whose lock is gone (its worker died)
    await r().hset(breakerKey("runner:py"), "state", "half_open", "probe", a!);
    await r().del(jobLockKey(a!));
    await flow.sweep("0", 100, "skip");
    expect(await r().hmget(breakerKey("runner:py"), "state", "retry_at", "probe")).toEqual([
      "open",
      String(clock.t),
      null,
    ]);
    expect((await flow.sweep("0", 100, "skip")).unparked).toBe(1);
    expect(ids(await claim("w1", 5, runnerConfig))).toEqual([b]);
  });
  it("a job is held by its runner's breaker even when its function has one too", async () => {
    const both = JSON.stringify({ b: { "function:py#ship": 1, "runner:py": 1 }, qr: "node" });
    await flow.recordBreaker("runner:py", "failure", "j0", { failures: 1, cooldownMs: 60_000 });
    const [a] = await enqueue(1, {}, "py#ship");
    const [b] = await enqueue(1, {}, "ship"); // unprefixed: the queue's runner (qr), no breaker
    const result = await claim("w1", 5, both);
    expect(ids(result)).toEqual([b]);
    expect(await r().zrange(breakerWaitKey("runner:py"), 0, -1)).toEqual([a]);
    expect(await r().hget(jobKey(a!), "fc_wait")).toBe(breakerWaitKey("runner:py"));
  });
});

describe("pause", () => {
  it("a paused queue claims and touches nothing; resume wakes its workers", async () => {
    const [a] = await enqueue(1);
    await flow.pause("flow", "maintenance");
    expect(await r().exists(pausedKey(QUEUE))).toBe(1);
    const fence = await r().get("rrq:fence");
    const result = await claim("w1", 5);
    expect(result).toMatchObject({ claimed: [], paused: true, parked: 0 });
    expect(result.nextScore).toBe(Number(await r().zscore(QUEUE, a!)));
    expect(await r().get("rrq:fence")).toBe(fence);
    const paused = await flow.pausedQueues();
    expect(paused.get("flow")).toEqual({ since: clock.t, reason: "maintenance" });
    expect(await flow.waitReason(await r().hgetall(jobKey(a!)))).toBe(
      `queue paused since ${new Date(clock.t).toISOString()} (maintenance)`,
    );
    const messages = await published(wakeChannel(QUEUE), () => flow.resume(QUEUE));
    expect(messages).toHaveLength(1);
    expect(await flow.pausedQueues()).toEqual(new Map());
    const after = await claim("w1", 5);
    expect(after.paused).toBe(false);
    expect(ids(after)).toEqual([a]);
  });
});

describe("re-sent claims", () => {
  it("a second run with the same token returns the capped job and claims nothing more", async () => {
    const jobs = await enqueue(2, { concurrencyKey: "memo", concurrencyLimit: 2 });
    const run = () =>
      store.scripts.run<[string]>(
        connection,
        "claim-ready",
        [QUEUE, `rrq:active:jobs:w1`, "rrq:leases", pausedKey(QUEUE)],
        ["w1", clock.t, 1, 30_000, new Date(clock.t).toISOString(), 1, "tok", ""],
      );
    const first = JSON.parse((await run())[0]) as string[];
    const second = JSON.parse((await run())[0]) as string[];
    expect(first[0]).toBe(jobs[0]);
    expect(second[0]).toBe(jobs[0]);
    expect(second).toHaveLength(2);
    expect(await r().zrange(flowRunKey("memo"), 0, -1)).toEqual([jobs[0]]);
  });
});

describe("indexes of paused queues and breakers", () => {
  it("pause and resume keep rrq:fc:paused-queues; a paused key deleted by hand drops out", async () => {
    await flow.pause("flow", "one");
    await flow.pause(QUEUE, "two"); // the key or the bare name: one member
    await flow.pause("never-seen");
    expect((await r().smembers(FLOW_PAUSED_QUEUES_KEY)).sort()).toEqual(["flow", "never-seen"]);
    expect([...(await flow.pausedQueues()).keys()].sort()).toEqual(["flow", "never-seen"]);
    await flow.resume("never-seen");
    expect(await r().smembers(FLOW_PAUSED_QUEUES_KEY)).toEqual(["flow"]);
    await flow.resume("not-paused"); // resuming a queue that is not paused leaves no member
    expect(await r().smembers(FLOW_PAUSED_QUEUES_KEY)).toEqual(["flow"]);

    await r().del(pausedKey(QUEUE)); // e.g. `rrq debug clear`
    expect(await flow.pausedQueues()).toEqual(new Map());
    expect(await r().smembers(FLOW_PAUSED_QUEUES_KEY)).toEqual([]);
  });

  it("the pause script refuses a key that is not a paused key", async () => {
    await expect(
      store.scripts.run(connection, "queue-pause", ["rrq:queue:flow"], ["pause", "{}", "x"]),
    ).rejects.toThrow(/KEYS\[1\] must be rrq:paused:<bare queue name>, not 'rrq:queue:flow'/);
    expect(await r().exists(FLOW_PAUSED_QUEUES_KEY)).toBe(0);
  });

  it("breaker records keep rrq:fc:breakers; a success on no breaker writes nothing", async () => {
    const spec = { failures: 3, cooldownMs: 1000 };
    expect(await flow.recordBreaker("function:ok", "success", "j0", spec)).toBe("");
    expect(await r().exists(breakerKey("function:ok"), FLOW_BREAKERS_KEY)).toBe(0);
    expect(await flow.breakers()).toEqual([]);

    await flow.recordBreaker("function:charge", "failure", "j1", spec, "boom");
    await flow.recordBreaker("runner:py", "failure", "j2", { failures: 1, cooldownMs: 1000 });
    expect((await r().smembers(FLOW_BREAKERS_KEY)).sort()).toEqual([
      "function:charge",
      "runner:py",
    ]);
    const states = (await flow.breakers()).sort((a, b) => a.scope.localeCompare(b.scope));
    expect(states).toMatchObject([
      { scope: "function:charge", state: "closed", failures: 1, lastError: "boom", held: 0 },
      { scope: "runner:py", state: "open", failures: 1, trips: 1 },
    ]);
    // a success resets the count and keeps the breaker listed
    await flow.recordBreaker("function:charge", "success", "j3", spec);
    expect((await flow.breakers()).map((b) => b.scope).sort()).toEqual([
      "function:charge",
      "runner:py",
    ]);

    await r().del(breakerKey("runner:py")); // deleted by hand
    expect((await flow.breakers()).map((b) => b.scope)).toEqual(["function:charge"]);
    expect(await r().smembers(FLOW_BREAKERS_KEY)).toEqual(["function:charge"]);
  });
});
