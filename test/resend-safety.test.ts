/**
 * Every script the worker and the TypeScript producer run is safe to run twice: ioredis re-sends
 * a command whose reply a dropped connection lost (autoResendUnfulfilledCommands), so Redis may
 * run it a second time. The second run returns the first's result (or "already written") and
 * changes nothing. End to end, a claim whose reply is lost still dispatches its job once,
 * without counting a recovery.
 */
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { FaultProxy } from "../chaos/lib/fault-proxy.js";
import { hashFromPairs } from "../src/store/job.js";
import { activeKey, LEASES_KEY, pausedKey } from "../src/store/keys.js";
import { JobStore, type AttemptRef } from "../src/store/job-store.js";
import { useStoreFixture } from "./support/store-fixture.js";
import { jobSettled, RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const WORKER = "rrq_worker_1_resend";
const QUEUE = "rrq:queue:resend";
const fx = useStoreFixture();

/** Every key's type and content (stream entries, lock values, scores): what a write changes. */
async function snapshot(client: Redis): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of (await client.keys("*")).sort()) {
    const type = await client.type(key);
    if (type === "hash") out[key] = await client.hgetall(key);
    else if (type === "zset") out[key] = await client.zrange(key, 0, -1, "WITHSCORES");
    else if (type === "list") out[key] = await client.lrange(key, 0, -1);
    else if (type === "stream") out[key] = await client.xrange(key, "-", "+");
    else if (type === "set") out[key] = (await client.smembers(key)).sort();
    else out[key] = await client.get(key);
  }
  return out;
}

/** Runs the claim script with fixed arguments (as a re-send would: the same token). */
function claimOnce(token: string) {
  const now = Date.now();
  return fx.store.scripts.run<[string, string | null]>(
    fx.store.redis,
    "claim-ready",
    [QUEUE, activeKey(WORKER), LEASES_KEY, pausedKey(QUEUE)],
    [WORKER, now, 5, 30_000, new Date(now).toISOString(), Math.floor(now / 1000), token, ""],
  );
}

/** Enqueues one job and claims it; returns the attempt. */
async function claimedAttempt(): Promise<AttemptRef> {
  const id = await fx.producer.enqueue("echo", { x: 1 }, { queueName: QUEUE });
  const { claimed } = await fx.store.claim(QUEUE, WORKER, 1, 30_000);
  expect(claimed.map((j) => j.id)).toEqual([id]);
  return { jobId: id, workerId: WORKER, fence: claimed[0]!.hash.lease_fence! };
}

describe("scripts run twice (a re-sent command)", () => {
  it("claim: the second run with the same token returns the first run's jobs and claims nothing", async () => {
    const ids = [
      await fx.producer.enqueue("echo", { i: 1 }, { queueName: QUEUE }),
      await fx.producer.enqueue("echo", { i: 2 }, { queueName: QUEUE }),
    ];
    const first = await claimOnce("token-1");
    const after = await snapshot(fx.redis.client);
    // A job enqueued between the two runs must not be taken by the re-sent call.
    const late = await fx.producer.enqueue("echo", { i: 3 }, { queueName: QUEUE });
    const afterLate = await snapshot(fx.redis.client);
    const second = await claimOnce("token-1");
    // The same jobs with the same hashes (the first run's pairs list the claim's writes after
    // the fields read before them; either builds the same hash).
    const jobs = (json: string) => {
      const flat = JSON.parse(json) as Array<string | string[]>;
      const out: Array<[string, Record<string, string>]> = [];
      for (let i = 0; i < flat.length; i += 2)
        out.push([flat[i] as string, hashFromPairs(flat[i + 1] as string[])]);
      return out;
    };
    expect(jobs(second[0])).toEqual(jobs(first[0]));
    expect(jobs(second[0]).map(([id]) => id)).toEqual(ids);
    expect(await snapshot(fx.redis.client)).toEqual(afterLate);
    expect(after[`rrq:job:${late}`]).toBeUndefined();
    expect(second[1]).toBe(String(await fx.redis.client.zscore(QUEUE, late)));
    // A new token claims the late job.
    const third = JSON.parse((await claimOnce("token-2"))[0]) as unknown[];
    expect(third[0]).toBe(late);
  });

  it("claim: a re-run leaves out a job the worker no longer holds under that fence", async () => {
    const id = await fx.producer.enqueue("echo", {}, { queueName: QUEUE });
    await claimOnce("token-3");
    await fx.redis.client.hset(`rrq:job:${id}`, "lease_fence", "999999", "worker_id", "other");
    expect((await claimOnce("token-3"))[0]).toBe("[]");
  });

  it("complete (one and batched): the second run reports already written and changes nothing", async () => {
    for (const complete of ["completeSuccessOne", "completeSuccess"] as const) {
      const attempt = await claimedAttempt();
      expect(await fx.store[complete](attempt, '{"ok":1}', 60)).toBe("written");
      const after = await snapshot(fx.redis.client);
      expect(await fx.store[complete](attempt, '{"ok":1}', 60)).toBe("written");
      expect(await snapshot(fx.redis.client)).toEqual(after);
      // A different fence is still not ours.
      expect(await fx.store[complete]({ ...attempt, fence: "999999" }, "{}", 60)).toBe("not_owner");
    }
    const attempt = await claimedAttempt();
    await fx.store.completeSuccessOne(attempt, "1", 60);
    const codes = await fx.store.scripts.run<number[]>(
      fx.store.redis,
      "complete-success-batch",
      [activeKey(WORKER), LEASES_KEY],
      [WORKER, new Date().toISOString(), 60, attempt.jobId, attempt.fence, "1"],
    );
    expect(codes).toEqual([2]);
  });

  it("retry, DLQ and release: the second run reports already written and changes nothing", async () => {
    const writes: Array<(a: AttemptRef) => Promise<string>> = [
      (a) => fx.store.retry(a, QUEUE, Date.now() + 60_000, "boom"),
      (a) => fx.store.moveToDlq(a, "rrq:dlq:resend", "boom", true),
      (a) => fx.store.release(a, QUEUE, "shutting down"),
    ];
    for (const write of writes) {
      const attempt = await claimedAttempt();
      expect(await write(attempt)).toBe("written");
      const after = await snapshot(fx.redis.client);
      expect(await write(attempt)).toBe("written");
      expect(await snapshot(fx.redis.client)).toEqual(after);
      await fx.redis.client.del(`rrq:job:${attempt.jobId}`);
      await fx.redis.client.zrem(QUEUE, attempt.jobId);
    }
  });

  it("retry run twice returns the same current_retries", async () => {
    const attempt = await claimedAttempt();
    const run = () =>
      fx.store.scripts.run<number>(
        fx.store.redis,
        "retry-job",
        [
          `rrq:job:${attempt.jobId}`,
          QUEUE,
          activeKey(WORKER),
          `rrq:lock:job:${attempt.jobId}`,
          LEASES_KEY,
        ],
        [attempt.jobId, WORKER, attempt.fence, Date.now(), "boom", new Date().toISOString()],
      );
    expect(await run()).toBe(1);
    expect(await run()).toBe(1);
    expect(await fx.redis.client.hget(`rrq:job:${attempt.jobId}`, "current_retries")).toBe("1");
  });

  it("enqueue: a re-sent enqueue returns the job it wrote, not duplicate_job_id", async () => {
    const args = (id: string, params: string) => [
      id,
      "echo",
      params,
      "2026-01-01T00:00:00.000+00:00",
      "PENDING",
      "0",
      "2026-01-01T00:00:00.000+00:00",
      "5",
      "300",
      "3600",
      QUEUE,
      "null",
      "",
      "",
      "1767225600000",
      "0",
    ];
    const run = (id: string, params: string) =>
      fx.store.scripts.run<[number, string]>(
        fx.store.redis,
        "enqueue",
        [`rrq:job:${id}`, QUEUE, "rrq:idempotency:"],
        args(id, params),
      );
    // Without a token (the Python and Rust producers): the identical job is recognised.
    expect(await run("same", "{}")).toEqual([1, "same"]);
    let after = await snapshot(fx.redis.client);
    expect(await run("same", "{}")).toEqual([1, "same"]);
    expect(await snapshot(fx.redis.client)).toEqual(after);
    // A different job under the same id is still a duplicate.
    expect(await run("same", '{"other":1}')).toEqual([-1, ""]);
    // With a token (the TypeScript producer): the same token is the same call; another is not.
    const withToken = (token: string) =>
      fx.store.scripts.run<[number, string]>(
        fx.store.redis,
        "enqueue",
        ["rrq:job:tok", QUEUE, "rrq:idempotency:"],
        [...args("tok", "{}"), token],
      );
    expect(await withToken("t1")).toEqual([1, "tok"]);
    after = await snapshot(fx.redis.client);
    expect(await withToken("t1")).toEqual([1, "tok"]);
    expect(await snapshot(fx.redis.client)).toEqual(after);
    expect(await withToken("t2")).toEqual([-1, ""]);
  });

  it("rate-limited and debounced enqueues: a re-send returns the job it wrote", async () => {
    const fields = (id: string) => [
      id,
      "echo",
      "{}",
      "2026-01-01T00:00:00.000+00:00",
      "PENDING",
      "0",
      "2026-01-01T00:00:00.000+00:00",
      "5",
      "300",
      "3600",
      QUEUE,
      "null",
      "",
      "",
      "1767225600000",
    ];
    const limited = (id: string) =>
      fx.store.scripts.run<[number, string]>(
        fx.store.redis,
        "enqueue-rate-limited",
        [`rrq:job:${id}`, QUEUE, "rrq:rate_limit:k"],
        [...fields(id), 60],
      );
    expect(await limited("rl-1")).toEqual([1, "rl-1"]);
    let after = await snapshot(fx.redis.client);
    expect(await limited("rl-1")).toEqual([1, "rl-1"]);
    expect(await snapshot(fx.redis.client)).toEqual(after);
    expect(await limited("rl-2")).toEqual([2, ""]);

    const debounced = (id: string) =>
      fx.store.scripts.run<[number, string]>(
        fx.store.redis,
        "enqueue-debounced",
        [QUEUE, "rrq:debounce:k"],
        ["rrq:job:", ...fields(id), 60],
      );
    expect(await debounced("db-1")).toEqual([1, "db-1"]);
    after = await snapshot(fx.redis.client);
    expect(await debounced("db-1")).toEqual([1, "db-1"]);
    expect(await snapshot(fx.redis.client)).toEqual(after);
    // Claimed between the two runs: still its own job, not a duplicate.
    await fx.redis.client.hset("rrq:job:db-1", "status", "ACTIVE");
    expect(await debounced("db-1")).toEqual([1, "db-1"]);
    expect(await debounced("db-2")).toEqual([1, "db-2"]);
  });

  it("cron fire: a re-sent fire answers enqueued again and writes nothing", async () => {
    const fire = 1767225600000;
    const run = (jobId: string) =>
      fx.store.scripts.run<[number, string]>(
        fx.store.redis,
        "cron-fire",
        ["rrq:cron:c1", `rrq:job:${jobId}`, QUEUE, "rrq:lock:unique:"],
        [
          fire,
          0,
          jobId,
          "tick",
          "{}",
          "2026-01-01T00:00:00.000+00:00",
          "PENDING",
          "0",
          "2026-01-01T00:00:00.000+00:00",
          "5",
          "300",
          "3600",
          QUEUE,
          "null",
          "",
          "2026-01-01T00:00:00.000+00:00",
          fire,
        ],
      );
    expect(await run("cron-a")).toEqual([1, "cron-a"]);
    const after = await snapshot(fx.redis.client);
    expect(await run("cron-a")).toEqual([1, "cron-a"]);
    expect(await snapshot(fx.redis.client)).toEqual(after);
    // Another orchestrator's call for the same fire time is still refused.
    expect(await run("cron-b")).toEqual([0, String(fire)]);
  });

  it("renew: running it twice leaves the same lease", async () => {
    const attempt = await claimedAttempt();
    const now = Date.now();
    const run = () =>
      fx.store.scripts.run<string[]>(
        fx.store.redis,
        "renew-leases",
        [LEASES_KEY, activeKey(WORKER)],
        [WORKER, now, 30_000, attempt.jobId, attempt.fence],
      );
    expect(await run()).toEqual([]);
    const lease = await fx.redis.client.zscore(LEASES_KEY, attempt.jobId);
    expect(await run()).toEqual([]);
    expect(await fx.redis.client.zscore(LEASES_KEY, attempt.jobId)).toBe(lease);
  });
});

describe("a claim whose reply is lost (connection reset right after it was sent)", () => {
  it("that is not re-sent: the next claim of that worker and queue gets its jobs", async () => {
    const id = await fx.producer.enqueue("echo", {}, { queueName: QUEUE });
    await fx.store.claim("rrq:queue:warmup", WORKER, 1, 1000); // loads the script
    const proxy = new FaultProxy({ port: fx.redis.port });
    await proxy.listen();
    // As under a command timeout: a call that failed is not sent again.
    const client = new Redis(proxy.url(), {
      autoResendUnfulfilledCommands: false,
      commandTimeout: 1000,
      maxRetriesPerRequest: null,
    });
    client.on("error", () => undefined);
    const store = new JobStore(client);
    try {
      await client.ping();
      proxy.resetAfter((chunk) =>
        chunk.includes(`\r\n$1\r\n4\r\n$${QUEUE.length}\r\n${QUEUE}\r\n`),
      );
      await expect(store.claim(QUEUE, WORKER, 5, 30_000)).rejects.toThrow();
      expect(await fx.redis.client.hget(`rrq:job:${id}`, "status")).toBe("ACTIVE");
      const { claimed } = await store.claim(QUEUE, WORKER, 5, 30_000);
      expect(claimed.map((j) => j.id)).toEqual([id]);
      // The token was used up: the next claim is a fresh one.
      const late = await fx.producer.enqueue("echo", {}, { queueName: QUEUE });
      expect((await store.claim(QUEUE, WORKER, 5, 30_000)).claimed.map((j) => j.id)).toEqual([
        late,
      ]);
    } finally {
      client.disconnect();
      await proxy.close();
    }
  });

  it("dispatches the job once and counts no recovery", async () => {
    // Load the scripts into Redis first, so the worker's first claim is an EVALSHA that runs.
    await fx.store.claim("rrq:queue:warmup", WORKER, 1, 1000);
    const id = await fx.producer.enqueue("echo", { once: true });
    const proxy = new FaultProxy({ port: fx.redis.port });
    await proxy.listen();
    // The claim script's call: 4 keys, the queue first (no other script starts so).
    proxy.resetAfter((chunk) => chunk.includes("\r\n$1\r\n4\r\n$17\r\nrrq:queue:default\r\n"));
    const config = testConfig(proxy.url(), {
      lease_seconds: 2,
      lease_renew_interval_seconds: 0.5,
      default_poll_delay_seconds: 0.05,
    });
    const worker = await new RunningWorker(config).start();
    try {
      const hash = await jobSettled(fx.redis.client, id);
      expect(proxy.connectionsReset).toBe(1);
      expect(hash.status).toBe("COMPLETED");
      expect(hash.recovery_count ?? "0").toBe("0");
      expect(hash.runs).toBe("1");
      await waitFor(() => worker.of("job:completed").length > 0, 5000, "completed event");
      expect(worker.of("job:dispatched").filter((e) => e.jobId === id)).toHaveLength(1);
      expect(worker.of("job:fenced")).toHaveLength(0);
    } finally {
      await worker.stop();
      await proxy.close();
    }
  }, 30_000);
});
