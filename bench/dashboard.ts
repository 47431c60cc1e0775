/**
 * How fast the dashboard's data requests answer on a large Redis: every page's JSON endpoint
 * with 1,000,000 pending jobs across 5 queues, a 100,000-job DLQ and a full recent-jobs feed,
 * on a private redis-server (issue 21's target: ≤ 200 ms server-side each).
 *
 *   npx tsx bench/dashboard.ts [--jobs 1000000] [--queues 5] [--dlq 100000] [--runs 7]
 *
 * Pending jobs are written by rrqkit's producer (its enqueue script, as in production); DLQ jobs
 * as RRQ's orchestrator leaves them (hash + LPUSH), after which the DLQ summary is rebuilt once
 * (rrqkit's scripts keep it current from then on; that one-time cost is printed apart). Each
 * request goes over HTTP to a dashboard server in this process; the figure is the server-side
 * time from its `Server-Timing` header (median and worst of `--runs`), with the round trip
 * beside it. Not a timed test: it prints the figures and marks any above 200 ms.
 */
import { RrqApi } from "../src/api/index.js";
import { startDashboardServer } from "../src/dashboard/server/index.js";
import { Producer } from "../src/producer/producer.js";
import { startRedis } from "../test/support/redis-server.js";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const JOBS = arg("jobs", 1_000_000);
const QUEUES = arg("queues", 5);
const DLQ = arg("dlq", 100_000);
const RUNS = arg("runs", 7);
const TARGET_MS = 200;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const iso = (ms: number) => new Date(ms).toISOString().replace("Z", "+00:00");

const redis = await startRedis(["--maxmemory", "0"]);
try {
  console.log(`writing ${JOBS.toLocaleString()} pending jobs across ${QUEUES} queues…`);
  const started = performance.now();
  const producer = new Producer({ redisDsn: redis.url });
  const batch = 5000;
  for (let done = 0; done < JOBS; done += batch) {
    const n = Math.min(batch, JOBS - done);
    await producer.enqueueMany(
      Array.from({ length: n }, (_, i) => ({
        functionName: `task_${(done + i) % 7}`,
        params: { i: done + i },
        // one job in ten deferred by an hour, so the ready/deferred split has both
        options: {
          queueName: `bench_${(done + i) % QUEUES}`,
          ...((done + i) % 10 === 0 ? { deferBySeconds: 3600 } : {}),
        },
      })),
    );
  }
  await producer.close();
  console.log(`  ${((performance.now() - started) / 1000).toFixed(1)} s`);

  console.log(`writing ${DLQ.toLocaleString()} DLQ jobs and a full recent-jobs feed…`);
  const now = Date.now();
  for (let done = 0; done < DLQ; done += 5000) {
    const pipeline = redis.client.pipeline();
    for (let i = done; i < Math.min(done + 5000, DLQ); i++) {
      const id = `dead-${i}`;
      pipeline.hset(`rrq:job:${id}`, {
        id,
        function_name: `task_${i % 7}`,
        job_params: "{}",
        enqueue_time: iso(now - 7_200_000),
        start_time: iso(now - 7_100_000),
        completion_time: iso(now - 7_000_000 + i),
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
  // the feed the per-minute chart reads: 10,000 finished jobs over the last hour
  const feed = redis.client.pipeline();
  for (let i = 0; i < 10_000; i++) {
    const at = now - 3_600_000 + i * 360;
    feed.xadd(
      "rrq:recent",
      `${at}-0`,
      "j",
      `dead-${i % DLQ}`,
      "q",
      "rrq:queue:bench_0",
      "f",
      "task_0",
      "s",
      i % 10 ? "COMPLETED" : "FAILED",
    );
  }
  await feed.exec();
  const dbsize = await redis.client.dbsize();
  const memory = /used_memory_human:(\S+)/.exec(await redis.client.info("memory"))?.[1];
  console.log(`database: ${dbsize.toLocaleString()} keys, ${memory}\n`);

  const api = RrqApi.connect(redis.url);
  const rebuildStart = performance.now();
  await api.dlq.stats();
  const rebuild = performance.now() - rebuildStart;
  const dashboard = await startDashboardServer({ api, port: 0 });
  // the first overview also waits for the worker SCAN and reads the whole feed (once)
  const firstStart = performance.now();
  await (await fetch(new URL("api/overview", dashboard.url))).arrayBuffer();
  const firstOverview = performance.now() - firstStart;
  const requests: Array<[string, string]> = [
    ["overview", "api/overview"],
    ["queues", "api/queues"],
    ["queue page: ready, first 50", "api/queues/bench_0/jobs?state=ready&limit=50"],
    ["queue page: ready, offset 150,000", "api/queues/bench_0/jobs?state=ready&cursor=150000"],
    ["queue page: deferred", "api/queues/bench_0/jobs?state=deferred&limit=50"],
    ["job search: function", "api/jobs?function=task_3&limit=50"],
    ["job search: status failed", "api/jobs?status=failed&limit=50"],
    ["job search: queue", "api/jobs?queue=bench_1&limit=50"],
    ["job search: id", "api/jobs?id=dead-42"],
    ["job detail", "api/jobs/dead-42"],
    ["dlq", "api/dlq"],
    ["dlq: function filter", "api/dlq?function=task_3"],
    ["dlq: error filter", `api/dlq?error=${encodeURIComponent("error kind 5")}`],
    ["workers", "api/workers"],
    ["cron", "api/cron"],
    ["config", "api/config"],
  ];
  const rows: string[][] = [];
  let over = 0;
  for (const [what, path] of requests) {
    const server: number[] = [];
    const total: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const t0 = performance.now();
      const res = await fetch(new URL(path, dashboard.url));
      await res.arrayBuffer();
      total.push(performance.now() - t0);
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}`);
      const dur = /dur=([\d.]+)/.exec(res.headers.get("server-timing") ?? "")?.[1];
      server.push(Number(dur));
    }
    const worst = Math.max(...server);
    if (median(server) > TARGET_MS) over++;
    rows.push([
      what,
      `${median(server).toFixed(1)} ms`,
      `${worst.toFixed(1)} ms`,
      `${median(total).toFixed(1)} ms`,
      median(server) > TARGET_MS ? "  > 200 ms" : "",
    ]);
  }
  await dashboard.close();
  await api.close();
  const width = Math.max(...rows.map((r) => r[0]!.length));
  console.log(
    `${"request".padEnd(width)}  ${"server".padStart(10)}  ${"worst".padStart(10)}  ${"round trip".padStart(10)}`,
  );
  for (const [what, s, w, t, flag] of rows)
    console.log(
      `${what!.padEnd(width)}  ${s!.padStart(10)}  ${w!.padStart(10)}  ${t!.padStart(10)}${flag}`,
    );
  console.log(`\nDLQ summary rebuilt once before the runs: ${rebuild.toFixed(0)} ms`);
  console.log(
    `first overview after start (worker SCAN of the keyspace, whole feed read; once): ${firstOverview.toFixed(0)} ms`,
  );
  console.log(
    `median (and worst) of ${RUNS} runs, server-side from Server-Timing; ${over} request(s) over ${TARGET_MS} ms`,
  );
} finally {
  await redis.stop();
}
