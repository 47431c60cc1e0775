/**
 * DLQ operations at scale and next to other writers: the summary stays right (or is rebuilt),
 * an interrupted bulk requeue leaves every job in exactly one place, and expired entries are
 * handled as RRQ handles them.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { RrqApi } from "../src/api/index.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

let redis: TestRedis;
let api: RrqApi;
const DLQ = "rrq:dlq:default";

/** Writes FAILED jobs as RRQ's orchestrator leaves them (hash, 7-day TTL, LPUSH), oldest first. */
async function failedJobs(
  n: number,
  make: (i: number) => { fn: string; queue: string; error: string },
) {
  const pipeline = redis.client.pipeline();
  for (let i = 0; i < n; i++) {
    const { fn, queue, error } = make(i);
    const id = `dead-${i}`;
    pipeline.hset(`rrq:job:${id}`, {
      id,
      function_name: fn,
      job_params: "{}",
      enqueue_time: "2026-01-01T00:00:00+00:00",
      completion_time: new Date(Date.UTC(2026, 0, 2) + i * 1000)
        .toISOString()
        .replace("Z", "+00:00"),
      status: "FAILED",
      current_retries: String(i % 4),
      max_retries: "3",
      queue_name: queue,
      last_error: error,
      result: "null",
    });
    pipeline.expire(`rrq:job:${id}`, 604800);
    pipeline.lpush(DLQ, id);
  }
  await pipeline.exec();
}

/** Every job is either FAILED and listed in the DLQ once, or PENDING in `queue` and not listed. */
async function assertConsistent(n: number, queue: string) {
  const listed = await redis.client.lrange(DLQ, 0, -1);
  expect(listed).not.toContain("__rrqkit_removed__");
  expect(new Set(listed).size).toBe(listed.length);
  const inDlq = new Set(listed);
  const pipeline = redis.client.pipeline();
  for (let i = 0; i < n; i++)
    pipeline.hget(`rrq:job:dead-${i}`, "status").zscore(queue, `dead-${i}`);
  const replies = (await pipeline.exec())!;
  for (let i = 0; i < n; i++) {
    const status = replies[i * 2]![1];
    const queued = replies[i * 2 + 1]![1] !== null;
    const expected = inDlq.has(`dead-${i}`) ? ["FAILED", false] : ["PENDING", true];
    if (status !== expected[0] || queued !== expected[1])
      expect({ id: `dead-${i}`, status, queued }).toEqual({
        id: `dead-${i}`,
        status: expected[0],
        queued: expected[1],
      });
  }
}

beforeAll(async () => {
  redis = await startRedis();
  api = RrqApi.connect(redis.url);
});
beforeEach(() => redis.flush());
afterAll(async () => {
  await api?.close();
  await redis?.stop();
});

describe("DLQ summary", () => {
  it("is rebuilt once after another writer (RRQ) changed the list, then trusted", async () => {
    await failedJobs(30, (i) => ({
      fn: i % 3 === 0 ? "a" : "b",
      queue: "rrq:queue:q",
      error: i % 2 === 0 ? "even" : "odd",
    }));
    const first = await api.dlq.stats();
    expect(first).toMatchObject({
      entries: 30,
      jobs: 30,
      rebuilt: true,
      byFunction: [
        ["b", 20],
        ["a", 10],
      ],
      byError: [
        ["even", 15],
        ["odd", 15],
      ],
    });
    expect(first.avgRetries).toBeCloseTo(43 / 30, 5); // current_retries = i % 4
    expect(first.oldest).toBe(Date.UTC(2026, 0, 2));
    expect(first.newest).toBe(Date.UTC(2026, 0, 2) + 29_000);
    expect((await api.dlq.stats()).rebuilt).toBe(false);
    // RRQ's requeue removes one entry with LREM: the summary no longer matches, so it is redone
    await redis.client.lrem(DLQ, 1, "dead-0");
    expect(await api.dlq.stats()).toMatchObject({ entries: 29, jobs: 29, rebuilt: true });
  });

  it("counts entries whose hash expired apart, and requeue drops them", async () => {
    await failedJobs(3, () => ({ fn: "f", queue: "rrq:queue:q", error: "e" }));
    await redis.client.del("rrq:job:dead-1");
    expect(await api.dlq.stats({ rebuild: true })).toMatchObject({ entries: 3, jobs: 2 });
    expect((await api.dlq.list()).jobs.map((j) => j.id)).toEqual(["dead-2", "dead-0"]);
    const result = await api.dlq.requeue({ all: true }, { targetQueue: "back" });
    expect(result).toMatchObject({ done: 2, missing: 1 });
    expect(await redis.client.llen(DLQ)).toBe(0);
    expect(await api.dlq.stats()).toMatchObject({ entries: 0, jobs: 0 });
  });

  it("caps distinct errors at 200 and counts the rest together", async () => {
    await failedJobs(250, (i) => ({ fn: "f", queue: "rrq:queue:q", error: `error number ${i}` }));
    const s = await api.dlq.stats();
    expect(s.byError.length).toBe(201);
    expect(s.byError[0]).toEqual(["(other errors)", 50]);
  });
});

describe("bulk requeue", () => {
  it("with a filter, interrupted half-way: every job is in exactly one place; resuming finishes", async () => {
    const n = 3000;
    await failedJobs(n, (i) => ({ fn: i % 2 ? "odd" : "even", queue: "rrq:queue:q", error: "x" }));
    await api.dlq.stats(); // the summary now matches the list
    const controller = new AbortController();
    let batches = 0;
    const first = await api.dlq.requeue(
      { functionName: "odd" },
      {
        targetQueue: "back",
        batchSize: 100,
        signal: controller.signal,
        onProgress: () => {
          if (++batches === 2) controller.abort();
        },
      },
    );
    expect(first.interrupted).toBe(true);
    expect(first.done).toBeGreaterThan(0);
    expect(first.done).toBeLessThan(n / 2);
    await assertConsistent(n, "rrq:queue:back");
    const mid = await api.dlq.stats();
    expect(mid).toMatchObject({ entries: n - first.done, jobs: n - first.done, rebuilt: false });
    const rest = await api.dlq.requeue({ functionName: "odd" }, { targetQueue: "back" });
    expect(first.done + rest.done).toBe(n / 2);
    await assertConsistent(n, "rrq:queue:back");
    expect(await api.dlq.stats()).toMatchObject({
      entries: n / 2,
      byFunction: [["even", n / 2]],
      rebuilt: false,
    });
  });

  it("a failure pushed while a requeue runs stays in the DLQ", async () => {
    await failedJobs(1000, () => ({ fn: "f", queue: "rrq:queue:q", error: "x" }));
    let pushed = false;
    const result = await api.dlq.requeue(
      { queue: "q" },
      {
        targetQueue: "back",
        batchSize: 100,
        onProgress: () => {
          if (pushed) return;
          pushed = true;
          void redis.client
            .multi()
            .hset("rrq:job:late", {
              id: "late",
              function_name: "f",
              status: "FAILED",
              queue_name: "rrq:queue:q",
            })
            .lpush(DLQ, "late")
            .exec();
        },
      },
    );
    expect(result.done).toBe(1000);
    expect(await redis.client.lrange(DLQ, 0, -1)).toEqual(["late"]);
  });

  it("--all takes the newest first, up to --limit; purge deletes", async () => {
    await failedJobs(10, () => ({ fn: "f", queue: "rrq:queue:q", error: "x" }));
    const requeued = await api.dlq.requeue({ all: true, limit: 3 }, { targetQueue: "back" });
    expect(requeued.done).toBe(3);
    expect(await redis.client.zrange("rrq:queue:back", 0, -1)).toEqual(
      expect.arrayContaining(["dead-9", "dead-8", "dead-7"]),
    );
    const dry = await api.dlq.purge({ functionName: "f" }, { dryRun: true });
    expect(dry.selected).toHaveLength(7);
    expect(await redis.client.llen(DLQ)).toBe(7);
    const purged = await api.dlq.purge({ all: true });
    expect(purged.done).toBe(7);
    expect(await redis.client.exists("rrq:job:dead-0")).toBe(0);
    await expect(api.dlq.purge({})).rejects.toThrow(/without --all or filters/);
  });

  it("a requeue gives the job a fresh snooze budget and drops its expiry (job control)", async () => {
    await failedJobs(2, () => ({ fn: "f", queue: "rrq:queue:q", error: "x" }));
    for (const id of ["dead-0", "dead-1"])
      await redis.client.hset(`rrq:job:${id}`, {
        snoozes: "7",
        expires_at: "2026-01-01T00:00:01Z",
      });
    await api.dlq.requeue({ all: true }, { targetQueue: "back" });
    for (const id of ["dead-0", "dead-1"]) {
      const hash = await redis.client.hgetall(`rrq:job:${id}`);
      expect(hash).toMatchObject({ status: "PENDING", current_retries: "0" });
      expect(hash).not.toHaveProperty("snoozes");
      expect(hash).not.toHaveProperty("expires_at");
    }
  });

  it("deleting a FAILED job removes its DLQ entry and keeps the summary right", async () => {
    await failedJobs(5, () => ({ fn: "f", queue: "rrq:queue:q", error: "x" }));
    expect(await api.jobs.delete("dead-2")).toEqual({ ok: true, status: "FAILED" });
    expect(await redis.client.lrange(DLQ, 0, -1)).not.toContain("dead-2");
    expect(await api.dlq.stats()).toMatchObject({ entries: 4, jobs: 4 });
  });
});
