/**
 * What a new user hit in their first hour with the `rrq` command (the real bin/rrq.js process
 * against a real redis-server): DLQ requeues landing in the wrong queue, crashes when piped to
 * `head`, bad-JSON errors buried under a usage dump, and listings with raw epochs, cut names
 * and a running queue reported as "not found".
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { formatTimestamp } from "../src/store/encoding.js";
import { writeConfig } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

const RRQ_BIN = fileURLToPath(new URL("../bin/rrq.js", import.meta.url));
let redis: TestRedis;
let config: string;

beforeAll(async () => {
  redis = await startRedis();
  config = writeConfig(redis.url);
});
afterAll(async () => redis?.stop());
beforeEach(async () => redis.flush());

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Runs a shell command line to the end (`$RRQ` is the real rrq command with the config). */
function shell(line: string): Promise<Run> {
  const child = spawn("bash", ["-c", line], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RRQ: `${process.execPath} ${RRQ_BIN} --config ${config}` },
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, out, err })));
}

/** Runs `rrq <args>` (arguments passed as they are, no shell quoting involved). */
function rrq(...args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [RRQ_BIN, "--config", config, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, out, err })));
}

/** A FAILED job in the default DLQ, as RRQ's orchestrator leaves it. */
function deadJob(id: string, fields: Record<string, string> = {}) {
  return {
    id,
    function_name: "send_email",
    job_params: "{}",
    status: "FAILED",
    current_retries: "3",
    max_retries: "3",
    queue_name: "rrq:queue:emails",
    last_error: "boom",
    enqueue_time: formatTimestamp(Date.now() - 60_000),
    completion_time: formatTimestamp(Date.now() - 30_000),
    result: "null",
    ...fields,
  };
}

async function bury(jobs: Array<Record<string, string>>) {
  const pipeline = redis.client.pipeline();
  for (const job of jobs) {
    pipeline.hset(`rrq:job:${job.id}`, job);
    pipeline.lpush("rrq:dlq:default", job.id!);
  }
  await pipeline.exec();
}

describe("dlq requeue sends jobs back to their own queue (item 4)", () => {
  it("--job-id: to the job's queue_name, not the default queue", async () => {
    await bury([deadJob("e1")]);
    const run = await rrq("dlq", "requeue", "--job-id", "e1");
    expect(run).toMatchObject({ code: 0, out: "Requeued 1 job(s) to rrq:queue:emails\n" });
    expect(await redis.client.zrange("rrq:queue:emails", 0, -1)).toEqual(["e1"]);
    expect(await redis.client.exists("rrq:queue:default")).toBe(0);
    expect(await redis.client.hmget("rrq:job:e1", "status", "queue_name")).toEqual([
      "PENDING",
      "rrq:queue:emails",
    ]);
  });

  it("bulk and filtered requeues: each job to its own queue; --target-queue still wins", async () => {
    await bury([
      deadJob("a1"),
      deadJob("b1", { queue_name: "rrq:queue:sms" }),
      deadJob("c1", { queue_name: "bare" }), // written without the prefix by some other producer
      deadJob("d1", { queue_name: "" }), // names no queue: the default queue
      deadJob("t1", { function_name: "other" }),
    ]);
    const some = await rrq("dlq", "requeue", "--function", "send_email");
    expect(some.code).toBe(0);
    expect(some.out).toBe(
      "Requeued 4 job(s) to their own queues: rrq:queue:bare (1), rrq:queue:default (1), rrq:queue:emails (1), rrq:queue:sms (1)\n",
    );
    expect(await redis.client.zrange("rrq:queue:emails", 0, -1)).toEqual(["a1"]);
    expect(await redis.client.zrange("rrq:queue:sms", 0, -1)).toEqual(["b1"]);
    expect(await redis.client.zrange("rrq:queue:bare", 0, -1)).toEqual(["c1"]);
    expect(await redis.client.zrange("rrq:queue:default", 0, -1)).toEqual(["d1"]);
    expect(await redis.client.hget("rrq:job:c1", "queue_name")).toBe("rrq:queue:bare");
    expect(await redis.client.sismember("rrq:queues", "rrq:queue:sms")).toBe(1);

    const targeted = await rrq("dlq", "requeue", "--all", "--target-queue", "parking");
    expect(targeted.out).toBe("Requeued 1 job(s) to rrq:queue:parking\n");
    expect(await redis.client.zrange("rrq:queue:parking", 0, -1)).toEqual(["t1"]);
  });
});

describe("piped output (item 7)", () => {
  it("`rrq dlq list | head -1` exits 0 without an EPIPE stack", async () => {
    // ~3,000 rows of ~130 bytes: far past the 64 KiB a pipe buffers, so writes hit the closed pipe
    await bury(Array.from({ length: 3000 }, (_, i) => deadJob(`p${i}`)));
    const run = await shell(
      '$RRQ dlq list --limit 3000 | head -1; echo "rrq=${PIPESTATUS[0]}" >&2',
    );
    expect(run.out).toMatch(/^Job ID +Function/);
    expect(run.out.split("\n")).toHaveLength(2);
    expect(run.err).not.toMatch(/EPIPE|Unhandled|\n\s+at /);
    expect(run.err).toBe("rrq=0\n");
  });

  it("`rrq dlq list --raw | head -3` and `rrq job list | head -1` too", async () => {
    await bury(Array.from({ length: 2000 }, (_, i) => deadJob(`r${i}`)));
    const raw = await shell(
      '$RRQ dlq list --raw --limit 2000 | head -3; echo "rrq=${PIPESTATUS[0]}" >&2',
    );
    expect(raw.err).toBe("rrq=0\n");
    const jobs = await shell(
      '$RRQ job list --limit 2000 2>/dev/null | head -1; echo "rrq=${PIPESTATUS[0]}" >&2',
    );
    expect(jobs.err).toBe("rrq=0\n");
    expect(jobs.out).toMatch(/^Job ID/);
  });
});

describe("bad option values: one line naming the option, exit 2, no usage dump (item 8)", () => {
  const oneLine = (run: Run, text: RegExp) => {
    expect(run.code).toBe(2);
    expect(run.out).toBe("");
    expect(run.err.split("\n").filter(Boolean)).toHaveLength(1);
    expect(run.err).toMatch(text);
    expect(run.err).not.toMatch(/Usage:|Options:/);
  };

  it("JSON options", async () => {
    oneLine(
      await rrq("enqueue", "f", "--params", "{bad"),
      /^rrq: --params is not valid JSON: .*position 1/,
    );
    oneLine(
      await rrq("enqueue", "f", "--params", "[1]"),
      /^rrq: --params must be a JSON object, not an array\n$/,
    );
    oneLine(
      await rrq("enqueue", "f", "--trace-context", "nope"),
      /^rrq: --trace-context is not valid JSON/,
    );
    // RRQ enqueues with the unparseable --kwargs/--args dropped; rrqkit refuses
    oneLine(
      await rrq("debug", "submit", "f", "--kwargs", "{bad"),
      /^rrq: --kwargs is not valid JSON/,
    );
    oneLine(
      await rrq("debug", "submit", "f", "--args", '{"a":1}'),
      /^rrq: --args must be a JSON array, not an object\n$/,
    );
    expect(await redis.client.keys("rrq:job:*")).toEqual([]);
  });

  it("numbers, dates and choices", async () => {
    oneLine(
      await rrq("enqueue", "f", "--timeout", "abc"),
      /^rrq: --timeout must be a number, not "abc"\n$/,
    );
    oneLine(
      await rrq("enqueue", "f", "--defer-by", "Infinity"),
      /^rrq: --defer-by must be a number/,
    );
    oneLine(
      await rrq("enqueue", "f", "--max-retries", "-1"),
      /^rrq: --max-retries must be a non-negative integer\n$/,
    );
    oneLine(
      await rrq("enqueue", "f", "--defer-until", "tomorrow"),
      /^rrq: --defer-until must be an RFC 3339 timestamp\n$/,
    );
    oneLine(
      await rrq("dlq", "list", "--limit", "ten"),
      /^rrq: --limit must be a non-negative integer, not "ten"\n$/,
    );
    oneLine(
      await rrq("enqueue", "f", "--defer-by", "5", "--defer-until", "2030-01-01T00:00:00Z"),
      /^rrq: --defer-until and --defer-by are mutually exclusive; give one\n$/,
    );
    oneLine(await rrq("job", "reschedule", "j", "--in", "soon"), /^rrq: --in must be a number/);
    oneLine(await rrq("job", "reschedule", "j", "--at", "soon"), /^rrq: --at must be RFC 3339/);
    oneLine(
      await rrq("job", "list", "--status", "fialed"),
      /^rrq: --status must be one of PENDING, ACTIVE, COMPLETED, FAILED, RETRYING, CANCELLED, not "fialed"\n$/,
    );
    expect(await redis.client.keys("rrq:job:*")).toEqual([]);
  });

  it("real usage errors: the message and a pointer to the command's help, not the help", async () => {
    const unknown = await rrq("enqueue", "f", "--bogus");
    expect(unknown).toMatchObject({
      code: 2,
      err: "rrq: unknown option '--bogus'\n(see 'rrq enqueue --help')\n",
    });
    const missing = await rrq("dlq", "inspect");
    expect(missing).toMatchObject({
      code: 2,
      err: "rrq: missing required argument 'job-id'\n(see 'rrq dlq inspect --help')\n",
    });
  });
});

describe("listings (item 9)", () => {
  it("queue list: human-readable times; --json keeps the epoch-ms scores", async () => {
    const now = Date.now();
    await redis.client.zadd("rrq:queue:emails", now - 2 * 3600_000, "j1", now + 300_000, "j2");
    const run = await rrq("queue", "list");
    expect(run.code).toBe(0);
    const [header, row] = run.out.split("\n");
    expect(header).toMatch(/^Queue +Pending +Oldest +Newest$/);
    expect(row).toMatch(/^rrq:queue:emails +2 +2h ago +in [45]m$/);
    expect(run.out).not.toContain(String(now - 2 * 3600_000));
    const json = JSON.parse((await rrq("queue", "list", "--json")).out) as {
      queues: Array<{ oldestScore: number }>;
    };
    expect(json.queues[0]!.oldestScore).toBe(now - 2 * 3600_000);
  });

  it("dlq list and job list: queue and function names are never cut", async () => {
    await bury([
      deadJob("n1", {
        queue_name: "rrq:queue:emails_transactional_eu",
        function_name: "generate_monthly_report_for_customer",
        completion_time: formatTimestamp(Date.now() - 10_000), // listed first (newest failure)
      }),
      deadJob("n2"),
    ]);
    const dlq = (await rrq("dlq", "list")).out.split("\n");
    expect(dlq[1]).toMatch(
      /^n1 +generate_monthly_report_for_customer {3}emails_transactional_eu {3}boom /,
    );
    // the columns stay aligned around the longer names
    expect(dlq[2]!.indexOf("emails")).toBe(dlq[1]!.indexOf("emails_transactional_eu"));
    expect(dlq.join("\n")).not.toContain("...");
    const jobs = (await rrq("job", "list")).out;
    expect(jobs).toContain("rrq:queue:emails_transactional_eu");
    expect(jobs).toContain("generate_monthly_report_for_customer");
  });

  it("queue inspect: a queue whose jobs are all running is empty, not missing", async () => {
    // a job claimed from `emails` by an rrqkit worker: out of the ZSET, holding a lease
    await redis.client.hset("rrq:job:run1", {
      ...deadJob("run1"),
      status: "ACTIVE",
      last_error: "",
    });
    await redis.client.zadd("rrq:leases", Date.now() + 10_000, "run1");
    const running = await rrq("queue", "inspect", "emails");
    expect(running).toMatchObject({
      code: 0,
      out: "Queue 'rrq:queue:emails' is empty (1 running)\n",
    });
    const json = JSON.parse((await rrq("queue", "inspect", "emails", "--json")).out) as object;
    expect(json).toMatchObject({ queue: "rrq:queue:emails", total: 0, known: true, running: 1 });

    // known from the rrq:queues registry (it has held work), nothing running
    await redis.client.sadd("rrq:queues", "rrq:queue:idle");
    expect(await rrq("queue", "inspect", "idle")).toMatchObject({
      code: 0,
      out: "Queue 'rrq:queue:idle' is empty (0 running)\n",
    });
    expect(await rrq("queue", "inspect", "typo")).toMatchObject({
      code: 1,
      out: "Queue 'rrq:queue:typo' not found\n",
    });
  });
});
