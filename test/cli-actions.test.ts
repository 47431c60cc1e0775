/**
 * The CLI's writing commands (RRQ's and rrqkit's additions), `--json` on every listing, and exit
 * codes. Where RRQ's binary is installed, its messages and the job hashes it writes are compared
 * with rrqkit's on twin jobs.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { rrqBinary, runCli, runRrq, writeConfig } from "./support/cli-harness.js";

let redis: TestRedis;
let config: string;
const oracle = rrqBinary();
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/;

async function pending(id: string, queue = "rrq:queue:default", status = "PENDING") {
  await redis.client.hset(`rrq:job:${id}`, {
    id,
    function_name: "work",
    job_params: '{"b":2,"a":1}',
    enqueue_time: "2026-01-01T00:00:00+00:00",
    status,
    current_retries: "0",
    max_retries: "3",
    queue_name: queue,
    result: "null",
  });
  await redis.client.zadd(queue, Date.now(), id);
}

async function dead(id: string, fn = "work", retries = "3") {
  await redis.client.hset(`rrq:job:${id}`, {
    id,
    function_name: fn,
    job_params: "{}",
    enqueue_time: "2026-01-01T00:00:00+00:00",
    completion_time: "2026-01-01T00:01:00+00:00",
    status: "FAILED",
    current_retries: retries,
    max_retries: "3",
    queue_name: "rrq:queue:default",
    last_error: "boom",
    result: "null",
  });
  await redis.client.expire(`rrq:job:${id}`, 604800);
  await redis.client.lpush("rrq:dlq:default", id);
}

const cli = (...args: string[]) => runCli(config, args);

beforeAll(async () => {
  redis = await startRedis();
  config = writeConfig(redis.url, "", "tcp_port = 19760");
});
beforeEach(() => redis.flush());
afterAll(async () => redis?.stop());

describe("job actions", () => {
  it("cancel: RRQ's messages and exit codes", async () => {
    await pending("c1");
    expect(await cli("job", "cancel", "c1")).toMatchObject({
      code: 0,
      out: "Job 'c1' cancelled successfully\n",
    });
    expect(await redis.client.hget("rrq:job:c1", "status")).toBe("CANCELLED");
    expect(await redis.client.zscore("rrq:queue:default", "c1")).toBeNull();
    expect(await cli("job", "cancel", "c1")).toMatchObject({
      code: 1,
      out: "Can only cancel pending jobs. Job status: CANCELLED\n",
    });
    expect(await cli("job", "cancel", "nope")).toMatchObject({
      code: 1,
      out: "Job 'nope' not found\n",
    });
    if (oracle) {
      await pending("c2");
      expect(runRrq(oracle, config, ["job", "cancel", "c2"]).out.trim()).toBe(
        "Job 'c2' cancelled successfully",
      );
      expect(await redis.client.hget("rrq:job:c2", "status")).toBe("CANCELLED");
    }
  });

  it("replay writes the same fields RRQ's replay writes", async () => {
    await pending("r1", "rrq:queue:orig");
    const ours = await cli("job", "replay", "r1", "--queue", "other");
    expect(ours.out).toMatch(new RegExp(`^Job replayed with new ID: ${UUID.source}\n$`));
    const id = ours.out.trim().split(": ")[1]!;
    const hash = await redis.client.hgetall(`rrq:job:${id}`);
    expect(hash).toMatchObject({
      function_name: "work",
      job_params: '{"a":1,"b":2}',
      status: "PENDING",
      current_retries: "0",
      max_retries: "5",
      job_timeout_seconds: "300",
      result_ttl_seconds: "86400",
      queue_name: "rrq:queue:other",
      result: "null",
    });
    expect(await redis.client.zscore("rrq:queue:other", id)).not.toBeNull();
    expect((await cli("job", "replay", "nope")).code).toBe(1);
    if (oracle) {
      const theirs = runRrq(oracle, config, ["job", "replay", "r1"]).out.trim();
      const theirId = theirs.split(": ")[1]!;
      const theirHash = await redis.client.hgetall(`rrq:job:${theirId}`);
      expect(Object.keys(hash).sort()).toEqual(Object.keys(theirHash).sort());
      expect(theirHash.queue_name).toBe("rrq:queue:orig");
    }
  });

  it("delete and reschedule (rrqkit additions)", async () => {
    await pending("d1");
    const at = "2030-01-01T00:00:00Z";
    expect(await cli("job", "reschedule", "d1", "--at", at)).toMatchObject({
      code: 0,
      out: "Job 'd1' rescheduled to 2030-01-01T00:00:00.000+00:00 on rrq:queue:default\n",
    });
    expect(Number(await redis.client.zscore("rrq:queue:default", "d1"))).toBe(Date.parse(at));
    expect((await cli("job", "reschedule", "d1", "--at", "soon")).code).toBe(2);
    expect(await cli("job", "delete", "d1")).toMatchObject({
      code: 0,
      out: "Job 'd1' deleted (was PENDING)\n",
    });
    expect(await redis.client.exists("rrq:job:d1")).toBe(0);
    expect(await redis.client.zcard("rrq:queue:default")).toBe(0);
    await pending("d2", "rrq:queue:default", "ACTIVE");
    expect(await cli("job", "delete", "d2")).toMatchObject({
      code: 1,
      out: "Job 'd2' is ACTIVE; use --force to delete a running job\n",
    });
    expect((await cli("job", "delete", "d2", "--force")).code).toBe(0);
  });

  it("trace of an rrqkit job shows each run", async () => {
    await redis.client.hset("rrq:job:t1", {
      id: "t1",
      function_name: "work",
      enqueue_time: "2026-01-01T00:00:00+00:00",
      status: "COMPLETED",
      current_retries: "1",
      max_retries: "3",
      runs: "2",
      run_1_started_at: "2026-01-01T00:00:01+00:00",
      run_1_worker: "w1",
      run_1_ended_at: "2026-01-01T00:00:02.500+00:00",
      run_1_outcome: "retry",
      run_1_error: "flaky",
      retry_1_at: "2026-01-01T00:00:07.500+00:00",
      run_2_started_at: "2026-01-01T00:00:08+00:00",
      run_2_worker: "w2",
      run_2_ended_at: "2026-01-01T00:00:09+00:00",
      run_2_outcome: "completed",
      completion_time: "2026-01-01T00:00:09+00:00",
    });
    const { out } = await cli("job", "trace", "t1");
    expect(out).toBe(
      [
        "Job trace for t1",
        "Event        Timestamp            Details",
        "Enqueued     2026-01-01T00:00:00.000+00:00 Function: work",
        "Started      2026-01-01T00:00:01.000+00:00 Run 1, worker: w1 (+1.0s)",
        "Failed       2026-01-01T00:00:02.500+00:00 Run 1 failed, will retry: flaky (+1.5s)",
        "Retry 1      2026-01-01T00:00:07.500+00:00 Attempt 2 of 3 scheduled (+5.0s)",
        "Started      2026-01-01T00:00:08.000+00:00 Run 2, worker: w2 (+500.0ms)",
        "Completed    2026-01-01T00:00:09.000+00:00 Run 2 succeeded (+1.0s)",
        "Finished     2026-01-01T00:00:09.000+00:00 Status: COMPLETED (+0μs)",
        "",
        "Total Duration: 9.0s",
        "",
      ].join("\n"),
    );
    const asJson = JSON.parse((await cli("job", "trace", "t1", "--json")).out) as {
      events: unknown[];
    };
    expect(asJson.events).toHaveLength(7);
  });
});

describe("dlq requeue and purge", () => {
  it("refuses without a filter, lists on --dry-run, then requeues with counters reset", async () => {
    await dead("x1");
    await dead("x2", "other");
    expect(await cli("dlq", "requeue")).toMatchObject({
      code: 2,
      out: "Refusing to requeue all jobs without --all or filters.\n",
    });
    expect(await cli("dlq", "requeue", "--function", "work", "--dry-run")).toMatchObject({
      code: 0,
      out: "Dry run: would requeue 1 job(s).\n  - x1\n",
    });
    expect(await cli("dlq", "requeue", "--function", "work", "--target-queue", "rq")).toMatchObject(
      {
        code: 0,
        out: "Requeued 1 job(s) to rrq:queue:rq\n",
      },
    );
    expect(
      await redis.client.hmget("rrq:job:x1", "status", "current_retries", "queue_name"),
    ).toEqual(["PENDING", "0", "rrq:queue:rq"]);
    expect(await redis.client.ttl("rrq:job:x1")).toBe(-1);
    expect(await cli("dlq", "requeue", "--all", "--keep-attempts")).toMatchObject({
      out: "Requeued 1 job(s) to rrq:queue:default\n",
    });
    expect(await redis.client.hget("rrq:job:x2", "current_retries")).toBe("3");
  });

  it("RRQ's binary prints the same lines for the same requeue", async () => {
    if (!oracle) return;
    await dead("o1");
    await dead("o2");
    const theirs = runRrq(oracle, config, [
      "dlq",
      "requeue",
      "--job-id",
      "o1",
      "--target-queue",
      "t",
    ]);
    const ours = await cli("dlq", "requeue", "--job-id", "o2", "--target-queue", "t");
    expect(ours.out).toBe(theirs.out.trimEnd() + "\n");
    // RRQ keeps the spent attempts and the 7-day expiry; rrqkit resets both
    expect(await redis.client.hget("rrq:job:o1", "current_retries")).toBe("3");
    expect(await redis.client.hget("rrq:job:o2", "current_retries")).toBe("0");
  });

  it("purge deletes for good", async () => {
    await dead("p1");
    await dead("p2");
    expect(await cli("dlq", "purge", "--all")).toMatchObject({
      code: 0,
      out: "Purged 2 job(s) from rrq:dlq:default\n",
    });
    expect(await redis.client.exists("rrq:job:p1", "rrq:job:p2", "rrq:dlq:default")).toBe(0);
    expect(await cli("dlq", "stats")).toMatchObject({ out: "DLQ 'rrq:dlq:default' is empty\n" });
  });
});

describe("debug commands", () => {
  it("generate-jobs writes RRQ-shaped jobs; clear deletes them and their queue entries", async () => {
    const gen = await cli(
      "debug",
      "generate-jobs",
      "--count",
      "40",
      "--status",
      "pending",
      "--status",
      "completed",
    );
    expect(gen).toMatchObject({ code: 0, out: "Generated 40 fake jobs across 4 queues\n" });
    const keys = await redis.client.keys("rrq:job:test_job_*");
    expect(keys).toHaveLength(40);
    const hash = await redis.client.hgetall(keys[0]!);
    expect(Object.keys(hash)).toEqual(
      expect.arrayContaining([
        "id",
        "function_name",
        "job_params",
        "enqueue_time",
        "status",
        "queue_name",
      ]),
    );
    expect(["PENDING", "COMPLETED"]).toContain(hash.status);
    const list = await cli("queue", "list", "--json");
    const { totalPending } = JSON.parse(list.out) as { totalPending: number };
    expect(totalPending).toBe(
      (
        await Promise.all(
          ["test", "urgent", "low_priority", "default"].map((q) =>
            redis.client.zcard(`rrq:queue:${q}`),
          ),
        )
      ).reduce((a, b) => a + b, 0),
    );
    expect(await cli("debug", "clear", "--pattern", "test_*")).toMatchObject({
      out: "Found 40 keys matching pattern: test_*\nDelete 40 keys? [y/N]\nDeletion cancelled\n",
    });
    expect(
      (await runCli(config, ["debug", "clear", "--pattern", "test_*"], { stdin: "y" })).out,
    ).toContain("Deleted 40 keys");
    expect(await redis.client.keys("rrq:job:test_job_*")).toHaveLength(0);
    expect(await redis.client.zcard("rrq:queue:default")).toBe(0);
  });

  it("submit: RRQ's params (kwargs, args as params.args) and delay", async () => {
    const out = (
      await cli("debug", "submit", "fn", "--kwargs", '{"a":1}', "--args", "[1,2]", "--delay", "60")
    ).out;
    expect(out).toMatch(new RegExp(`^Job submitted: ${UUID.source}\nFunction: fn\n$`));
    const id = out.split("\n")[0]!.split(": ")[1]!;
    const hash = await redis.client.hgetall(`rrq:job:${id}`);
    expect(hash.job_params).toBe('{"a":1,"args":[1,2]}');
    expect(Date.parse(hash.next_scheduled_run_time!) - Date.parse(hash.enqueue_time!)).toBe(60_000);
  });

  it("stress-test enqueues at the given rate", async () => {
    const result = await cli(
      "debug",
      "stress-test",
      "--jobs-per-second",
      "5",
      "--duration",
      "1",
      "--queues",
      "st",
    );
    expect(result.out).toMatch(
      /^Starting stress test: 5 jobs\/sec for 1s\n.*Stress test complete: 5 jobs submitted\n$/s,
    );
    expect(await redis.client.zcard("rrq:queue:st")).toBe(5);
  });
});

describe("every listing has --json; exit codes", () => {
  it("prints JSON documents", async () => {
    await pending("j1");
    await dead("j2");
    for (const args of [
      ["queue", "list"],
      ["queue", "stats"],
      ["queue", "inspect", "default"],
      ["job", "list"],
      ["job", "show", "j1"],
      ["job", "trace", "j1"],
      ["dlq", "list"],
      ["dlq", "stats"],
      ["stats"],
      ["check"],
    ]) {
      const result = await cli(...args, "--json");
      expect(() => JSON.parse(result.out) as unknown, args.join(" ")).not.toThrow();
    }
    const inspect = JSON.parse((await cli("queue", "inspect", "default", "--json")).out) as {
      entries: Array<{ id: string; job: { functionName: string } }>;
    };
    expect(inspect.entries[0]).toMatchObject({ id: "j1", job: { functionName: "work" } });
  });

  it("check exits 1 without a live worker, 0 with one; usage errors exit 2", async () => {
    expect(await cli("check")).toMatchObject({
      code: 1,
      out: "Worker Health Check: FAIL (No active workers found)\n",
    });
    await redis.client.set("rrq:health:worker:w", '{"status":"running"}', "EX", 30);
    expect((await cli("health")).code).toBe(0);
    expect((await cli("queue", "inspect", "x", "--limit", "many")).code).toBe(2);
    expect((await cli("job", "nonsense")).code).toBe(2);
  });
});

describe("runner python", () => {
  it("runs rrq-runner from PATH with RRQ's arguments and returns its exit code", async () => {
    const bin = mkdtempSync(join(tmpdir(), "rrq-runner-bin-"));
    const record = join(bin, "args.json");
    const fake = join(bin, "rrq-runner");
    writeFileSync(
      fake,
      `#!${process.execPath}\nrequire("fs").writeFileSync(${JSON.stringify(record)}, JSON.stringify(process.argv.slice(2)));\nprocess.exit(3);\n`,
    );
    chmodSync(fake, 0o755);
    const args = ["runner", "python", "--settings", "app.settings", "--tcp-socket", "127.0.0.1:9"];
    const ran = await runCli(config, args, { env: { ...process.env, PATH: bin } });
    expect(ran.code).toBe(3);
    expect(JSON.parse(readFileSync(record, "utf8"))).toEqual([
      "--settings",
      "app.settings",
      "--tcp-socket",
      "127.0.0.1:9",
    ]);
    const missing = await runCli(config, args, { env: { ...process.env, PATH: tmpdir() } });
    expect(missing).toMatchObject({ code: 1 });
    expect(missing.err).toContain("rrq-runner not found on PATH");
    expect((await cli("runner", "python", "--settings", "x")).code).toBe(2);
    rmSync(bin, { recursive: true, force: true });
  });
});
