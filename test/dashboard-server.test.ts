/**
 * The dashboard's JSON API against a real orchestrator with jobs in every state: every read
 * endpoint answers with the contract's shapes, and every action changes Redis as the matching
 * CLI command does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsFrom } from "../src/api/settings.js";
import { RrqApi, startDashboardServer, type RunningDashboard } from "../src/index.js";
import { Producer } from "../src/producer/producer.js";
import type {
  CronJson,
  DlqJson,
  JobDetailJson,
  JobsJson,
  OverviewJson,
  QueueJobsJson,
  QueueRow,
  WorkersJson,
} from "../src/dashboard/server/reads.js";
import { DashboardClient, fakeUiDir } from "./support/dashboard-client.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { GOLDEN_SETTINGS, RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

let redis: TestRedis;
let worker: RunningWorker;
let api: RrqApi;
let producer: Producer;
let dashboard: RunningDashboard;
let client: DashboardClient;
const ids: Record<string, string> = {};

/** An action's answer: the API's result, or the error. */
interface ActionJson {
  ok?: boolean;
  jobId?: string;
  done?: number;
  count?: number;
  dryRun?: boolean;
  wasQuiet?: boolean;
  status?: string;
  error?: { code: string; message: string };
}
type Job = JobsJson["jobs"][number];
const idOf = (j: Job) => j.id;

const status = (id: string) => redis.client.hget(`rrq:job:${id}`, "status");

beforeAll(async () => {
  redis = await startRedis();
  const config = testConfig(redis.url, {
    ...GOLDEN_SETTINGS,
    default_result_ttl_seconds: 600,
    default_job_timeout_seconds: 30,
    dashboard_trace_url: "https://tempo.example/trace/{trace_id}",
    cron_jobs: [{ function_name: "echo", schedule: "0 0 0 1 1 *", queue_name: "alpha" }],
  });
  api = new RrqApi(redis.client.duplicate(), apiSettingsFrom(config), true);
  producer = new Producer({ redisDsn: redis.url, maxRetries: 3 });
  worker = await new RunningWorker(config, ["alpha"]).start();
  ids.done = await producer.enqueue("echo", { n: 1 }, { queueName: "alpha" });
  ids.dead = await producer.enqueue(
    "fail",
    { message: "boom <img src=x>" },
    { queueName: "alpha", maxRetries: 1 },
  );
  ids.dead2 = await producer.enqueue(
    "fail",
    { message: "other" },
    { queueName: "alpha", maxRetries: 1 },
  );
  ids.traced = await producer.enqueue(
    "echo",
    {},
    {
      queueName: "alpha",
      traceContext: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
    },
  );
  ids.running = await producer.enqueue("sleep", { ms: 20_000 }, { queueName: "alpha" });
  // beta has no worker: its jobs wait
  ids.ready = await producer.enqueue("echo", { wait: 1 }, { queueName: "beta" });
  ids.ready2 = await producer.enqueue("echo", { wait: 2 }, { queueName: "beta" });
  ids.deferred = await producer.enqueue("echo", {}, { queueName: "beta", deferBySeconds: 3600 });
  await waitFor(
    async () =>
      (await status(ids.done!)) === "COMPLETED" &&
      (await status(ids.traced!)) === "COMPLETED" &&
      (await status(ids.dead!)) === "FAILED" &&
      (await status(ids.dead2!)) === "FAILED" &&
      (await status(ids.running!)) === "ACTIVE",
    20_000,
    "jobs to settle",
  );
  dashboard = await startDashboardServer({ api, config, port: 0, uiDir: fakeUiDir() });
  client = new DashboardClient(dashboard.url);
});

afterAll(async () => {
  await dashboard?.close();
  await api?.jobs.cancel(ids.running!);
  await worker?.stop();
  await producer?.close();
  await api?.close();
  await redis?.stop();
});

describe("read endpoints", () => {
  it("config says what the UI needs", async () => {
    const { status, body } = await client.get("api/config");
    expect(status).toBe(200);
    expect(body).toMatchObject({ readOnly: false, basePath: "" });
    expect(typeof body.version).toBe("string");
  });

  it("overview: totals, 14 days, 60 minutes, queues, workers, DLQ", async () => {
    const { body } = await client.get<OverviewJson>("api/overview");
    expect(body.totals.completed).toBeGreaterThanOrEqual(2);
    expect(body.totals.failed).toBe(2);
    expect(body.history).toHaveLength(14);
    expect(body.perMinute).toHaveLength(60);
    const finished = body.perMinute.reduce(
      (n: number, m: OverviewJson["perMinute"][number]) => n + m.completed + m.failed,
      0,
    );
    expect(finished).toBeGreaterThanOrEqual(4);
    const beta = body.queues.find((q: QueueRow) => q.name === "rrq:queue:beta");
    expect(beta).toMatchObject({ depth: 3, ready: 2, deferred: 1, running: 0 });
    expect(beta?.oldestAgeMs).toBeGreaterThanOrEqual(0);
    const alpha = body.queues.find((q: QueueRow) => q.name === "rrq:queue:alpha");
    expect(alpha?.running).toBe(1);
    expect(body.workers).toEqual({ count: 1, quiet: 0 });
    expect(body.dlq).toEqual({ entries: 2 });
    expect(body.latency.samples).toBeGreaterThan(0);
  });

  it("queues and a queue's jobs by state, paged", async () => {
    const { body } = await client.get<{ queues: QueueRow[] }>("api/queues");
    expect(body.queues.map((q) => q.name)).toContain("rrq:queue:beta");
    const ready = await client.get<QueueJobsJson>("api/queues/beta/jobs?state=ready&limit=1");
    expect(ready.body.jobs.map(idOf)).toEqual([ids.ready]);
    expect(ready.body.next).toBe("1");
    const page2 = await client.get<QueueJobsJson>(
      `api/queues/beta/jobs?state=ready&limit=1&cursor=1`,
    );
    expect(page2.body.jobs.map(idOf)).toEqual([ids.ready2]);
    expect(page2.body.next).toBeNull();
    const deferred = await client.get<QueueJobsJson>(
      "api/queues/rrq%3Aqueue%3Abeta/jobs?state=deferred",
    );
    expect(deferred.body.jobs.map(idOf)).toEqual([ids.deferred]);
    expect(deferred.body.jobs[0]?.runAt).toMatch(/Z$/);
    expect((await client.get("api/queues/beta/jobs?state=bogus")).status).toBe(400);
    const junk = await client.get<QueueJobsJson>("api/queues/beta/jobs?limit=abc&cursor=-5");
    expect(junk.status).toBe(200);
    expect(junk.body.jobs).toHaveLength(3);
  });

  it("job search by id, function, status and queue", async () => {
    const byId = await client.get<JobsJson>(`api/jobs?id=${ids.done}`);
    expect(byId.body.jobs.map(idOf)).toEqual([ids.done]);
    const failed = await client.get<JobsJson>("api/jobs?status=failed");
    expect(failed.body.jobs.map(idOf).sort()).toEqual([ids.dead, ids.dead2].sort());
    const sleepers = await client.get<JobsJson>("api/jobs?function=sleep");
    expect(sleepers.body.jobs.map(idOf)).toEqual([ids.running]);
    const beta = await client.get<JobsJson>("api/jobs?queue=beta&limit=2");
    expect(beta.body.jobs).toHaveLength(2);
    expect((await client.get<JobsJson>("api/jobs?id=nope")).body.jobs).toEqual([]);
    expect((await client.get<JobsJson>("api/jobs?limit=abc")).status).toBe(200);
  });

  it("job detail: view, hash, timeline, runs, lease and trace link; 404 when gone", async () => {
    const { body } = await client.get<JobDetailJson>(`api/jobs/${ids.dead}`);
    expect(body.job).toMatchObject({ id: ids.dead, status: "FAILED", functionName: "fail" });
    expect(body.hash.job_params).toContain("boom <img src=x>");
    expect(body.trace.length).toBeGreaterThan(1);
    expect(body.runs.length).toBeGreaterThanOrEqual(1);
    expect(body.lease).toBeNull();
    const traced = await client.get<JobDetailJson>(`api/jobs/${ids.traced}`);
    expect(traced.body.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(traced.body.traceUrl).toBe(
      "https://tempo.example/trace/0af7651916cd43dd8448eb211c80319c",
    );
    const running = await client.get<JobDetailJson>(`api/jobs/${ids.running}`);
    expect(running.body.lease?.expiresAt).toMatch(/Z$/);
    const missing = await client.get<ActionJson>("api/jobs/no-such-job");
    expect(missing.status).toBe(404);
    expect(missing.body.error?.code).toBe("not_found");
  });

  it("DLQ: summary grouped by error, function and queue; filtered entries", async () => {
    const { body } = await client.get<DlqJson>("api/dlq");
    expect(body.summary.entries).toBe(2);
    expect(body.summary.byFunction).toEqual([["fail", 2]]);
    expect(body.entries).toHaveLength(2);
    const byError = await client.get<DlqJson>(`api/dlq?error=${encodeURIComponent("other")}`);
    expect(byError.body.entries.map(idOf)).toEqual([ids.dead2]);
    expect((await client.get<DlqJson>("api/dlq?function=echo")).body.entries).toEqual([]);
  });

  it("workers: health records with the quiet state", async () => {
    const { body } = await client.get<WorkersJson>("api/workers");
    expect(body.workers).toHaveLength(1);
    expect(body.workers[0]).toMatchObject({ id: worker.worker.workerId, quiet: false });
    expect(body.workers[0]!.health?.worker_id).toBe(worker.worker.workerId);
    // rrqkit's additive health fields: each runner pool, its runtime and its processes
    expect(body.workers[0]!.health?.runners).toEqual([
      expect.objectContaining({
        name: "node",
        runtime: "rrqkit-node",
        restarts: 0,
        processes: [expect.objectContaining({ index: 0, state: "ready", restarts: 0 })],
      }),
    ]);
  });

  it("cron: entries with last and next fire", async () => {
    const { body } = await client.get<CronJson>("api/cron");
    expect(body.entries).toHaveLength(1);
    expect(body.entries[0]).toMatchObject({ function: "echo", queue: "rrq:queue:alpha" });
    expect(body.entries[0]!.nextFire).toBeGreaterThan(Date.now());
  });

  it("live updates: an SSE tick carries the overview", async () => {
    const controller = new AbortController();
    const res = await client.raw("api/events", { signal: controller.signal });
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const decoder = new TextDecoder();
    while (!/event: tick\ndata: [^\n]*\n\n/.test(text)) {
      const { value, done } = (await reader.read()) as { value?: Uint8Array; done: boolean };
      if (done) throw new Error("the stream ended before a tick");
      text += decoder.decode(value, { stream: true });
    }
    controller.abort();
    const data = text.split("event: tick\ndata: ")[1]!.split("\n")[0]!;
    expect((JSON.parse(data) as OverviewJson).perMinute).toHaveLength(60);
  });

  it("unknown endpoints are 404s", async () => {
    expect((await client.get("api/nothing")).status).toBe(404);
  });
});

describe("actions change Redis as the CLI does", () => {
  it("cancel a waiting job; a finished one is refused with 409", async () => {
    const { status: code, body } = await client.post<ActionJson>(`api/jobs/${ids.ready2}/cancel`);
    expect(code).toBe(200);
    expect(body.ok).toBe(true);
    expect(await status(ids.ready2!)).toBe("CANCELLED");
    expect(await redis.client.zscore("rrq:queue:beta", ids.ready2!)).toBeNull();
    const again = await client.post<ActionJson>(`api/jobs/${ids.done}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error?.code).toBe("not_waiting");
  });

  it("reschedule, replay and delete", async () => {
    const at = Date.now() + 7_200_000;
    const moved = await client.post<ActionJson>(`api/jobs/${ids.ready}/reschedule`, { at });
    expect(moved.status).toBe(200);
    expect(Number(await redis.client.zscore("rrq:queue:beta", ids.ready!))).toBe(at);
    expect((await client.post(`api/jobs/${ids.ready}/reschedule`, { at: "soon" })).status).toBe(
      400,
    );
    const replay = await client.post<ActionJson>(`api/jobs/${ids.done}/replay`, { queue: "beta" });
    expect(replay.status).toBe(200);
    expect(await redis.client.hget(`rrq:job:${replay.body.jobId!}`, "function_name")).toBe("echo");
    const deleted = await client.post<ActionJson>(`api/jobs/${replay.body.jobId!}/delete`);
    expect(deleted.body).toEqual({ ok: true, status: "PENDING" });
    expect(await redis.client.exists(`rrq:job:${replay.body.jobId!}`)).toBe(0);
    const active = await client.post<ActionJson>(`api/jobs/${ids.running}/delete`);
    expect(active.status).toBe(409);
    expect(active.body.error?.code).toBe("active");
  });

  it("DLQ bulk: dry run counts, confirm is required, a single requeue moves the job", async () => {
    const dry = await client.post<ActionJson>("api/dlq/requeue", {
      filters: { function: "fail" },
      dryRun: true,
    });
    expect(dry.body).toMatchObject({ dryRun: true, count: 2 });
    const unconfirmed = await client.post<ActionJson>("api/dlq/purge", { filters: {} });
    expect(unconfirmed.status).toBe(400);
    expect(unconfirmed.body.error?.code).toBe("confirm_required");
    expect(await redis.client.llen("rrq:dlq:default")).toBe(2);
    const runsBefore = Number(await redis.client.hget(`rrq:job:${ids.dead}`, "runs"));
    const one = await client.post<ActionJson & { queues: Record<string, number> }>(
      `api/jobs/${ids.dead}/requeue`,
    );
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ done: 1, queues: { "rrq:queue:alpha": 1 } });
    // the worker serving alpha may already have run it (and failed it) again
    const [now, runs] = await redis.client.hmget(`rrq:job:${ids.dead}`, "status", "runs");
    expect(now !== "FAILED" || Number(runs) > runsBefore).toBe(true);
    expect(await redis.client.lrange("rrq:dlq:default", 0, -1)).toContain(ids.dead2);
    const notDead = await client.post<ActionJson>(`api/jobs/${ids.done}/requeue`);
    expect(notDead.status).toBe(409);
    const purge = await client.post<ActionJson>("api/dlq/purge", {
      filters: { queue: "alpha", function: "fail" },
      confirm: true,
    });
    expect(purge.body.done).toBeGreaterThanOrEqual(1);
    expect(await redis.client.exists(`rrq:job:${ids.dead2}`)).toBe(0);
  });

  it("cron trigger enqueues the entry's job now", async () => {
    const { body: cron } = await client.get<CronJson>("api/cron");
    const fired = await client.post<ActionJson>(
      `api/cron/${encodeURIComponent(cron.entries[0]!.id)}/trigger`,
    );
    expect(fired.status).toBe(200);
    expect(await redis.client.hget(`rrq:job:${fired.body.jobId}`, "queue_name")).toBe(
      "rrq:queue:alpha",
    );
    expect((await client.post<ActionJson>("api/cron/nope/trigger")).status).toBe(400);
  });

  it("pause and resume a queue (rrq queue pause|resume): Redis, the queue list, the wake", async () => {
    const paused = await client.post<ActionJson & { queue: string; paused: { reason?: string } }>(
      "api/queues/beta/pause",
      { reason: "maintenance <b>window</b>" },
    );
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({
      ok: true,
      queue: "rrq:queue:beta",
      wasPaused: false,
      paused: { reason: "maintenance <b>window</b>" },
    });
    expect(await redis.client.exists("rrq:paused:beta")).toBe(1);
    const listed = await client.get<{ queues: QueueRow[] }>("api/queues");
    const beta = listed.body.queues.find((q) => q.name === "rrq:queue:beta");
    expect(beta?.paused).toMatchObject({ reason: "maintenance <b>window</b>" });
    expect(beta?.parked).toBe(0);
    const alpha = listed.body.queues.find((q) => q.name === "rrq:queue:alpha");
    expect(alpha?.paused).toBeNull();
    // the overview's queue rows carry it too
    const overview = await client.get<OverviewJson>("api/overview");
    expect(
      overview.body.queues.find((q: QueueRow) => q.name === "rrq:queue:beta")?.paused,
    ).not.toBeNull();

    const subscriber = redis.client.duplicate();
    const wakes: string[] = [];
    subscriber.on("message", (_channel: string, message: string) => wakes.push(message));
    await subscriber.subscribe("rrq:wake:rrq:queue:beta");
    const resumed = await client.post<ActionJson & { wasPaused: unknown }>(
      "api/queues/rrq%3Aqueue%3Abeta/resume",
    );
    await subscriber.ping();
    subscriber.disconnect();
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({ ok: true, paused: false });
    expect(resumed.body.wasPaused).toMatchObject({ reason: "maintenance <b>window</b>" });
    expect(await redis.client.exists("rrq:paused:beta")).toBe(0);
    expect(wakes.length).toBeGreaterThanOrEqual(1);
    const again = await client.post<ActionJson & { wasPaused: unknown }>("api/queues/beta/resume");
    expect(again.body).toMatchObject({ ok: true, wasPaused: null });
  });

  it("queue actions: bad names and reasons are 400s, unknown actions 404, no CSRF token 403", async () => {
    const bad = await client.post<ActionJson>(
      `api/queues/${encodeURIComponent("rrq:dlq:x")}/pause`,
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error?.code).toBe("invalid_argument");
    expect(bad.body.error?.message).toContain('"rrq:dlq:x"');
    const spaced = await client.post<ActionJson>(`api/queues/${encodeURIComponent("a b")}/pause`);
    expect(spaced.status).toBe(400);
    const reason = await client.post<ActionJson>("api/queues/beta/pause", { reason: 5 });
    expect(reason.status).toBe(400);
    expect((await client.post<ActionJson>("api/queues/beta/drain")).status).toBe(404);
    const forged = await client.post<ActionJson>(
      "api/queues/beta/pause",
      {},
      { "x-csrf-token": "forged" },
    );
    expect(forged.status).toBe(403);
    expect(forged.body.error?.code).toBe("csrf");
    expect(await redis.client.exists("rrq:paused:beta")).toBe(0);
  });

  it("quiet and resume a worker", async () => {
    const id = worker.worker.workerId;
    expect((await client.post<ActionJson>(`api/workers/${id}/quiet`)).status).toBe(200);
    expect(await redis.client.exists(`rrq:quiet:worker:${id}`)).toBe(1);
    const listed = await client.get<WorkersJson>("api/workers");
    expect(listed.body.workers[0]!.quiet).toBe(true);
    const resumed = await client.post<ActionJson>(`api/workers/${id}/resume`);
    expect(resumed.body).toMatchObject({ ok: true, wasQuiet: true });
    expect(await redis.client.exists(`rrq:quiet:worker:${id}`)).toBe(0);
    expect((await client.post<ActionJson>("api/workers/ghost/quiet")).status).toBe(404);
  });
});
