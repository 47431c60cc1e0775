/**
 * The RRQ commands against data written with RRQ's encodings (raw hashes, ZSETs, DLQ lists and
 * health keys, no rrqkit bookkeeping): each prints what RRQ 0.11's CLI prints. The expected
 * text is RRQ's format; when RRQ's own binary is installed (.venv, from runners/python/ci.sh),
 * every read-only command is also run through it and the two outputs compared line by line.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatTimestamp } from "../src/store/encoding.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { rrqBinary, runCli, runRrq, writeConfig } from "./support/cli-harness.js";

let redis: TestRedis;
let config: string;
const NOW = Date.now();
const H = 3600_000;
const ts = (ms: number) => formatTimestamp(ms);
const oracle = rrqBinary();

/** Writes one job hash (RRQ field set) and, when given, queue/DLQ membership. */
async function job(
  id: string,
  fields: Record<string, string>,
  where: { queue?: [string, number]; dlq?: boolean } = {},
) {
  await redis.client.hset(`rrq:job:${id}`, {
    id,
    job_params: '{"n":1}',
    current_retries: "0",
    max_retries: "3",
    result: "null",
    ...fields,
  });
  if (where.queue) await redis.client.zadd(where.queue[0], where.queue[1], id);
  if (where.dlq) await redis.client.lpush("rrq:dlq:default", id);
}

beforeAll(async () => {
  redis = await startRedis();
  config = writeConfig(redis.url, "", "tcp_port = 19750");
  const q = (name: string) => `rrq:queue:${name}`;
  await job(
    "job-pending-a",
    {
      function_name: "send_email",
      queue_name: q("default"),
      status: "PENDING",
      enqueue_time: ts(NOW - 2.5 * H),
    },
    { queue: [q("default"), NOW - 2.5 * H] },
  );
  await job(
    "job-pending-b",
    {
      function_name: "resize_image",
      queue_name: q("default"),
      status: "PENDING",
      current_retries: "1",
      enqueue_time: ts(NOW - 0.75 * H),
    },
    { queue: [q("default"), NOW - 0.75 * H] },
  );
  await job(
    "job-low",
    {
      function_name: "export_csv",
      queue_name: q("low_priority"),
      status: "PENDING",
      enqueue_time: ts(NOW - 6.5 * H),
    },
    { queue: [q("low_priority"), NOW - 6.5 * H] },
  );
  await job("job-done", {
    function_name: "generate_report",
    queue_name: q("urgent"),
    status: "COMPLETED",
    enqueue_time: ts(NOW - 3.5 * H),
    start_time: ts(NOW - 3.5 * H + 12_000),
    completion_time: ts(NOW - 3.5 * H + 97_000),
    worker_id: "worker_9",
    result: '{"ok":true}',
  });
  await job(
    "job-failed-1",
    {
      function_name: "sync_database",
      queue_name: q("urgent"),
      status: "FAILED",
      current_retries: "3",
      enqueue_time: ts(NOW - 5.5 * H),
      start_time: ts(NOW - 5.5 * H + 1000),
      completion_time: ts(NOW - 5.5 * H + 15_000),
      last_error: "Database error",
    },
    { dlq: true },
  );
  await job(
    "job-failed-2",
    {
      function_name: "validate_input",
      queue_name: q("low_priority"),
      status: "FAILED",
      current_retries: "2",
      enqueue_time: ts(NOW - 20.5 * H),
      start_time: ts(NOW - 20.5 * H + 2000),
      completion_time: ts(NOW - 20.5 * H + 170_000),
      last_error: "Something went terribly wrong in the handler while doing things",
    },
    { dlq: true },
  );
  await job("job-retrying", {
    function_name: "send_email",
    queue_name: q("default"),
    status: "RETRYING",
    current_retries: "1",
    enqueue_time: ts(NOW - 1.5 * H),
  });
  await redis.client.set(
    "rrq:health:worker:w1",
    JSON.stringify({
      worker_id: "w1",
      timestamp: "2026-01-01T00:00:00+00:00",
      status: "running",
      active_jobs: 2,
      concurrency_limit: 4,
      queues: ["rrq:queue:default"],
    }),
    "EX",
    70,
  );
});
afterAll(async () => redis?.stop());

/** Runs a read-only command through rrqkit and, when available, RRQ; returns rrqkit's output. */
async function both(args: string[], normalize = (text: string) => text): Promise<string> {
  const ours = await runCli(config, args);
  expect(ours.err).toBe("");
  if (oracle) {
    const theirs = runRrq(oracle, config, args);
    expect(normalize(ours.out).trimEnd()).toBe(normalize(theirs.out).trimEnd());
  }
  return ours.out;
}

const sortTableBody = (text: string) => {
  const [header, ...rest] = text.trimEnd().split("\n");
  const blank = rest.indexOf("");
  const body = blank < 0 ? rest : rest.slice(0, blank);
  const tail = blank < 0 ? [] : rest.slice(blank);
  return [header, ...body.sort(), ...tail].join("\n");
};
/** RRQ prints float-rounded nanosecond timestamps in traces; rrqkit prints milliseconds. */
const traceTimes = (text: string) => text.replace(/\.\d+\+00:00/g, "+00:00");
/** Top-N sections list ties in hash order in RRQ; compare them as sets. */
const sortSections = (text: string) =>
  text
    .split("\n\n")
    .map((block) => {
      const [title, ...items] = block.split("\n");
      return title?.endsWith(":") ? [title, ...items.sort()].join("\n") : block;
    })
    .join("\n\n");

describe("RRQ's read-only commands print RRQ's output", () => {
  it("queue list (times human-readable: a deliberate difference)", async () => {
    // RRQ prints the raw scores (epoch ms) under Oldest(ms)/Newest(ms); rrqkit prints ages and
    // keeps the numbers for --json. The Queue and Pending columns and the total are RRQ's.
    const firstColumns = (text: string) =>
      sortTableBody(
        text
          .split("\n")
          .map((line) => line.slice(0, 41))
          .join("\n"),
      );
    const out = await both(["queue", "list"], firstColumns);
    expect(out).toBe(
      [
        "Queue                             Pending               Oldest               Newest",
        `rrq:queue:default                       2 ${"2h ago".padStart(20)} ${"45m ago".padStart(20)}`,
        `rrq:queue:low_priority                  1 ${"6h ago".padStart(20)} ${"6h ago".padStart(20)}`,
        "",
        "Total: 3 pending jobs",
        "",
      ].join("\n"),
    );
  });

  it("queue stats (RRQ's counts of job hashes on a small database)", async () => {
    const out = await both(["queue", "stats", "--max-scan", "1000"]);
    expect(out).toBe(
      [
        "Queue                        Total  Pending   Active Completed   Failed        DLQ     Avg Wait",
        "rrq:queue:default                2        2        0         0        0          0       1h 37m",
        "rrq:queue:low_priority           2        1        0         0        1          1       6h 30m",
        // urgent has no pending job, so no ZSET: RRQ's SCAN (and rrqkit's registry) skip it
        "",
        "Note: Active/Completed/Failed counts based on scanning up to 1000 jobs.",
        "Use --max-scan 0 for complete scan (may be slow for large datasets).",
        "",
      ].join("\n"),
    );
    // without --max-scan a small database is counted the same way, with no sampling note
    const auto = await runCli(config, ["queue", "stats"]);
    expect(auto.out.split("\n").slice(0, 4)).toEqual(out.split("\n").slice(0, 4));
  });

  it("queue inspect, and a missing queue", async () => {
    const out = await both(["queue", "inspect", "default"]);
    expect(out).toBe(
      [
        "#    Job ID                               Function             Status     Scheduled            Retries",
        "1    job-pending-a                        send_email           PENDING    2h ago                     0",
        "2    job-pending-b                        resize_image         PENDING    45m ago                    1",
        "",
      ].join("\n"),
    );
    expect(await both(["queue", "inspect", "nope"])).toBe("Queue 'rrq:queue:nope' not found\n");
    expect((await runCli(config, ["queue", "inspect", "nope"])).code).toBe(1);
  });

  it("job show, --raw, and a missing job", async () => {
    const out = await both(["job", "show", "job-done"]);
    expect(out.split("\n").slice(0, 3)).toEqual([
      "Job job-done",
      `completion_time          ${ts(NOW - 3.5 * H + 97_000)}`,
      "current_retries          0",
    ]);
    const raw = await runCli(config, ["job", "show", "job-done", "--raw"]);
    expect(JSON.parse(raw.out)).toEqual(await redis.client.hgetall("rrq:job:job-done"));
    if (oracle) {
      const theirs = runRrq(oracle, config, ["job", "show", "job-done", "--raw"]);
      expect(JSON.parse(raw.out)).toEqual(JSON.parse(theirs.out));
    }
    expect(await both(["job", "show", "nope"])).toBe("Job 'nope' not found\n");
  });

  it("job list with RRQ's filters", async () => {
    const all = await both(["job", "list"]);
    expect(all.split("\n").map((l) => l.slice(0, 37).trim())).toEqual([
      "Job ID",
      "job-pending-b",
      "job-retrying",
      "job-pending-a",
      "job-done",
      "job-failed-1",
      "job-low",
      "job-failed-2",
      "",
    ]);
    const row = (cells: string[]) =>
      [
        cells[0]!.padEnd(36),
        cells[1]!.padEnd(30),
        cells[2]!.padEnd(24),
        cells[3]!.padEnd(10),
        cells[4]!.padEnd(18),
        cells[5]!.padStart(10),
      ].join(" ");
    expect(all.split("\n")[4]).toBe(
      row(["job-done", "generate_report", "rrq:queue:urgent", "COMPLETED", "3h ago", "1m 25s"]),
    );
    const failed = await both(["job", "list", "--status", "failed", "--limit", "1"]);
    expect(failed.split("\n")[1]).toBe(
      row(["job-failed-1", "sync_database", "rrq:queue:urgent", "FAILED", "5h ago", "14.0s"]),
    );
    const byQueue = await both(["job", "list", "--queue", "low_priority"]);
    expect(
      byQueue
        .split("\n")
        .slice(1, 3)
        .map((l) => l.split(" ")[0]),
    ).toEqual(["job-low", "job-failed-2"]);
    await both(["job", "list", "--function", "send_email"]);
  });

  it("job trace from RRQ's fields", async () => {
    const iso = (ms: number) => new Date(ms).toISOString().replace("Z", "+00:00");
    const out = await both(["job", "trace", "job-done"], traceTimes);
    expect(traceTimes(out)).toBe(
      [
        "Job trace for job-done",
        "Event        Timestamp            Details",
        `Enqueued     ${traceTimes(iso(NOW - 3.5 * H))} Function: generate_report`,
        `Started      ${traceTimes(iso(NOW - 3.5 * H + 12_000))} Worker: worker_9 (+12.0s)`,
        `Finished     ${traceTimes(iso(NOW - 3.5 * H + 97_000))} Status: COMPLETED (+1m 25s)`,
        "",
        "Total Duration: 1m 37s",
        "",
      ].join("\n"),
    );
  });

  it("dlq list, --raw, stats and inspect", async () => {
    // RRQ cuts the queue key to 14 characters ("rrq:queue:u..."); rrqkit prints the bare name
    // (a deliberate difference), which fits RRQ's column here: the rest of each line is RRQ's
    const queueColumn = (text: string) =>
      text
        .split("\n")
        .map((line) => (line.length > 72 ? `${line.slice(0, 56)}${line.slice(73)}` : line))
        .join("\n");
    const list = await both(["dlq", "list"], queueColumn);
    expect(list).toBe(
      [
        "Job ID                               Function           Queue            Error                     Failed At          Retries",
        "job-failed-1                         sync_database      urgent           Database error            5h ago                   3",
        "job-failed-2                         validate_input     low_priority     Something went terri...   20h ago                  2",
        "",
        "Showing 1-2 of 2 jobs",
        "",
      ].join("\n"),
    );
    const page = await both(["dlq", "list", "--limit", "1"], queueColumn);
    expect(page).toContain("Showing 1-1 of 2 jobs\nUse --offset 1 to see more");
    const raw = await runCli(config, ["dlq", "list", "--raw", "--limit", "1"]);
    expect(JSON.parse(raw.out)).toEqual(await redis.client.hgetall("rrq:job:job-failed-1"));
    const stats = await both(["dlq", "stats"], sortSections);
    expect(sortSections(stats)).toBe(
      sortSections(
        [
          "DLQ: rrq:dlq:default",
          "Total jobs: 2",
          "Oldest: 20h ago",
          "Newest: 5h ago",
          "Avg retries: 2.50",
          "",
          "Top queues:",
          "  - rrq:queue:urgent: 1",
          "  - rrq:queue:low_priority: 1",
          "",
          "Top functions:",
          "  - sync_database: 1",
          "  - validate_input: 1",
          "",
          "Top errors:",
          "  - (1x) Database error",
          "  - (1x) Something went terribly wrong in the handler while doing things",
          "",
        ].join("\n"),
      ),
    );
    const inspect = await runCli(config, ["dlq", "inspect", "job-failed-1"]);
    expect(inspect.out.split("\n")[0]).toBe("DLQ Job job-failed-1");
    expect(JSON.parse(inspect.out.split("\n").slice(1).join("\n"))).toEqual(
      await redis.client.hgetall("rrq:job:job-failed-1"),
    );
  });

  it("check: RRQ's report, plus rrqkit's Implementation line", async () => {
    const out = await both(["check"], (text) =>
      text.replace(/TTL: \d+ seconds/, "TTL: N seconds").replace(/\n {4}Implementation: .*/g, ""),
    );
    // the key was written with EX 70 in beforeAll; how much is left depends on the machine
    const ttl = Number(/TTL: (\d+) seconds/.exec(out)?.[1]);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(70);
    expect(out.replace(/TTL: \d+ seconds/, "TTL: N seconds")).toBe(
      [
        "Worker Health Check: Found 1 active worker(s):",
        "  - Worker ID: w1",
        '    Status: "running"',
        "    Active Jobs: 2",
        '    Last Heartbeat: "2026-01-01T00:00:00+00:00"',
        "    TTL: N seconds",
        "    Implementation: rrq (RRQ 0.11 or unknown)",
        "",
      ].join("\n"),
    );
  });
});
