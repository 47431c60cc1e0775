/**
 * Scenario 3, latency: enqueue→handler-start and enqueue→result at a steady offered load.
 *
 * - `idle`: one job at a time with 20 ms of idle between (bench/idle-latency.ts's measurement:
 *   from the enqueue call returning);
 * - `200/s` and `2000/s`: open-loop load (jobs are sent on schedule whether or not earlier
 *   ones finished), measured from the enqueue call.
 *
 * Handler start is the `ts_ms` the handler itself appends to RRQ_TEST_EXEC_LOG (the Node
 * conformance runner for rrqkit and RRQ, the same code in BullMQ's processor). Result is the
 * completion time the consumer stores in Redis (`completion_time` for rrqkit and RRQ, BullMQ's
 * `finishedOn`). All clocks are this machine's wall clock. rrqkit and RRQ are fed by rrqkit's
 * TypeScript producer (RRQ's orchestrator ignores its wake-up PUBLISH and polls).
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Queue } from "bullmq";
import { Producer } from "../../src/producer/producer.js";
import { rounds, startOptions, type BenchContext } from "../lib/context.js";
import { BULL_QUEUE, startConsumer, type ConsumerSpec } from "../lib/consumers.js";
import { resetServer } from "../lib/redis.js";
import { Case } from "../lib/report.js";
import { BASELINES, BULLMQ_INPROCESS, OURS_BEST, RRQ_NODE } from "../lib/specs.js";
import { latencySummary } from "../lib/stats.js";

interface Load {
  id: string;
  /** Jobs per second (0 = idle: sequential with gaps). */
  rate: number;
  jobs: number;
}

const wallMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Parses an RFC 3339 timestamp with any number of fraction digits to epoch ms. */
export function parseRfc3339Ms(text: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!m) return NaN;
  const base = Date.parse(`${m[1]}${m[3] === "Z" ? "Z" : m[3]}`);
  const fraction = m[2] ? Number(`0.${m[2]}`) * 1000 : 0;
  return base + fraction;
}

interface Enqueuer {
  enqueue(i: number): Promise<string>;
  close(): Promise<void>;
}

function enqueuer(ctx: BenchContext, spec: ConsumerSpec): Enqueuer {
  if (spec.system === "bullmq") {
    const { hostname, port } = new URL(ctx.redisUrl);
    const queue = new Queue(BULL_QUEUE, { connection: { host: hostname, port: Number(port) } });
    return {
      enqueue: async (i) => (await queue.add("echo", { i })).id!,
      close: () => queue.close(),
    };
  }
  const producer = new Producer({ redisDsn: ctx.redisUrl });
  return {
    enqueue: (i) => producer.enqueue("echo", { i }),
    close: () => producer.close(),
  };
}

/** Completion times (epoch ms) of the jobs, once all are done (or NaN for missing ones). */
async function completionTimes(
  ctx: BenchContext,
  spec: ConsumerSpec,
  ids: readonly string[],
  timeoutMs: number,
): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pipeline = ctx.redis.pipeline();
    for (const id of ids) {
      if (spec.system === "bullmq") pipeline.hget(`bull:${BULL_QUEUE}:${id}`, "finishedOn");
      else pipeline.hget(`rrq:job:${id}`, "completion_time");
    }
    const replies = (await pipeline.exec()) ?? [];
    const out = new Map<string, number>();
    replies.forEach(([error, value], i) => {
      if (error || value == null) return;
      const v = value as string;
      out.set(ids[i]!, spec.system === "bullmq" ? Number(v) : parseRfc3339Ms(v));
    });
    if (out.size === ids.length || Date.now() > deadline) return out;
    await sleep(100);
  }
}

function readExecLog(path: string): Map<string, number> {
  const started = new Map<string, number>();
  if (!existsSync(path)) return started;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const entry = JSON.parse(line) as { job_id: string | number; ts_ms: number };
    if (!started.has(String(entry.job_id))) started.set(String(entry.job_id), entry.ts_ms);
  }
  return started;
}

/** Offers `load` to a running consumer; returns enqueue timestamps by job id. */
async function offer(
  ctx: BenchContext,
  spec: ConsumerSpec,
  load: Load,
): Promise<Map<string, number>> {
  const client = enqueuer(ctx, spec);
  const sent = new Map<string, number>();
  try {
    await client.enqueue(-1).then((id) => sent.set(id, NaN)); // connect + warm the script
    await sleep(200);
    sent.clear();
    if (load.rate === 0) {
      for (let i = 0; i < load.jobs; i++) {
        await sleep(20); // idle between jobs
        const id = await client.enqueue(i);
        sent.set(id, wallMs());
      }
    } else {
      const begin = performance.now();
      const interval = 1000 / load.rate;
      const inflight: Array<Promise<unknown>> = [];
      let i = 0;
      while (i < load.jobs) {
        const due = Math.min(load.jobs, Math.floor((performance.now() - begin) / interval) + 1);
        for (; i < due; i++) {
          const t = wallMs();
          inflight.push(client.enqueue(i).then((id) => sent.set(id, t)));
        }
        if (i < load.jobs) await sleep(1);
      }
      await Promise.all(inflight);
    }
  } finally {
    await client.close();
  }
  return sent;
}

export async function runLatency(ctx: BenchContext): Promise<void> {
  const loads: Load[] = ctx.quick
    ? [
        { id: "idle", rate: 0, jobs: 20 },
        { id: "200", rate: 200, jobs: 100 },
        { id: "2000", rate: 2000, jobs: 500 },
      ]
    : [
        { id: "idle", rate: 0, jobs: 200 },
        { id: "200", rate: 200, jobs: 2000 },
        { id: "2000", rate: 2000, jobs: 10_000 },
      ];
  const contenders = [OURS_BEST, BULLMQ_INPROCESS, RRQ_NODE];
  for (const load of loads) {
    const what = load.rate
      ? `${load.rate} jobs/s offered (open loop)`
      : "idle (one job every ~20 ms)";
    const params = { jobs: load.jobs, rate: load.rate || null };
    const mk = (metric: string, title: string) =>
      ctx.addCase(
        new Case(
          `latency/${load.id}/${metric}`,
          `${title}, ${what}`,
          "ms",
          false,
          BASELINES,
          params,
        ),
      );
    const cases = {
      start_p50: mk("start_p50", "enqueue→handler start p50"),
      start_p95: mk("start_p95", "enqueue→handler start p95"),
      start_p99: mk("start_p99", "enqueue→handler start p99"),
      result_p50: mk("result_p50", "enqueue→result stored p50"),
      result_p95: mk("result_p95", "enqueue→result stored p95"),
      result_p99: mk("result_p99", "enqueue→result stored p99"),
    };
    ctx.log(`latency: ${what}`);
    await rounds(ctx, contenders, async (spec, rep) => {
      await resetServer(ctx.redis);
      const execLog = join(ctx.workDir, `exec-${spec.id}-${load.id}-${rep + 1}.log`);
      rmSync(execLog, { force: true });
      let consumer;
      try {
        consumer = await startConsumer(spec, { ...startOptions(ctx), execLog }, ctx.redis);
        await sleep(300); // let it settle into its idle loop
        const sent = await offer(ctx, spec, load);
        const ids = [...sent.keys()];
        const done = await completionTimes(ctx, spec, ids, 60_000);
        const started = readExecLog(execLog);
        const toStart: number[] = [];
        const toResult: number[] = [];
        for (const [id, t] of sent) {
          const s = started.get(id);
          const d = done.get(id);
          if (s !== undefined) toStart.push(s - t);
          if (d !== undefined) toResult.push(d - t);
        }
        const accounted = toStart.length === load.jobs && toResult.length === load.jobs;
        const st = latencySummary(toStart);
        const rs = latencySummary(toResult);
        ctx.log(
          `    start p50 ${st.p50.toFixed(2)} p95 ${st.p95.toFixed(2)} p99 ${st.p99.toFixed(2)} ms; result p50 ${rs.p50.toFixed(2)} p99 ${rs.p99.toFixed(2)} ms; ${toResult.length}/${load.jobs} done`,
        );
        if (rep < 0) return;
        cases.start_p50.record(spec, rep, st.p50, {}, accounted);
        cases.start_p95.record(spec, rep, st.p95, {}, accounted);
        cases.start_p99.record(spec, rep, st.p99, {}, accounted);
        cases.result_p50.record(spec, rep, rs.p50, {}, accounted);
        cases.result_p95.record(spec, rep, rs.p95, {}, accounted);
        cases.result_p99.record(spec, rep, rs.p99, {}, accounted);
      } catch (error) {
        const message = (error as Error).message;
        ctx.log(`    FAILED: ${message}`);
        if (rep >= 0)
          for (const c of Object.values(cases)) c.fail(spec, rep, message.split("\n")[0]!);
      } finally {
        await consumer?.stop();
      }
    });
  }
}
