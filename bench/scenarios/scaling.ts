/**
 * Scenario 5, scaling:
 * - queue depth: throughput while the queue holds D pending jobs (D = 1k, 100k, 1M): the queue
 *   is topped up to D + W, a consumer starts, and the time for the depth to fall from D + W to
 *   D is measured (W = 20,000 jobs). rrqkit and RRQ share the job format and the queue.
 * - orchestrator processes: burn-down of N jobs by 1 and by 2 orchestrator (or BullMQ worker)
 *   processes on the same Redis.
 */
import { burnDown } from "../lib/burn.js";
import { rounds, type BenchContext } from "../lib/context.js";
import {
  BULL_QUEUE,
  RRQ_QUEUE,
  startConsumer,
  type ConsumerSpec,
  type RunningConsumer,
} from "../lib/consumers.js";
import { fill, watchDrain } from "../lib/jobs.js";
import { Case } from "../lib/report.js";
import { BASELINES, BULLMQ_INPROCESS, OURS_BEST, RRQ_NODE } from "../lib/specs.js";
import { pairedRatios } from "../lib/stats.js";

const depthOf = (ctx: BenchContext, spec: ConsumerSpec) =>
  spec.system === "bullmq" ? ctx.redis.llen(`bull:${BULL_QUEUE}:wait`) : ctx.redis.zcard(RRQ_QUEUE);

async function depthScaling(ctx: BenchContext): Promise<void> {
  const depths = ctx.quick ? [100, 1000, 5000] : [1000, 100_000, 1_000_000];
  const window = ctx.quick ? 500 : 20_000;
  const contenders = [OURS_BEST, BULLMQ_INPROCESS, RRQ_NODE];
  const byDepth = new Map<number, Case>();
  for (const depth of depths) {
    await ctx.redis.flushall();
    const c = ctx.addCase(
      new Case(
        `scaling/depth-${depth}`,
        `throughput with ${depth} jobs pending (drain ${window} jobs from ${depth + window} to ${depth})`,
        "jobs/s",
        true,
        BASELINES,
        { depth, window },
      ),
    );
    byDepth.set(depth, c);
    ctx.log(`scaling: depth ${depth}`);
    await rounds(ctx, contenders, async (spec, rep) => {
      const current = await depthOf(ctx, spec);
      if (current < depth + window) {
        await fill(ctx.redisUrl, spec.system, depth + window - current, { keepIds: false });
      }
      const start = await depthOf(ctx, spec);
      let consumer: RunningConsumer | undefined;
      try {
        const starting = startConsumer(
          spec,
          {
            redisUrl: ctx.redisUrl,
            workDir: ctx.workDir,
            portBase: ctx.nextPortBase(),
            rustProfile: ctx.rustProfile,
            waitReady: false,
          },
          ctx.redis,
        );
        consumer = await starting;
        const w = await watchDrain(ctx.redis, spec.system, {
          from: start,
          to: start - window,
          timeoutMs: 120_000,
          workerIds: () => [],
        });
        const rate = window / ((w.endMs - w.startMs) / 1000);
        ctx.log(`    ${Math.round(rate)} jobs/s`);
        if (rep >= 0) c.record(spec, rep, rate);
      } catch (error) {
        const message = (error as Error).message;
        ctx.log(`    FAILED: ${message}`);
        if (rep >= 0) c.fail(spec, rep, message.split("\n")[0]!);
      } finally {
        await consumer?.stop();
      }
    });
  }
  // Throughput at the deepest queue over throughput at the shallowest, per repetition.
  const deep = byDepth.get(depths[depths.length - 1]!)!;
  const shallow = byDepth.get(depths[0]!)!;
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
