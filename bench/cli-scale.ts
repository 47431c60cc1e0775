/**
 * How long the operator commands take on a large Redis: `rrq queue list`, `rrq queue stats` and
 * `rrq dlq stats` (plus `job list` and RRQ's full-scan way, for contrast) with 1,000,000 pending
 * jobs across 5 queues and a 100,000-job DLQ, on a private redis-server.
 *
 *   npx tsx bench/cli-scale.ts [--jobs 1000000] [--queues 5] [--dlq 100000] [--runs 5] [--full-scan]
 *
 * Pending jobs are written by rrqkit's producer (its enqueue script, as in production). DLQ jobs
 * are written as RRQ's orchestrator leaves them (hash + LPUSH), so the first `dlq stats` has to
 * rebuild rrqkit's summary once; that one-time cost is reported separately. Each figure is the
 * median of `--runs` runs, measured in-process through the data API and end to end through the
 * `rrq` binary (Node start-up included; needs `npm run build`).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RrqApi } from "../src/api/index.js";
import { Producer } from "../src/producer/producer.js";
import { startRedis } from "../test/support/redis-server.js";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const JOBS = arg("jobs", 1_000_000);
const QUEUES = arg("queues", 5);
const DLQ = arg("dlq", 100_000);
const RUNS = arg("runs", 5);
const FULL_SCAN = process.argv.includes("--full-scan");
const RRQ_BIN = fileURLToPath(new URL("../bin/rrq.js", import.meta.url));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}
async function timeRuns(fn: () => Promise<unknown>, runs = RUNS): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await time(fn));
  return median(samples);
}
function cliRuns(config: string, args: string[], runs = RUNS): number {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const result = spawnSync(process.execPath, [RRQ_BIN, "--config", config, ...args], {
      encoding: "utf8",
    });
    samples.push(performance.now() - start);
    if (result.status !== 0) throw new Error(`rrq ${args.join(" ")} failed: ${result.stderr}`);
  }
  return median(samples);
}

const redis = await startRedis();
const dir = mkdtempSync(join(tmpdir(), "rrq-bench-"));
const config = join(dir, "rrq.toml");
writeFileSync(config, `[rrq]\nredis_dsn = "${redis.url}"\n`);
try {
  console.log(`writing ${JOBS.toLocaleString()} pending jobs across ${QUEUES} queues…`);
  const producer = new Producer({ redisDsn: redis.url });
  const fill = await time(async () => {
    const batch = 5000;
    for (let done = 0; done < JOBS; done += batch) {
      const n = Math.min(batch, JOBS - done);
      await producer.enqueueMany(
        Array.from({ length: n }, (_, i) => ({
          functionName: `task_${(done + i) % 7}`,
          params: { i: done + i },
          options: { queueName: `bench_${(done + i) % QUEUES}` },
        })),
      );
    }
  });
  await producer.close();
  console.log(`  ${(fill / 1000).toFixed(1)} s`);

  console.log(`writing ${DLQ.toLocaleString()} DLQ jobs the way RRQ's orchestrator does…`);
  for (let done = 0; done < DLQ; done += 5000) {
    const pipeline = redis.client.pipeline();
    for (let i = done; i < Math.min(done + 5000, DLQ); i++) {
      const id = `dead-${i}`;
      pipeline.hset(`rrq:job:${id}`, {
        id,
        function_name: `task_${i % 7}`,
        job_params: "{}",
        enqueue_time: "2026-01-01T00:00:00+00:00",
        completion_time: new Date(Date.UTC(2026, 0, 2) + i).toISOString().replace("Z", "+00:00"),
        status: "FAILED",
        current_retries: String(i % 5),
        queue_name: `rrq:queue:bench_${i % QUEUES}`,
        last_error: `error kind ${i % 13}`,
        result: "null",
      });
      pipeline.lpush("rrq:dlq:default", id);
    }
    await pipeline.exec();
  }
  const dbsize = await redis.client.dbsize();
  const memory = /used_memory_human:(\S+)/.exec(await redis.client.info("memory"))?.[1];
  console.log(`database: ${dbsize.toLocaleString()} keys, ${memory}\n`);

  const api = RrqApi.connect(redis.url);
  const rebuild = await time(() => api.dlq.stats());
  const rows: Array<[string, string, string]> = [];
  const row = (what: string, apiMs: number | undefined, cliMs: number | undefined) =>
    rows.push([
      what,
      apiMs === undefined ? "" : `${apiMs.toFixed(1)} ms`,
      cliMs === undefined ? "" : `${cliMs.toFixed(0)} ms`,
    ]);
  row("queue list", await timeRuns(() => api.queues.list()), cliRuns(config, ["queue", "list"]));
  row("queue stats", await timeRuns(() => api.queues.stats()), cliRuns(config, ["queue", "stats"]));
  row("dlq stats", await timeRuns(() => api.dlq.stats()), cliRuns(config, ["dlq", "stats"]));
  row("dlq stats: first read, summary rebuilt from the list (once)", rebuild, undefined);
  row(
    "job list (index)",
    await timeRuns(() => api.jobs.list({ mode: "index" })),
    cliRuns(config, ["job", "list"]),
  );
  row("dlq list", await timeRuns(() => api.dlq.list()), cliRuns(config, ["dlq", "list"]));
  row("queue inspect (first page)", await timeRuns(() => api.queues.page("bench_0")), undefined);
  // the same command on an empty database (db 1): what Node, ioredis and config loading cost
  const empty = new URL(redis.url);
  empty.pathname = "/1";
  const emptyConfig = join(dir, "empty.toml");
  writeFileSync(emptyConfig, `[rrq]\nredis_dsn = "${empty.href}"\n`);
  row(
    "start-up: queue list on an empty database",
    undefined,
    cliRuns(emptyConfig, ["queue", "list"]),
  );
  if (FULL_SCAN) {
    row(
      "queue stats --max-scan 0 (RRQ's full scan)",
      await timeRuns(() => api.queues.stats({ maxScan: 0 }), 1),
      undefined,
    );
    row(
      "job list --scan (RRQ's full scan)",
      await timeRuns(() => api.jobs.list({ mode: "scan" }), 1),
      undefined,
    );
  }
  // Last, because it changes the data: the whole DLQ back into a queue, one Lua call per batch.
  // The longest gap between progress reports bounds how long any one call held Redis.
  let last = performance.now();
  let longestBatch = 0;
  const requeue = await time(() =>
    api.dlq.requeue(
      { all: true },
      {
        onProgress: () => {
          const now = performance.now();
          longestBatch = Math.max(longestBatch, now - last);
          last = now;
        },
      },
    ),
  );
  row(`dlq requeue --all (${DLQ.toLocaleString()} jobs, batches of 500)`, requeue, undefined);
  row("  longest batch (one Lua call + round trip)", longestBatch, undefined);
  await api.close();
  const width = Math.max(...rows.map((r) => r[0].length));
  console.log(`${"command".padEnd(width)}  ${"data API".padStart(10)}  ${"rrq CLI".padStart(8)}`);
  for (const [what, a, c] of rows)
    console.log(`${what.padEnd(width)}  ${a.padStart(10)}  ${c.padStart(8)}`);
  console.log(`\nmedian of ${RUNS} runs; CLI figures include Node start-up and config loading`);
} finally {
  await redis.stop();
}
