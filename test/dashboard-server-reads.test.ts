/**
 * Pieces of the dashboard's reads on their own: the per-minute chart counted incrementally from
 * the `rrq:recent` feed (batched entries, no double counting under concurrent reads, a flushed
 * feed counted again), and the trace id taken from a job's trace context.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PerMinuteCounter } from "../src/dashboard/server/per-minute.js";
import { traceIdOf, WorkerDirectory } from "../src/dashboard/server/reads.js";
import { RrqApi } from "../src/api/index.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const MINUTE = 60_000;

describe("per-minute counts from the recent feed", () => {
  it("counts single and batched entries by minute, reading only new entries", async () => {
    const now = Math.floor(Date.now() / MINUTE) * MINUTE + 30_000;
    const add = (at: number, ...fields: string[]) =>
      redis.client.xadd("rrq:recent", `${at}-*`, ...fields);
    await add(now - 61 * MINUTE, "j", "old", "s", "COMPLETED");
    await add(now - 2 * MINUTE, "j", "a", "s", "COMPLETED");
    await add(now - 2 * MINUTE, "js", JSON.stringify(["b", "c", "d"]), "s", "COMPLETED");
    await add(now - MINUTE, "j", "e", "s", "FAILED");
    const counter = new PerMinuteCounter(redis.client);
    const [first, again] = await Promise.all([counter.read(now), counter.read(now)]);
    expect(first).toHaveLength(60);
    expect(first[57]).toMatchObject({ t: now - 30_000 - 2 * MINUTE, completed: 4, failed: 0 });
    expect(first[58]).toMatchObject({ completed: 0, failed: 1 });
    expect(again).toEqual(first);
    await add(now, "j", "f", "s", "CANCELLED");
    await add(now, "j", "g", "s", "COMPLETED");
    const later = await counter.read(now);
    expect(later[59]).toMatchObject({ completed: 1, cancelled: 1 });
    expect(later[57]!.completed).toBe(4);
    // an hour on, those minutes have left the window
    const hourLater = await counter.read(now + 60 * MINUTE);
    expect(hourLater.every((m) => m.completed + m.failed + m.cancelled === 0)).toBe(true);
  });

  it("counts again from scratch after the feed is flushed", async () => {
    await redis.flush();
    const now = Date.now();
    const counter = new PerMinuteCounter(redis.client);
    await redis.client.xadd("rrq:recent", `${now}-*`, "j", "x", "s", "COMPLETED");
    expect((await counter.read(now))[59]!.completed).toBeGreaterThanOrEqual(1);
    await redis.flush();
    await redis.client.xadd("rrq:recent", `${now - 5000}-*`, "j", "y", "s", "FAILED");
    const rows = await counter.read(now);
    expect(rows.reduce((n, m) => n + m.completed, 0)).toBe(0);
    expect(rows.reduce((n, m) => n + m.failed, 0)).toBe(1);
  });
});

describe("per-minute retries", () => {
  it("are read from the minute counters the retry script keeps (not in the feed)", async () => {
    await redis.flush();
    const now = Math.floor(Date.now() / MINUTE) * MINUTE + 30_000;
    const minute = (at: number) => `rrq:stats:minute:${new Date(at).toISOString().slice(0, 16)}`;
    await redis.client.hset(minute(now - 3 * MINUTE), "retried", "4");
    await redis.client.hset(minute(now), "retried", "2");
    await redis.client.hset(minute(now - 61 * MINUTE), "retried", "9"); // out of the window
    const rows = await new PerMinuteCounter(redis.client).read(now);
    expect(rows[56]).toMatchObject({ t: now - 30_000 - 3 * MINUTE, retried: 4 });
    expect(rows[59]!.retried).toBe(2);
    expect(rows.reduce((n, m) => n + m.retried, 0)).toBe(6);
  });
});

describe("worker directory", () => {
  it("a background refresh that fails keeps the old list and raises nothing", async () => {
    await redis.flush();
    await redis.client.set("rrq:health:worker:w1", "{}");
    const api = new RrqApi(redis.client.duplicate());
    const directory = new WorkerDirectory(api, 0);
    expect(await directory.current()).toEqual(["w1"]); // the first call waits for its scan
    await api.redis.quit(); // as at shutdown: the API's connection closes under a refresh
    expect(await directory.current()).toEqual(["w1"]); // the refresh fails in the background
    await new Promise((resolve) => setTimeout(resolve, 50)); // no unhandled rejection meanwhile
  });
});

describe("trace ids", () => {
  it("takes the trace id of a W3C traceparent, and nothing else", () => {
    expect(
      traceIdOf('{"traceparent":"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"}'),
    ).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(traceIdOf('{"traceparent":"garbage"}')).toBeNull();
    expect(traceIdOf('{"traceparent":"00-x\\"><script>-b7ad6b7169203331-01"}')).toBeNull();
    expect(traceIdOf("not json")).toBeNull();
    expect(traceIdOf(undefined)).toBeNull();
  });
});
