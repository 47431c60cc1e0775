/**
 * Cron: schedules, the exactly-once fire script, catch-up after downtime, and three
 * orchestrators sharing one Redis for 20 s.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import {
  CronScheduler,
  latestFire,
  nextFire,
  parseCronEntry,
  type CronEntry,
} from "../src/orchestrator/cron.js";
import { EventBus } from "../src/telemetry/events.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => redis?.stop());

const cronConfig = (jobs: Array<Record<string, unknown>>) =>
  resolveConfig({ redis_dsn: redis.url, cron_jobs: jobs });
const entry = (schedule: string, extra: Record<string, unknown> = {}): CronEntry =>
  parseCronEntry(
    { functionName: "tick", schedule, params: {}, queueName: undefined, unique: false, ...extra },
    "rrq:queue:default",
  );
/** Jobs a cron entry enqueued, by fire time. */
async function cronJobs(fn = "tick"): Promise<Array<Record<string, string>>> {
  const keys = await redis.client.keys("rrq:job:*");
  const hashes = await Promise.all(keys.map((k) => redis.client.hgetall(k)));
  return hashes
    .filter((h) => h.function_name === fn && h.cron_fire_time)
    .sort((a, b) => Date.parse(a.cron_fire_time!) - Date.parse(b.cron_fire_time!));
}

describe("schedules (RRQ's 6/7-field UTC cron)", () => {
  it("computes next and latest fire times to the second", () => {
    const every2 = entry("*/2 * * * * *");
    const at = Date.UTC(2026, 10, 23, 10, 0, 0, 500);
    expect(nextFire(every2, at)).toBe(Date.UTC(2026, 10, 23, 10, 0, 2));
    expect(latestFire(every2, at)).toBe(Date.UTC(2026, 10, 23, 10, 0, 0));
    expect(latestFire(every2, Date.UTC(2026, 10, 23, 10, 0, 2))).toBe(
      Date.UTC(2026, 10, 23, 10, 0, 2),
    );
    // day-of-week as the Rust cron crate numbers it: 1 = Sunday
    expect(new Date(nextFire(entry("0 0 9 * * 1"), at)!).getUTCDay()).toBe(0);
    expect(new Date(nextFire(entry("0 0 9 * * Mon"), at)!).getUTCDay()).toBe(1);
    expect(nextFire(entry("0 0 0 1 1 * 2030"), at)).toBe(Date.UTC(2030, 0, 1));
  });

  it("rejects invalid and 5-field schedules; the scheduler skips them and runs the rest", () => {
    expect(() => entry("* * * * *")).toThrow(/invalid schedule/);
    expect(() => entry("every minute")).toThrow(/invalid schedule/);
    const errors: string[] = [];
    const events = new EventBus();
    events.on("worker:error", (e) => errors.push(e.error.message));
    const scheduler = new CronScheduler(
      redis.client,
      cronConfig([
        { function_name: "bad", schedule: "nope" },
        { function_name: "good", schedule: "0 * * * * *" },
      ]),
      events,
    );
    expect(scheduler.jobs.map((j) => j.config.functionName)).toEqual(["good"]);
    expect(errors[0]).toMatch(/cron job 'bad': invalid schedule/);
  });
});

describe("cron-fire: exactly once per fire time", () => {
  beforeEach(() => redis.flush());

  it("one job per fire time however many schedulers try; older times are refused", async () => {
    const config = cronConfig([
      { function_name: "tick", schedule: "*/2 * * * * *", params: { b: 1, a: 2 } },
    ]);
    const a = new CronScheduler(redis.client, config, new EventBus());
    const other = redis.client.duplicate();
    const b = new CronScheduler(other, config, new EventBus());
    const t = Date.UTC(2026, 0, 1, 0, 0, 2);
    const results = await Promise.all([a, b, a, b].map((s) => s.fire(s.jobs[0]!, t)));
    expect(results.filter((r) => r.kind === "enqueued")).toHaveLength(1);
    expect(results.filter((r) => r.kind === "already-fired")).toHaveLength(3);
    expect((await a.fire(a.jobs[0]!, t - 2000)).kind).toBe("already-fired");
    other.disconnect();
    const [job] = await cronJobs();
    expect(job).toMatchObject({
      function_name: "tick",
      job_params: '{"a":2,"b":1}',
      status: "PENDING",
      current_retries: "0",
      max_retries: "5",
      job_timeout_seconds: "300",
      result_ttl_seconds: "86400",
      queue_name: "rrq:queue:default",
      result: "null",
      cron_fire_time: "2026-01-01T00:00:02+00:00",
    });
    expect(job!.job_unique_key).toBeUndefined();
    expect(await redis.client.zscore("rrq:queue:default", job!.id!)).not.toBeNull();
  });

  it("unique entries skip while the previous job holds rrq:lock:unique:cron:<fn>", async () => {
    const config = cronConfig([
      { function_name: "tick", schedule: "* * * * * *", unique: true, queue_name: "u" },
    ]);
    const s = new CronScheduler(redis.client, config, new EventBus());
    const first = await s.fire(s.jobs[0]!, Date.UTC(2026, 0, 1, 0, 0, 1));
    expect(first.kind).toBe("enqueued");
    const id = first.kind === "enqueued" ? first.jobId : "";
    expect(await redis.client.get("rrq:lock:unique:cron:tick")).toBe(id);
    expect(await redis.client.ttl("rrq:lock:unique:cron:tick")).toBeGreaterThan(21000);
    expect(await redis.client.hget(`rrq:job:${id}`, "job_unique_key")).toBe("cron:tick");
    expect(await s.fire(s.jobs[0]!, Date.UTC(2026, 0, 1, 0, 0, 2))).toEqual({
      kind: "skipped-unique",
      holder: id,
    });
    await redis.client.del("rrq:lock:unique:cron:tick"); // the job finished
    expect((await s.fire(s.jobs[0]!, Date.UTC(2026, 0, 1, 0, 0, 3))).kind).toBe("enqueued");
  });

  it("catch-up after downtime fires the most recent missed time once; a new entry starts from now", async () => {
    // The entry fires at second 0 of every minute, and this test expects no regular fire during
    // its ~1 s: start it clear of the next minute boundary.
    const toNextMinute = 60_000 - (Date.now() % 60_000);
    if (toNextMinute < 5000) await new Promise((r) => setTimeout(r, toNextMinute + 200));
    const config = cronConfig([{ function_name: "tick", schedule: "0 * * * * *" }]);
    const probe = new CronScheduler(redis.client, config, new EventBus());
    const id = probe.jobs[0]!.id;
    // the last fire any orchestrator handled was 30 minutes ago: 29-30 minutes were missed
    await redis.client.hset(`rrq:cron:${id}`, "last_fire", Date.now() - 30 * 60_000);
    const fired: number[] = [];
    const s = new CronScheduler(redis.client, config, new EventBus(), (_e, at) => fired.push(at));
    s.start();
    await waitFor(() => fired.length > 0, 5000, "the catch-up fire");
    await new Promise((r) => setTimeout(r, 300));
    await s.stop();
    expect(fired).toEqual([latestFire(s.jobs[0]!, Date.now())]);
    expect(await cronJobs()).toHaveLength(1);

    await redis.flush();
    const fresh = new CronScheduler(redis.client, config, new EventBus(), (_e, at) =>
      fired.push(at),
    );
    fresh.start();
    await new Promise((r) => setTimeout(r, 300));
    await fresh.stop();
    expect(await cronJobs()).toHaveLength(0);
    expect(Number(await redis.client.hget(`rrq:cron:${id}`, "last_fire"))).toBeGreaterThan(
      Date.now() - 5000,
    );
  });
});

describe("three orchestrators", () => {
  beforeEach(() => redis.flush());

  it("a job every 2 s fires once per fire time over 20 s: no duplicates, none missed", async () => {
    const config = testConfig(redis.url, {
      cron_jobs: [{ function_name: "echo", schedule: "*/2 * * * * *", params: { from: "cron" } }],
    });
    const workers = [
      new RunningWorker(config),
      new RunningWorker(config),
      new RunningWorker(config),
    ];
    await Promise.all(workers.map((w) => w.start()));
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 20_000));
    const stopped = Date.now();
    await Promise.all(workers.map((w) => w.stop()));
    const jobs = await cronJobs("echo");
    const times = jobs.map((j) => Date.parse(j.cron_fire_time!));
    expect(new Set(times).size).toBe(times.length);
    // every even second inside the window was fired (the last 1.5 s are left out: a loaded
    // machine may stop the workers before a timer due just then runs), and nothing outside it
    const expected: number[] = [];
    for (let t = Math.ceil((started + 1) / 2000) * 2000; t < stopped - 1500; t += 2000)
      expected.push(t);
    expect(times.filter((t) => t >= expected[0]! && t <= expected.at(-1)!)).toEqual(expected);
    expect(times.length).toBeGreaterThanOrEqual(9);
    expect(times.length).toBeLessThanOrEqual(11);
    // the jobs ran, and the state counted each fire once
    expect(jobs.filter((j) => j.status === "COMPLETED").length).toBeGreaterThanOrEqual(
      times.length - 1,
    );
    const fired = Number(
      await redis.client.hget(
        `rrq:cron:${parseCronEntry(config.cronJobs[0]!, config.defaultQueueName).id}`,
        "fired",
      ),
    );
    expect(fired).toBe(times.length);
  }, 60_000);
});
