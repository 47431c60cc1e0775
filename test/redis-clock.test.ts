/**
 * Issue 19 item 2: cross-orchestrator time decisions use Redis's clock. The clock module's offset
 * math against a real redis-server (the local clock injected), and workers whose local clock is
 * skewed (injected) that still recover a dead worker's jobs within a lease and do not start
 * deferred jobs early.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { bestOffset, RedisClock, sampleOffset } from "../src/clock/redis-clock.js";
import { Worker } from "../src/orchestrator/worker.js";
import { CronScheduler } from "../src/orchestrator/cron.js";
import { Producer } from "../src/producer/producer.js";
import { JobStore } from "../src/store/job-store.js";
import { EventBus } from "../src/telemetry/events.js";
import { resolveConfig } from "../src/config/config.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { jobSettled, testConfig, waitFor } from "./support/worker-harness.js";

let redis: TestRedis;
let producer: Producer;
const stops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
});
afterAll(async () => {
  await producer.close();
  await redis.stop();
});
beforeEach(async () => redis.flush());
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** Redis's clock, read directly (epoch ms). */
async function redisNow(): Promise<number> {
  const [s, us] = await redis.client.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

const skewed = (ms: number) => () => Date.now() + ms;

describe("RedisClock", () => {
  it("measures Redis minus local time, centred on the round trip", async () => {
    for (const skew of [30_000, -30_000, 300_000]) {
      const sample = await sampleOffset(redis.client, skewed(skew));
      // redis-server runs on this host, so its clock is Date.now(): the offset undoes the skew
      expect(Math.abs(sample.offsetMs + skew)).toBeLessThanOrEqual(sample.rttMs + 5);
    }
  });

  it("keeps the sample with the shortest round trip, and 0 within its uncertainty", () => {
    const samples = [
      { offsetMs: 30_012, rttMs: 20 },
      { offsetMs: 30_001, rttMs: 1 },
      { offsetMs: 29_990, rttMs: 9 },
    ];
    expect(bestOffset(samples)).toEqual({ offsetMs: 30_001, rttMs: 1 });
    // a host in sync: a few ms of noise is not a correction
    expect(bestOffset([{ offsetMs: 4, rttMs: 8 }])).toEqual({ offsetMs: 0, rttMs: 8 });
    expect(bestOffset([{ offsetMs: -7, rttMs: 4 }])).toEqual({ offsetMs: -7, rttMs: 4 });
  });

  it("now() follows Redis's clock whatever the local clock says", async () => {
    const clock = new RedisClock(redis.client, { localNow: skewed(-30_000) });
    expect(clock.synced).toBe(false);
    await clock.start();
    stops.push(() => Promise.resolve(clock.stop()));
    expect(clock.synced).toBe(true);
    expect(Math.abs(clock.now() - (await redisNow()))).toBeLessThan(100);
    expect(Math.abs(clock.offsetMs - 30_000)).toBeLessThan(100);
  });

  it("reports a skew past the threshold once, and again only when it moves as much", async () => {
    let skew = 5000;
    const reports: number[] = [];
    const clock = new RedisClock(redis.client, {
      localNow: () => Date.now() + skew,
      warnThresholdMs: 1000,
      onSkew: (offset) => reports.push(offset),
    });
    await clock.refresh();
    await clock.refresh();
    expect(reports).toHaveLength(1);
    expect(Math.abs(reports[0]! + 5000)).toBeLessThan(100);
    skew = 5300; // moved less than the threshold: no new report
    await clock.refresh();
    expect(reports).toHaveLength(1);
    skew = 60_000;
    await clock.refresh();
    expect(reports).toHaveLength(2);
    skew = 0; // back in sync: quiet, and a later skew is reported again
    await clock.refresh();
    skew = -2000;
    await clock.refresh();
    expect(reports).toHaveLength(3);
  });
});

/** A worker in this process whose local clock is `skewMs` off. */
async function skewedWorker(skewMs: number, events = new EventBus()): Promise<Worker> {
  const config = testConfig(redis.url, {
    lease_seconds: 1,
    lease_renew_interval_seconds: 0.25,
    default_poll_delay_seconds: 0.05,
  });
  const worker = new Worker({ config, events, localNow: skewed(skewMs) });
  const done = worker.run();
  stops.push(async () => {
    worker.requestShutdown();
    await done;
  });
  await waitFor(() => worker.status !== "initializing", 30_000, "worker start");
  return worker;
}

describe("a worker with a skewed local clock", () => {
  it("recovers a crashed worker's job within about a lease when its clock is 30 s behind", async () => {
    const id = await producer.enqueue("echo", { n: 1 });
    // A worker that claimed the job (1 s lease) and crashed; its health key is still live, so
    // only the lease index can bring the job back soon.
    const dead = new JobStore(redis.client);
    const { claimed } = await dead.claim("rrq:queue:default", "rrq_worker_dead", 1, 1000);
    expect(claimed.map((c) => c.id)).toEqual([id]);
    await redis.client.set("rrq:health:worker:rrq_worker_dead", "{}", "EX", 60);
    const crashedAt = Date.now();
    await skewedWorker(-30_000);
    const hash = await jobSettled(redis.client, id);
    expect(hash.status).toBe("COMPLETED");
    // by the local clock the lease looked 30 s from expiry: before the fix this took ~31 s
    expect(Date.now() - crashedAt).toBeLessThan(10_000);
  });

  it("keeps its own leases alive when its clock is 30 s behind (no spurious recovery)", async () => {
    const events = new EventBus();
    const recovered: number[] = [];
    events.on("recovery:done", (e) => recovered.push(e.recovered));
    await skewedWorker(-30_000, events);
    // a second, honest worker recovers leases it sees as expired
    await skewedWorker(0);
    const id = await producer.enqueue("sleep", { ms: 2500 });
    const hash = await jobSettled(redis.client, id);
    expect(hash.status).toBe("COMPLETED");
    expect(hash.recovery_count ?? "0").toBe("0");
    expect(hash.runs).toBe("1");
  });

  it("does not start a deferred job before its run-at time when its clock is 30 s ahead", async () => {
    const events = new EventBus();
    const claimedAt = new Map<string, number>();
    events.on("job:claimed", (job) => claimedAt.set(job.jobId, Date.now()));
    const worker = await skewedWorker(30_000, events);
    expect(worker.status).not.toBe("initializing");
    const id = await producer.enqueue("echo", {}, { deferBySeconds: 2 });
    const score = Number(await redis.client.zscore("rrq:queue:default", id));
    await jobSettled(redis.client, id);
    // this host's Date.now() is redis-server's clock; 50 ms for the event's way back to us
    expect(claimedAt.get(id)).toBeGreaterThanOrEqual(score - 50);
  });

  it("health record carries the measured offset", async () => {
    const worker = await skewedWorker(-30_000);
    const record = await waitFor(async () => {
      const raw = await redis.client.get(`rrq:health:worker:${worker.workerId}`);
      const parsed = raw ? (JSON.parse(raw) as { clock_offset_ms?: number }) : undefined;
      return parsed?.clock_offset_ms === undefined ? undefined : parsed;
    });
    expect(Math.abs(record.clock_offset_ms! - 30_000)).toBeLessThan(200);
  });
});

describe("rrq check", () => {
  it("shows each rrqkit worker's clock offset, flagged past 1 s", async () => {
    const record = (id: string, offset: number) =>
      redis.client.set(
        `rrq:health:worker:${id}`,
        JSON.stringify({ worker_id: id, status: "polling", clock_offset_ms: offset }),
        "EX",
        60,
      );
    await record("w_ahead", -30_000);
    await record("w_synced", 3);
    const text = await runCli(writeConfig(redis.url), ["check"]);
    expect(text.code).toBe(0);
    expect(text.out).toContain("    Clock: WARNING: 30000 ms ahead of Redis's clock");
    expect(text.out).toContain("    Clock: in sync with Redis (offset 3 ms)");
  });
});

describe("cron on Redis's clock", () => {
  it("an orchestrator 30 s ahead neither fires early nor claims the fleet's future", async () => {
    const config = resolveConfig({
      redis_dsn: redis.url,
      cron_jobs: [{ function_name: "tick", schedule: "*/2 * * * * *" }],
    });
    const clock = new RedisClock(redis.client, { localNow: skewed(30_000) });
    await clock.start();
    stops.push(() => Promise.resolve(clock.stop()));
    const fires: Array<{ fireMs: number; at: number }> = [];
    const ahead = new CronScheduler(
      redis.client,
      config,
      new EventBus(),
      (_entry, fireMs) => fires.push({ fireMs, at: Date.now() }),
      clock,
    );
    ahead.start();
    stops.push(() => ahead.stop());
    await waitFor(() => fires.length >= 2, 10_000, "two cron fires");
    for (const fire of fires) expect(fire.at).toBeGreaterThanOrEqual(fire.fireMs - 50);
    const [last] = await redis.client.hmget(`rrq:cron:${ahead.jobs[0]!.id}`, "last_fire");
    expect(Number(last)).toBeLessThanOrEqual(Date.now() + 50);
  });
});
