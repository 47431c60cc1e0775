/**
 * Scenario 5, scaling:
 * - queue depth: throughput while the queue holds D pending jobs (D = 1k, 100k, 1M). Each depth
 *   has its own fresh redis-server (same arguments as the scenario's), so that every repetition
 *   measures all depths back to back, seconds apart: on a shared machine whose speed drifts by
 *   tens of percent over minutes, depths measured minutes apart (one after the other on one
 *   server, refilled in between) gave a ratio that swung from 0.67 to 1.16 between runs. In
 *   each measurement the queue is topped up to D + W, a consumer starts, and the time for the
 *   depth to fall from D + W to D is measured (W = 20,000 jobs), once Redis has finished any
 *   resize of its key table the top-up started (`settleKeyspace`). rrqkit and RRQ share the job
 *   format and the queue; BullMQ's jobs sit in the same server under its own keys.
 * - orchestrator processes: burn-down of N jobs by 1 and by 2 orchestrator (or BullMQ worker)
 *   processes on the same Redis.
 */
import type { Redis } from "ioredis";
import { burnDown } from "../lib/burn.js";
import { rounds, startOptions, type BenchContext } from "../lib/context.js";
import {
  BULL_QUEUE,
  RRQ_QUEUE,
  startConsumer,
  type ConsumerSpec,
  type RunningConsumer,
} from "../lib/consumers.js";
import { fill, watchDrain } from "../lib/jobs.js";
import { ORPHAN_SCAN_KEY } from "../../src/store/keys.js";
import { freshRedis, settleKeyspace } from "../lib/redis.js";
import { Case } from "../lib/report.js";
import { BASELINES, BULLMQ_INPROCESS, OURS_BEST, RRQ_NODE } from "../lib/specs.js";
import { pairedRatios } from "../lib/stats.js";

const depthOf = (redis: Redis, spec: ConsumerSpec) =>
  spec.system === "bullmq" ? redis.llen(`bull:${BULL_QUEUE}:wait`) : redis.zcard(RRQ_QUEUE);

/** One depth's server and result case. */
interface DepthServer {
  depth: number;
  url: string;
  redis: Redis;
  stop(): Promise<void>;
  result: Case;
}

/** Tops `server`'s queue up to depth + window, then measures the drain of `window` jobs. */
async function measureAtDepth(
  ctx: BenchContext,
  spec: ConsumerSpec,
  server: DepthServer,
  window: number,
): Promise<number> {
  const current = await depthOf(server.redis, spec);
  const target = server.depth + window;
  if (current < target) await fill(server.url, spec.system, target - current, { keepIds: false });
  if (!(await settleKeyspace(server.redis)))
    ctx.log(
      `    depth ${server.depth}: could not see the key table settle (DEBUG refused or rehash timed out)`,
    );
  // Every rrqkit start runs the heartbeat's orphan scan (paced, the same cost per second at
  // any depth), as the first worker of an idle fleet does: free the scan turn a consumer of an
  // earlier round may still hold, so no measurement skips the scan by chance.
  if (spec.system === "rrqkit") await server.redis.del(ORPHAN_SCAN_KEY);
  const start = await depthOf(server.redis, spec);
  let consumer: RunningConsumer | undefined;
  try {
    consumer = await startConsumer(
      spec,
      { ...startOptions(ctx, server.url), waitReady: false },
      server.redis,
    );
    const w = await watchDrain(server.redis, spec.system, {
      from: start,
      to: start - window,
      timeoutMs: 120_000,
      workerIds: () => [],
    });
    return window / ((w.endMs - w.startMs) / 1000);
  } finally {
    await consumer?.stop();
  }
}

async function depthScaling(ctx: BenchContext): Promise<void> {
  const depths = ctx.quick ? [100, 1000, 5000] : [1000, 100_000, 1_000_000];
  const window = ctx.quick ? 500 : 20_000;
  const contenders = [OURS_BEST, BULLMQ_INPROCESS, RRQ_NODE];
  const servers: DepthServer[] = [];
  try {
    for (const depth of depths) {
      const server = await freshRedis();
      servers.push({
        depth,
        url: server.url,
        redis: server.client,
        stop: () => server.stop(),
        result: ctx.addCase(
          new Case(
            `scaling/depth-${depth}`,
            `throughput with ${depth} jobs pending (drain ${window} jobs from ${depth + window} to ${depth})`,
            "jobs/s",
            true,
            BASELINES,
            { depth, window },
          ),
        ),
      });
    }
    await rounds(ctx, contenders, async (spec, rep) => {
      // Alternate the order of the depths between repetitions, so neither end of the ratio is
      // always measured first.
      const order = rep % 2 === 0 ? servers : [...servers].reverse();
      for (const server of order) {
        try {
          const rate = await measureAtDepth(ctx, spec, server, window);
          ctx.log(`    depth ${server.depth}: ${Math.round(rate)} jobs/s`);
          if (rep >= 0) server.result.record(spec, rep, rate);
        } catch (error) {
          const message = (error as Error).message;
          ctx.log(`    depth ${server.depth} FAILED: ${message}`);
          if (rep >= 0) server.result.fail(spec, rep, message.split("\n")[0]!);
        }
      }
    });
  } finally {
    for (const server of servers) await server.stop();
  }
  // Throughput at the deepest queue over throughput at the shallowest, per repetition.
  const deep = servers[servers.length - 1]!.result;
  const shallow = servers[0]!.result;
  const ratio = ctx.addCase(
    new Case(
      "scaling/depth-ratio",
      `throughput at ${depths[depths.length - 1]} pending ÷ throughput at ${depths[0]} pending`,
      "×",
      true,
      BASELINES,
      {},
    ),
  );
  for (const spec of contenders) {
    const a = deep.contenders.find((e) => e.id === spec.id)?.values ?? [];
    const b = shallow.contenders.find((e) => e.id === spec.id)?.values ?? [];
    pairedRatios(a, b).forEach((r, rep) => ratio.record(spec, rep, r));
  }
}

async function processScaling(ctx: BenchContext): Promise<void> {
  const contenders = [OURS_BEST, BULLMQ_INPROCESS, RRQ_NODE];
  const cases = new Map<number, Case>();
  for (const processes of [1, 2]) {
    cases.set(
      processes,
      ctx.addCase(
        new Case(
          `scaling/processes-${processes}`,
          `burn-down of ${ctx.jobs} jobs by ${processes} orchestrator (or BullMQ worker) process${processes > 1 ? "es" : ""} on one Redis`,
          "jobs/s",
          true,
          BASELINES,
          { jobs: ctx.jobs, processes },
        ),
      ),
    );
  }
  const runs = contenders.flatMap((spec) =>
    [1, 2].map((processes) => ({
      ...spec,
      id: spec.id,
      label: `${spec.label} ×${processes}`,
      processes,
    })),
  );
  await rounds(ctx, runs, async (run, rep) => {
    const c = cases.get(run.processes)!;
    const spec = contenders.find((s) => s.id === run.id)!;
    try {
      const jobs = rep < 0 ? Math.ceil(ctx.jobs / 5) : ctx.jobs;
      const r = await burnDown(ctx, spec, jobs, { processes: run.processes });
      ctx.log(`    ${Math.round(r.jobsPerSecond)} jobs/s; ${r.detail}`);
      if (rep >= 0) c.record(spec, rep, r.jobsPerSecond, {}, r.accounted);
    } catch (error) {
      const message = (error as Error).message;
      ctx.log(`    FAILED: ${message}`);
      if (rep >= 0) c.fail(spec, rep, message.split("\n")[0]!);
    }
  });
  const ratio = ctx.addCase(
    new Case(
      "scaling/processes-ratio",
      "throughput with 2 processes ÷ with 1",
      "×",
      true,
      BASELINES,
      {},
    ),
  );
  for (const spec of contenders) {
    const two = cases.get(2)!.contenders.find((e) => e.id === spec.id)?.values ?? [];
    const one = cases.get(1)!.contenders.find((e) => e.id === spec.id)?.values ?? [];
    pairedRatios(two, one).forEach((r, rep) => ratio.record(spec, rep, r));
  }
}

export async function runScaling(ctx: BenchContext): Promise<void> {
  await depthScaling(ctx);
  await processScaling(ctx);
}
