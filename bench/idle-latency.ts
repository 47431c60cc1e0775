/**
 * Idle dispatch latency: with the orchestrator idle, how long from an enqueue returning to the
 * handler starting (measured in the runner's execution log) and to the result being stored.
 *
 *   npx tsx bench/idle-latency.ts [--jobs 200] [--gap-ms 20] [--transport unix|tcp|stdio] [--json FILE]
 *
 * Starts its own redis-server and an in-process worker with the Node conformance runner.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Producer } from "../src/producer/producer.js";
import { startRedis } from "../test/support/redis-server.js";
import { NODE_RUNNER, RunningWorker, testConfig, waitFor } from "../test/support/worker-harness.js";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "200" },
    "gap-ms": { type: "string", default: "20" },
    transport: { type: "string", default: "unix" },
    json: { type: "string" },
  },
});
const jobs = Number(values.jobs);
const gapMs = Number(values["gap-ms"]);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const redis = await startRedis();
const logFile = join(mkdtempSync(join(tmpdir(), "rrq-lat-")), "exec.log");
const config = testConfig(
  redis.url,
  {},
  {
    node: {
      cmd: [process.execPath, NODE_RUNNER],
      pool_size: 1,
      max_in_flight: 16,
      transport: values.transport,
      ...(values.transport === "tcp" ? { tcp_port: 19_500 } : {}),
      env: { RRQ_TEST_EXEC_LOG: logFile },
    },
  },
);
const worker = await new RunningWorker(config).start();
const producer = new Producer({ redisDsn: redis.url });
await producer.enqueue("echo", {}); // warm-up
await waitFor(() => worker.of("job:completed").length === 1);

const enqueuedAt = new Map<string, number>();
const completedAt = new Map<string, number>();
worker.events.on("job:completed", (e) =>
  completedAt.set(e.jobId, performance.timeOrigin + performance.now()),
);
for (let i = 0; i < jobs; i++) {
  await new Promise((r) => setTimeout(r, gapMs)); // idle between jobs
  const id = await producer.enqueue("echo", { i });
  enqueuedAt.set(id, performance.timeOrigin + performance.now());
}
await waitFor(() => completedAt.size >= jobs, 60_000, "all jobs");
const started = new Map<string, number>();
for (const line of readFileSync(logFile, "utf8").trim().split("\n")) {
  const entry = JSON.parse(line) as { job_id: string; ts_ms: number };
  started.set(entry.job_id, entry.ts_ms);
}
const toStart = [...enqueuedAt].map(([id, t]) => started.get(id)! - t).sort((a, b) => a - b);
const toResult = [...enqueuedAt].map(([id, t]) => completedAt.get(id)! - t).sort((a, b) => a - b);
const report = {
  jobs,
  gap_ms: gapMs,
  transport: values.transport,
  enqueue_to_start_ms: {
    p50: percentile(toStart, 50),
    p95: percentile(toStart, 95),
    p99: percentile(toStart, 99),
  },
  enqueue_to_result_ms: {
    p50: percentile(toResult, 50),
    p95: percentile(toResult, 95),
    p99: percentile(toResult, 99),
  },
};
console.log(JSON.stringify(report, null, 2));
if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2));
await worker.stop();
await producer.close();
await redis.stop();
