/**
 * Cancelling running jobs (issue 20 item 3, design §D/§E): real redis-server, two orchestrators
 * in this process, each with its own runner process (test/fixtures/cancel-runner.mjs). The
 * cancel comes from a producer, so the orchestrator running the job learns it through Redis.
 */
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RrqApi } from "../src/api/index.js";
import { Producer } from "../src/producer/producer.js";
import { JobStore } from "../src/store/job-store.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const CANCEL_RUNNER = fileURLToPath(new URL("./fixtures/cancel-runner.mjs", import.meta.url));

let redis: TestRedis;
let producer: Producer;
let connection: Redis;
let store: JobStore;
const workers: RunningWorker[] = [];

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
  connection = new Redis(redis.url);
  store = new JobStore(connection);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await redis.flush();
});
afterAll(async () => {
  await producer?.close();
  connection?.disconnect();
  await redis?.stop();
});

/** An orchestrator whose runner is the cancel fixture; its stderr lines are collected. */
async function startWorker(extra: Record<string, unknown> = {}): Promise<{
  worker: RunningWorker;
  lines: string[];
}> {
  const config = testConfig(redis.url, extra, {
    node: { cmd: [process.execPath, CANCEL_RUNNER], pool_size: 1, max_in_flight: 8 },
  });
  const worker = new RunningWorker(config);
  const lines: string[] = [];
  worker.events.on("runner:log", (e) => lines.push(e.line));
  workers.push(worker);
  await worker.start();
  return { worker, lines };
}

const hashOf = (id: string) => redis.client.hgetall(`rrq:job:${id}`);

/** Waits until the job was dispatched to a runner; returns the orchestrator running it. */
async function dispatchedOn<T extends { worker: RunningWorker }>(
  id: string,
  candidates: readonly T[],
): Promise<T> {
  return waitFor(
    () => candidates.find((c) => c.worker.of("job:dispatched").some((e) => e.jobId === id)),
    20_000,
    `job ${id} to be dispatched`,
  );
}

describe("cancel a running job", () => {
  it("on another orchestrator: CANCELLED when cancel returns, the runner gets the cancel frame, wait_for_completion returns CANCELLED", async () => {
    const a = await startWorker();
    const b = await startWorker();
    const cancelled: unknown[] = [];
    for (const { worker } of [a, b]) worker.events.on("job:cancelled", (e) => cancelled.push(e));
    const id = await producer.enqueue("wait_cancel", { ms: 30_000 }, { jobTimeoutSeconds: 60 });
    const holder = await dispatchedOn(id, [a, b]);
    const other = holder === a ? b : a;

    expect(await producer.cancel(id)).toEqual({ cancelled: true, status: "CANCELLED" });
    const hash = await hashOf(id);
    expect(hash).toMatchObject({
      status: "CANCELLED",
      last_error: "Job cancelled while running",
      run_1_outcome: "cancelled",
      worker_id: holder.worker.worker.workerId,
    });
    expect(hash.run_1_ended_at).toBe(hash.completion_time);
    expect(await redis.client.exists(`rrq:lock:job:${id}`)).toBe(0);
    expect(await redis.client.zscore("rrq:leases", id)).toBeNull();
    expect(
      await redis.client.zscore(`rrq:active:jobs:${holder.worker.worker.workerId}`, id),
    ).toBeNull();
    expect(await producer.waitForCompletion(id, { timeoutSeconds: 5 })).toMatchObject({
      status: "CANCELLED",
      lastError: "Job cancelled while running",
    });

    // the runner of the holding orchestrator got the cancel frame (its handler's signal fired)
    await waitFor(() => holder.lines.includes(`cancel-frame ${id}`), 10_000, "cancel frame");
    expect(other.lines).not.toContain(`cancel-frame ${id}`);
    await waitFor(() => holder.worker.worker.activeJobs === 0, 10_000, "attempt to end");
    expect(cancelled).toEqual([
      expect.objectContaining({ jobId: id, functionName: "wait_cancel", where: "running" }),
    ]);
    // the runner answered the cancel: no recycle, nothing written, still CANCELLED
    expect(holder.worker.of("runner:recycle")).toEqual([]);
    expect(holder.worker.of("job:completed")).toEqual([]);
    expect(holder.worker.of("job:retry")).toEqual([]);
    expect(holder.worker.of("job:dlq")).toEqual([]);
    expect((await hashOf(id)).status).toBe("CANCELLED");
    expect(await redis.client.hget("rrq:stats:queue:default", "cancelled")).toBe("1");
    const trace = await new RrqApi(connection).jobs.trace(id);
    expect(trace?.map((e) => e.event)).toEqual(["Enqueued", "Started", "Cancelled", "Finished"]);
    expect(trace?.[2]?.details).toBe("Run 1 cancelled while running");

    // both orchestrators go on working
    const next = await producer.enqueue("echo", { after: "cancel" });
    expect(await producer.waitForCompletion(next, { timeoutSeconds: 10 })).toMatchObject({
      status: "COMPLETED",
      result: { after: "cancel" },
    });
  });

  it("a runner's late success is dropped and every write of the cancelled attempt is fenced off", async () => {
    // the handler blocks its runner (it cannot read the cancel frame) and succeeds 600 ms in,
    // within the grace: that success reaches the orchestrator after the cancel
    const { worker } = await startWorker({ runner_cancel_grace_seconds: 5 });
    const id = await producer.enqueue("busy", { ms: 600 });
    await dispatchedOn(id, [{ worker }]);
    expect(await producer.cancel(id)).toEqual({ cancelled: true, status: "CANCELLED" });
    await waitFor(() => worker.worker.activeJobs === 0, 10_000, "attempt to end");
    expect(worker.of("runner:recycle")).toEqual([]);
    expect(worker.of("job:completed")).toEqual([]);
    const hash = await hashOf(id);
    expect(hash.status).toBe("CANCELLED");
    expect(hash.result ?? "null").toBe("null"); // as enqueued: the success was not stored

    // the fence: the attempt's own writes, presented with its worker id and fence, are refused
    const ref = { jobId: id, workerId: hash.worker_id!, fence: hash.lease_fence! };
    expect(await store.completeSuccess(ref, '{"late":true}', 60)).toBe("not_owner");
    expect(await store.retry(ref, "rrq:queue:default", Date.now(), "late error")).toBe("not_owner");
    expect(await store.moveToDlq(ref, "rrq:dlq:default", "late error", true)).toBe("not_owner");
    expect(await hashOf(id)).toEqual(hash);
    expect(await redis.client.zscore("rrq:queue:default", id)).toBeNull();
    expect(await redis.client.llen("rrq:dlq:default")).toBe(0);
  });

  it("a runner that ignores the cancel is recycled after runner_cancel_grace_seconds", async () => {
    const { worker } = await startWorker({ runner_cancel_grace_seconds: 0.5 });
    const id = await producer.enqueue("busy", { ms: 20_000 }, { jobTimeoutSeconds: 60 });
    await dispatchedOn(id, [{ worker }]);
    const pids = worker.worker.runnerPids;
    expect(await producer.cancel(id)).toEqual({ cancelled: true, status: "CANCELLED" });
    const [recycle] = await waitFor(() => {
      const seen = worker.of("runner:recycle");
      return seen.length ? seen : undefined;
    }, 10_000);
    expect(recycle!.reason).toMatch(/ignored a cancel for 500 ms/);
    await waitFor(() => worker.worker.activeJobs === 0, 10_000, "attempt to end");
    expect((await hashOf(id)).status).toBe("CANCELLED");
    // a new runner process takes the next job
    const next = await producer.enqueue("echo", { n: 1 });
    expect(await producer.waitForCompletion(next, { timeoutSeconds: 20 })).toMatchObject({
      status: "COMPLETED",
    });
    expect(worker.worker.runnerPids).not.toEqual(pids);
    expect((await hashOf(id)).status).toBe("CANCELLED");
  });

  it("after the subscriber connection drops and comes back, cancels are heard again", async () => {
    const { worker, lines } = await startWorker();
    const cancelled: unknown[] = [];
    worker.events.on("job:cancelled", (e) => cancelled.push(e));
    const channel = `rrq:cancel:${worker.worker.workerId}`;
    const subscribers = async () =>
      Number(((await redis.client.pubsub("NUMSUB", channel)) as [string, number])[1]);
    expect(await subscribers()).toBe(1);
    await redis.client.client("KILL", "TYPE", "pubsub");
    await waitFor(async () => (await subscribers()) === 1, 10_000, "re-subscribed");
    const id = await producer.enqueue("wait_cancel", {}, { jobTimeoutSeconds: 60 });
    await dispatchedOn(id, [{ worker }]);
    expect(await producer.cancel(id)).toEqual({ cancelled: true, status: "CANCELLED" });
    await waitFor(() => lines.includes(`cancel-frame ${id}`), 10_000, "cancel frame");
    // heard on the channel (job:cancelled), not found later by the lease renewal (job:fenced)
    expect(cancelled).toEqual([expect.objectContaining({ jobId: id, where: "running" })]);
    expect(worker.of("job:fenced")).toEqual([]);
  });

  it("a missed cancel message is caught by the lease renewal: same cancel, grace and recycle", async () => {
    const { worker } = await startWorker({
      runner_cancel_grace_seconds: 0.5,
      lease_seconds: 2,
      lease_renew_interval_seconds: 0.2,
    });
    // the worker no longer hears its cancel channel (as if the message was lost)
    const control = (worker.worker as unknown as { control: { stop(): void } }).control;
    control.stop();
    const id = await producer.enqueue("busy", { ms: 20_000 }, { jobTimeoutSeconds: 60 });
    await dispatchedOn(id, [{ worker }]);
    expect(await producer.cancel(id)).toEqual({ cancelled: true, status: "CANCELLED" });
    await waitFor(() => worker.of("runner:recycle").length > 0, 10_000, "recycle");
    expect(worker.of("job:fenced")).toEqual([
      expect.objectContaining({ jobId: id, write: "lease lost while running" }),
    ]);
    await waitFor(() => worker.worker.activeJobs === 0, 10_000, "attempt to end");
    expect((await hashOf(id)).status).toBe("CANCELLED");
  });
});

describe("cancel refusals and waiting jobs", () => {
  it("refuses a job held without a lease fence (RRQ's orchestrator) and writes nothing", async () => {
    await redis.client.hset("rrq:job:rrq-held", {
      id: "rrq-held",
      function_name: "echo",
      queue_name: "rrq:queue:default",
      status: "ACTIVE",
      worker_id: "rrq_worker_1_abcdef",
    });
    await redis.client.set("rrq:lock:job:rrq-held", "rrq_worker_1_abcdef");
    // a fence left over from an earlier rrqkit attempt does not count without a lease entry
    await redis.client.hset("rrq:job:stale-fence", {
      id: "stale-fence",
      function_name: "echo",
      queue_name: "rrq:queue:default",
      status: "ACTIVE",
      worker_id: "rrq_worker_2_abcdef",
      lease_fence: "17",
    });
    const before = await hashOf("rrq-held");
    for (const id of ["rrq-held", "stale-fence"])
      expect(await producer.cancel(id)).toEqual({
        cancelled: false,
        status: "ACTIVE",
        reason: "running_unfenced",
      });
    expect(await hashOf("rrq-held")).toEqual(before);
    expect(await redis.client.get("rrq:lock:job:rrq-held")).toBe("rrq_worker_1_abcdef");
    expect(await redis.client.exists("rrq:events:job:rrq-held")).toBe(0);

    const api = new RrqApi(connection);
    expect(await api.jobs.cancel("rrq-held")).toEqual({
      ok: false,
      reason: "running_unfenced",
      status: "ACTIVE",
    });
    const cli = await runCli(writeConfig(redis.url), ["job", "cancel", "rrq-held"]);
    expect(cli.code).toBe(1);
    expect(cli.out).toContain(
      "Cannot cancel job 'rrq-held': job is running on an orchestrator that cannot cancel it",
    );
    expect((await hashOf("rrq-held")).status).toBe("ACTIVE");
  });

  it("rrq job cancel and api.jobs.cancel name the worker a running job was cancelled on", async () => {
    const { worker } = await startWorker();
    const config = writeConfig(redis.url);
    const api = new RrqApi(connection);
    const [viaCli, viaApi] = await Promise.all(
      [1, 2].map(() => producer.enqueue("wait_cancel", {}, { jobTimeoutSeconds: 60 })),
    );
    for (const id of [viaCli!, viaApi!]) await dispatchedOn(id, [{ worker }]);
    const id = worker.worker.workerId;
    expect(await runCli(config, ["job", "cancel", viaCli!])).toMatchObject({
      code: 0,
      out: `Job '${viaCli}' cancelled while running on worker ${id}\n`,
    });
    expect(await api.jobs.cancel(viaApi!)).toEqual({ ok: true, workerId: id });
    await waitFor(() => worker.worker.activeJobs === 0, 10_000, "attempts to end");
    expect(worker.of("runner:recycle")).toEqual([]);
    for (const job of [viaCli!, viaApi!]) expect((await hashOf(job)).status).toBe("CANCELLED");
  });

  it("pending jobs as before; other statuses and unknown ids are refused", async () => {
    const id = await producer.enqueue("echo", {}, { deferBySeconds: 60 });
    expect(await producer.cancel(id)).toEqual({ cancelled: true, status: "CANCELLED" });
    expect(await producer.waitForCompletion(id, { timeoutSeconds: 1 })).toMatchObject({
      status: "CANCELLED",
    });
    expect(await producer.cancel(id)).toEqual({
      cancelled: false,
      status: "CANCELLED",
      reason: "not_waiting",
    });
    expect(await producer.cancel("nope")).toEqual({
      cancelled: false,
      status: null,
      reason: "not_found",
    });
    await expect(producer.cancel("")).rejects.toMatchObject({ code: "invalid_argument" });
  });
});
