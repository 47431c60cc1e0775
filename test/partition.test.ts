/**
 * Issue 19 item 3: an orchestrator whose link to Redis goes silent (a blackhole: the socket
 * stays open, no bytes flow) logs it, gives up the attempts whose leases expired meanwhile
 * (cancelled at the handler, result dropped), says how many when Redis answers again, and shows
 * the partition in its health record; another worker on a direct link runs the job.
 */
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FaultProxy } from "../chaos/lib/fault-proxy.js";
import { Producer } from "../src/producer/producer.js";
import type { OrchestratorEvents } from "../src/telemetry/events.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/partition-handlers.mjs", import.meta.url));
const state = () =>
  (globalThis as { __rrqkitPartition?: { aborted: Map<string, string> } }).__rrqkitPartition;

let redis: TestRedis;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

function config(url: string) {
  return testConfig(
    url,
    {
      default_runner_name: "local",
      lease_seconds: 2,
      lease_renew_interval_seconds: 0.5,
      default_job_timeout_seconds: 60,
    },
    { local: { transport: "inprocess", handlers: HANDLERS, pool_size: 1, max_in_flight: 4 } },
  );
}

/** Records a worker's warnings and Redis outage events. */
function watch(w: RunningWorker) {
  const warnings: string[] = [];
  const downs: OrchestratorEvents["redis:down"][] = [];
  const ups: OrchestratorEvents["redis:up"][] = [];
  w.events.on("worker:warning", (e) => warnings.push(e.message));
  w.events.on("redis:down", (e) => downs.push(e));
  w.events.on("redis:up", (e) => ups.push(e));
  return { warnings, downs, ups };
}

describe("a partitioned orchestrator", () => {
  it("logs the blackhole, abandons the expired attempt, drops its result and reports it", async () => {
    const proxy = new FaultProxy({ port: redis.port });
    await proxy.listen();
    const a = new RunningWorker(config(proxy.url()));
    const seenByA = watch(a);
    let b: RunningWorker | undefined;
    const producer = new Producer({ redisDsn: redis.url });
    try {
      await a.start();
      const id = await producer.enqueue("hold", {});
      await waitFor(() => a.of("job:dispatched").length > 0, 15_000, "A to dispatch the job");

      proxy.mode({ kind: "blackhole" });
      // the silent link is reported (no error event exists for it) ...
      await waitFor(() => seenByA.downs.length > 0, 10_000, "A to report the silent link");
      expect(seenByA.downs[0]!.reason).toMatch(/no reply within/);
      // no claim is sent into the silence (it would run with a stale time once the link is back)
      await waitFor(() => a.worker.status === "waiting for redis", 5000, "A to stop claiming");
      // ... and once the lease is surely gone, the attempt is abandoned and its handler cancelled
      await waitFor(
        () => seenByA.warnings.find((m) => m.includes("abandoning 1 running attempt")),
        15_000,
        "A to abandon the attempt",
      );
      await waitFor(() => state()?.aborted.get(id), 10_000, "the handler to be cancelled");
      expect(state()!.aborted.get(id)).toBe(a.worker.workerId);

      // a worker on a direct link recovers the expired lease and completes the job
      b = await new RunningWorker(config(redis.url)).start();
      const done = await waitFor(
        async () => {
          const hash = await client.hgetall(`rrq:job:${id}`);
          return hash.status === "COMPLETED" ? hash : undefined;
        },
        20_000,
        "B to complete the job",
      );
      expect(JSON.parse(done.result!)).toEqual({ call: 2, worker: b.worker.workerId });

      proxy.mode({ kind: "pass" });
      await waitFor(
        () => seenByA.warnings.find((m) => m.includes("redis reachable again")),
        20_000,
        "A to report the reconnect",
      );
      const line = seenByA.warnings.find((m) => m.includes("redis reachable again"))!;
      expect(line).toContain("1 attempt(s) were abandoned");
      expect(line).toContain(id);
      expect(seenByA.ups.length).toBeGreaterThan(0);
      // its health record shows the partition it went through
      const health = await waitFor(
        async () => {
          const raw = await client.get(`rrq:health:worker:${a.worker.workerId}`);
          const record = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
          return record?.last_partition ? record : undefined;
        },
        10_000,
        "A's health record",
      ).catch(async (error: unknown) => {
        console.log(
          seenByA.warnings,
          seenByA.ups,
          await client.get(`rrq:health:worker:${a.worker.workerId}`),
        );
        throw error;
      });
      expect(health).toMatchObject({
        redis_link: "ok",
        abandoned_attempts: 1,
        last_partition: { abandoned_attempts: 1 },
      });
      // A wrote nothing for the job: no outcome event, and B's result stands
      expect(a.of("job:completed")).toHaveLength(0);
      expect(a.of("job:retry")).toHaveLength(0);
      expect(a.of("job:dlq")).toHaveLength(0);
      await new Promise((r) => setTimeout(r, 500));
      const after = await client.hgetall(`rrq:job:${id}`);
      expect(JSON.parse(after.result!)).toEqual({ call: 2, worker: b.worker.workerId });
    } finally {
      proxy.mode({ kind: "pass" });
      await producer.close();
      await Promise.all([a.stop(), b?.stop()]);
      await proxy.close();
    }
  }, 90_000);
});

describe("rrq check", () => {
  it("shows a worker's partition state and its last partition", async () => {
    const record = (id: string, extra: object) =>
      client.set(
        `rrq:health:worker:${id}`,
        JSON.stringify({ worker_id: id, status: "polling", ...extra }),
        "EX",
        60,
      );
    await record("w_cut", { redis_link: "partitioned", abandoned_attempts: 2 });
    await record("w_back", {
      redis_link: "ok",
      abandoned_attempts: 2,
      last_partition: {
        ended_at: "2026-01-01T00:00:00+00:00",
        down_seconds: 41.3,
        abandoned_attempts: 2,
      },
    });
    await record("w_never", { redis_link: "ok", abandoned_attempts: 0 });
    const text = await runCli(writeConfig(redis.url), ["check"]);
    expect(text.code).toBe(0);
    expect(text.out).toContain("    Redis Link: PARTITIONED (lease renewal cannot reach Redis)");
    expect(text.out).toContain(
      "    Redis Link: ok; last partition ended 2026-01-01T00:00:00+00:00 after 41.3 s, 2 attempt(s) abandoned",
    );
    const never = text.out.split("Worker ID:").find((section) => section.includes("w_never"));
    expect(never).not.toContain("Redis Link");
    await client.del(
      "rrq:health:worker:w_cut",
      "rrq:health:worker:w_back",
      "rrq:health:worker:w_never",
    );
  });
});
