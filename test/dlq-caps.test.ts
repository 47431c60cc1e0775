/**
 * move-to-dlq-6.lua's rrqkit additions (README "Death handlers", "DLQ caps"): the death record
 * in rrq:deaths, the "expire" mode, the dlq_max_jobs cap, and dlq-trim-age-2.lua, called with
 * raw arguments so the script's contract is tested apart from the JobStore that passes them.
 */
import { describe, expect, it } from "vitest";
import { dlqSummary } from "../src/api/dlq-summary.js";
import { registerScripts } from "../src/store/scripts.js";
import { useStoreFixture } from "./support/store-fixture.js";

const f = useStoreFixture();
const WORKER = "w-caps";
const DLQ = "rrq:dlq:caps";
const SUMMARY = "rrq:stats:dlq:caps";
const hash = (id: string) => f.redis.client.hgetall(`rrq:job:${id}`);

/** Enqueues `n` jobs on queue q and claims them; returns their attempts, in enqueue order. */
async function claimed(n: number, fn = "f") {
  const ids: string[] = [];
  for (let i = 0; i < n; i++)
    ids.push(await f.producer.enqueue(fn, { i }, { queueName: "q", maxRetries: 5 }));
  const { claimed } = await f.store.claim("rrq:queue:q", WORKER, n, 60_000);
  const fences = new Map(claimed.map((c) => [c.id, c.hash.lease_fence!]));
  return ids.map((jobId) => ({ jobId, fence: fences.get(jobId)! }));
}

/** Runs move-to-dlq with raw ARGV ([9] mode, [10] dlq_max_jobs). */
function move(
  a: { jobId: string; fence: string },
  error: string,
  extra: { count?: boolean; type?: string; mode?: string; cap?: number; at?: string } = {},
) {
  const scripts = registerScripts(f.redis.client);
  return scripts.run<number>(
    f.redis.client,
    "move-to-dlq",
    [
      `rrq:job:${a.jobId}`,
      `rrq:events:job:${a.jobId}`,
      DLQ,
      `rrq:active:jobs:${WORKER}`,
      `rrq:lock:job:${a.jobId}`,
      "rrq:leases",
    ],
    [
      a.jobId,
      WORKER,
      a.fence,
      error,
      extra.at ?? "2026-12-06T10:00:00.000+00:00",
      extra.count === false ? "0" : "1",
      extra.type ?? "",
      "",
      extra.mode ?? "",
      String(extra.cap ?? 0),
    ],
  );
}

const deaths = async () =>
  (await f.redis.client.xrange("rrq:deaths", "-", "+")).map(([, kv]) => {
    const o: Record<string, string> = {};
    for (let i = 0; i < kv.length; i += 2) o[kv[i]!] = kv[i + 1]!;
    return o;
  });

/** The trusted summary equals the one a full rebuild computes. */
async function expectSummaryRight(): Promise<void> {
  const trusted = await dlqSummary(f.redis.client, DLQ);
  expect(trusted.rebuilt).toBe(false);
  const rebuilt = await dlqSummary(f.redis.client, DLQ, { rebuild: true });
  const view = (s: typeof trusted) => ({ ...s, rebuilt: undefined, newest: 0, oldest: 0 });
  expect(view(trusted)).toEqual(view(rebuilt));
}

describe("move-to-dlq: death records", () => {
  it("a real write XADDs rrq:deaths once; the re-sent call adds none", async () => {
    const [a] = await claimed(1);
    const long = "x".repeat(1500);
    expect(await move(a!, long, { type: "ValueError" })).toBe(1);
    expect(await move(a!, long, { type: "ValueError" })).toBe(2);
    expect(await deaths()).toEqual([
      {
        j: a!.jobId,
        d: DLQ,
        r: "1",
        f: "f",
        q: "rrq:queue:q",
        e: "x".repeat(1000),
        t: "ValueError",
        c: "2026-12-06T10:00:00.000+00:00",
      },
    ]);
    expect(await f.redis.client.lrange(DLQ, 0, -1)).toEqual([a!.jobId]);
  });

  it("an attempt that is not ours records no death", async () => {
    const [a] = await claimed(1);
    expect(await move({ ...a!, fence: "other" }, "boom")).toBe(0);
    expect(await f.redis.client.exists("rrq:deaths")).toBe(0);
  });
});

describe("move-to-dlq: expire mode", () => {
  it("fails the job without a DLQ, a death or an attempt; counts expired", async () => {
    const [a] = await claimed(1);
    const error = "Job expired before it started (expires_at 2026-12-06T09:00:00.000+00:00)";
    expect(await move(a!, error, { mode: "expire", type: "expired" })).toBe(1);
    const h = await hash(a!.jobId);
    expect(h).toMatchObject({
      status: "FAILED",
      last_error: error,
      last_error_type: "expired",
      current_retries: "0",
      run_1_outcome: "expired",
      completion_time: "2026-12-06T10:00:00.000+00:00",
    });
    expect(await f.redis.client.exists(DLQ, SUMMARY, "rrq:deaths")).toBe(0);
    expect(await f.redis.client.hgetall("rrq:stats:queue:q")).toMatchObject({ expired: "1" });
    expect(await f.redis.client.hget("rrq:stats:queue:q", "failed")).toBeNull();
    expect(await f.redis.client.hgetall("rrq:stats:day:2026-12-06")).toEqual({ expired: "1" });
    const events = await f.redis.client.xrange(`rrq:events:job:${a!.jobId}`, "-", "+");
    expect(events.at(-1)![1]).toEqual(["event", "failed", "job_id", a!.jobId, "status", "FAILED"]);
    const recent = await f.redis.client.xrange("rrq:recent", "-", "+");
    expect(recent.at(-1)![1]).toEqual(["j", a!.jobId, "q", "rrq:queue:q", "f", "f", "s", "FAILED"]);
    expect(await f.redis.client.zscore("rrq:leases", a!.jobId)).toBeNull();
    expect(await f.redis.client.exists(`rrq:lock:job:${a!.jobId}`)).toBe(0);
    expect(await f.redis.client.ttl(`rrq:job:${a!.jobId}`)).toBeGreaterThan(600_000);
    // a re-sent call changes nothing
    expect(await move(a!, error, { mode: "expire", type: "expired" })).toBe(2);
    expect(await f.redis.client.hget("rrq:stats:queue:q", "expired")).toBe("1");
  });
});

describe("move-to-dlq: dlq_max_jobs", () => {
  it("trims the oldest entries beyond the cap, deleting their jobs, summary kept right", async () => {
    const attempts = await claimed(5);
    for (const [i, a] of attempts.entries())
      expect(await move(a, `error ${i % 2}`, { cap: 3 })).toBe(1);
    const ids = attempts.map((a) => a.jobId);
    expect(await f.redis.client.lrange(DLQ, 0, -1)).toEqual([ids[4], ids[3], ids[2]]);
    for (const id of ids.slice(0, 2)) {
      expect(await f.redis.client.exists(`rrq:job:${id}`, `rrq:events:job:${id}`)).toBe(0);
    }
    expect(await f.redis.client.hget(SUMMARY, "trimmed")).toBe("2");
    const summary = await dlqSummary(f.redis.client, DLQ);
    expect(summary).toMatchObject({ entries: 3, jobs: 3, avgRetries: 1 });
    expect(summary.byError).toEqual([
      ["error 0", 2],
      ["error 1", 1],
    ]);
    expect((await deaths()).map((d) => d.j)).toEqual(ids); // every death is recorded
    await expectSummaryRight();
  });

  it("a tombstone or an entry whose hash is gone is trimmed with its count", async () => {
    const attempts = await claimed(4);
    for (const a of attempts.slice(0, 2)) await move(a, "old");
    // an interrupted purge left a tombstone at the tail; one hash expired
    await f.redis.client.lset(DLQ, -1, "__rrqkit_removed__");
    await f.redis.client.hincrby(SUMMARY, "tombstones", 1);
    await f.redis.client.hincrby(SUMMARY, "len", -1);
    await f.redis.client.del(`rrq:job:${attempts[1]!.jobId}`);
    await move(attempts[2]!, "new", { cap: 1 });
    expect(await f.redis.client.lrange(DLQ, 0, -1)).toEqual([attempts[2]!.jobId]);
    expect(await f.redis.client.hget(SUMMARY, "tombstones")).toBeNull();
    await move(attempts[3]!, "new", { cap: 0 }); // no cap: nothing trimmed
    expect(await f.redis.client.llen(DLQ)).toBe(2);
    expect(await f.redis.client.hget(SUMMARY, "len")).toBe("2");
  });
});

describe("dlq-trim-age", () => {
  const trimAge = (maxAgeSeconds: number, limit = 1000) =>
    registerScripts(f.redis.client).run<[number, number]>(
      f.redis.client,
      "dlq-trim-age",
      [DLQ, SUMMARY],
      [maxAgeSeconds, limit],
    );

  it("removes entries older than the max age (or without a hash) from the tail", async () => {
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString().replace("Z", "+00:00");
    const attempts = await claimed(5);
    const ages = [7200, 4000, 4000, 60, 10]; // seconds ago, oldest first
    for (const [i, a] of attempts.entries())
      await move(a, `e${i}`, { at: iso(now - ages[i]! * 1000) });
    const ids = attempts.map((a) => a.jobId);
    // a Z suffix and another offset, still 4000 s ago
    await f.redis.client.hset(
      `rrq:job:${ids[1]}`,
      "completion_time",
      iso(now - 4000_000).replace("+00:00", "Z"),
    );
    // another offset, still 4000 s ago
    await f.redis.client.hset(
      `rrq:job:${ids[2]}`,
      "completion_time",
      new Date(now - 4000_000 + 2 * 3600_000).toISOString().replace("Z", "+02:00"),
    );
    expect(await trimAge(3600, 2)).toEqual([2, 1]);
    expect(await trimAge(3600)).toEqual([1, 0]);
    expect(await f.redis.client.lrange(DLQ, 0, -1)).toEqual([ids[4], ids[3]]);
    expect(await f.redis.client.exists(...ids.slice(0, 3).map((id) => `rrq:job:${id}`))).toBe(0);
    expect(await f.redis.client.hget(SUMMARY, "trimmed")).toBe("3");
    expect(await trimAge(3600)).toEqual([0, 0]);
    await expectSummaryRight();
  });

  it("leaves a young tail and an empty list alone; 0 disables it", async () => {
    expect(await trimAge(60)).toEqual([0, 0]);
    const [a] = await claimed(1);
    await move(a!, "e", { at: new Date(Date.now() - 10_000).toISOString() });
    expect(await trimAge(0)).toEqual([0, 0]);
    expect(await trimAge(3600)).toEqual([0, 0]);
    expect(await trimAge(5)).toEqual([1, 0]);
    expect(await f.redis.client.exists(DLQ)).toBe(0);
  });

  it("an entry whose job hash is gone, or whose time is unreadable, counts as old", async () => {
    const attempts = await claimed(3);
    for (const a of attempts) await move(a, "e", { at: new Date().toISOString() });
    await f.redis.client.del(`rrq:job:${attempts[0]!.jobId}`);
    await f.redis.client.hset(`rrq:job:${attempts[1]!.jobId}`, "completion_time", "yesterday");
    expect(await trimAge(3600)).toEqual([2, 0]);
    expect(await f.redis.client.lrange(DLQ, 0, -1)).toEqual([attempts[2]!.jobId]);
    expect(await f.redis.client.hget(SUMMARY, "len")).toBe("1");
  });

  it("drops a stale entry (its job left the DLQ another way) without deleting the job", async () => {
    const [a] = await claimed(1);
    await move(a!, "e", { at: "2020-01-01T00:00:00+00:00" });
    await f.redis.client.hset(`rrq:job:${a!.jobId}`, "status", "PENDING");
    expect(await trimAge(3600)).toEqual([1, 0]);
    expect(await f.redis.client.hget(`rrq:job:${a!.jobId}`, "status")).toBe("PENDING");
  });
});
