/**
 * Scenario 4, cost:
 * - CPU seconds and peak RSS per 10,000 jobs, Redis commands and Redis CPU per job: from the
 *   burn-down runs (scenario 1; run here for the key contenders when `burndown` is not
 *   selected);
 * - orchestrator peak RSS with 1,000 jobs in flight (`sleep` jobs, 16 runner processes × 64 in
 *   flight for rrqkit and RRQ; BullMQ concurrency 1,000);
 * - Redis memory per pending job (1M no-op jobs pending; used_memory delta / jobs).
 */
import { rounds, startOptions, type BenchContext } from "../lib/context.js";
import { startConsumer, type ConsumerSpec, type RunningConsumer } from "../lib/consumers.js";
import { accountFor, fill, watchDrain } from "../lib/jobs.js";
import { CostMeter } from "../lib/procs.js";
import { readCounters, resetServer } from "../lib/redis.js";
import { Case } from "../lib/report.js";
import {
  BULLMQ_INPROCESS,
  BULLMQ_SANDBOXED,
  OURS_BEST,
  OURS_RUST,
  RRQ_NODE,
} from "../lib/specs.js";
import { runBurnDown } from "./burndown.js";

async function inFlightRss(ctx: BenchContext): Promise<void> {
  const processes = ctx.quick ? 2 : 16;
  const perProcess = ctx.quick ? 50 : 64;
  const concurrency = processes * perProcess;
  const jobs = concurrency * 3;
  const sleepMs = ctx.quick ? 300 : 2000;
  const wide = (spec: ConsumerSpec): ConsumerSpec =>
    spec.system === "bullmq"
      ? { ...spec, id: `${spec.id}-c${concurrency}`, bullmq: { mode: "inprocess", concurrency } }
      : {
          ...spec,
          id: `${spec.id}-${processes}x${perProcess}`,
          runner: { ...spec.runner!, poolSize: processes, maxInFlight: perProcess },
        };
  const contenders = [OURS_BEST, BULLMQ_INPROCESS, RRQ_NODE].map(wide);
  const baselines = { bullmq: contenders[1]!.id, rrq: contenders[2]!.id };
  const params = { jobs, concurrency, sleep_ms: sleepMs };
  const rss = ctx.addCase(
    new Case(
      "cost/rss-in-flight",
      `orchestrator peak RSS with ${concurrency} jobs in flight (${sleepMs} ms sleep jobs)`,
      "MB",
      false,
      baselines,
      params,
    ),
  );
  const seen = ctx.addCase(
    new Case(
      "cost/rss-in-flight-max",
      "most jobs seen in flight at once",
      "jobs",
      true,
      baselines,
      params,
    ),
  );
  await rounds(ctx, contenders, async (spec, rep) => {
    await resetServer(ctx.redis);
    const filled = await fill(ctx.redisUrl, spec.system, jobs, {
      name: "sleep",
      params: () => ({ ms: sleepMs }),
    });
    const roots: number[] = [];
    const meter = new CostMeter(roots, 50);
    meter.startSampling();
    let consumer: RunningConsumer | undefined;
    try {
      consumer = await startConsumer(
        spec,
        { ...startOptions(ctx), onSpawn: (pid) => roots.push(pid) },
        ctx.redis,
      );
      const ids = consumer.workerIds;
      const window = await watchDrain(ctx.redis, spec.system, {
        from: jobs + 1,
        to: 0,
        timeoutMs: 120_000,
        workerIds: () => ids,
      });
      const cost = meter.end();
      const accounting = await accountFor(ctx.redis, filled);
      ctx.log(
        `    orchestrator peak RSS ${cost.mainPeakRssMb.toFixed(1)} MB, runners ${cost.childPeakRssMb.toFixed(0)} MB, max in flight ${window.maxInFlight}; ${accounting.detail}`,
      );
      if (rep < 0) return;
      rss.record(spec, rep, cost.mainPeakRssMb, { runners_mb: cost.childPeakRssMb }, accounting.ok);
      seen.record(spec, rep, window.maxInFlight, {}, accounting.ok);
    } catch (error) {
      meter.end();
      const message = (error as Error).message;
      ctx.log(`    FAILED: ${message}`);
      if (rep >= 0) {
        rss.fail(spec, rep, message.split("\n")[0]!);
        seen.fail(spec, rep, "failed");
      }
    } finally {
      await consumer?.stop();
    }
  });
}

async function memoryPerPendingJob(ctx: BenchContext): Promise<void> {
  const jobs = ctx.quick ? 10_000 : 1_000_000;
  const c = ctx.addCase(
    new Case(
      "cost/redis-bytes-per-pending-job",
      `Redis used_memory per pending no-op job (${jobs} pending)`,
      "bytes",
      false,
      { bullmq: "bullmq" },
      { jobs },
    ),
  );
  c.notes.push(
    "RRQ's producer writes the same job hash and queue entry as rrqkit's, so RRQ's figure is rrqkit's.",
  );
  const producers = [
    { id: "rrqkit", label: "rrqkit (job hash + queue ZSET entry)", system: "rrqkit" as const },
    { id: "bullmq", label: "BullMQ (job hash + wait list entry)", system: "bullmq" as const },
  ];
  for (const p of producers) {
    await resetServer(ctx.redis);
    const before = await readCounters(ctx.redis);
    ctx.log(`  filling ${jobs} jobs: ${p.label}`);
    await fill(ctx.redisUrl, p.system, jobs, { keepIds: false });
    const after = await readCounters(ctx.redis);
    const queued =
      p.system === "bullmq"
        ? await ctx.redis.llen("bull:bench:wait")
        : await ctx.redis.zcard("rrq:queue:default");
    const perJob = (after.usedMemory - before.usedMemory) / jobs;
    ctx.log(`    ${perJob.toFixed(0)} bytes per pending job (${queued} queued)`);
    c.record(p, 0, perJob, {}, queued === jobs);
  }
  await resetServer(ctx.redis);
}

export async function runCost(
  ctx: BenchContext,
  options: { burnDownRan: boolean; available: (s: ConsumerSpec) => boolean },
): Promise<void> {
  if (!options.burnDownRan) {
    ctx.log("cost: burn-downs of the key contenders (CPU, RSS, Redis commands)");
    const key = [OURS_BEST, OURS_RUST, BULLMQ_INPROCESS, BULLMQ_SANDBOXED, RRQ_NODE];
    await runBurnDown(ctx, key.filter(options.available), { throughputCase: false });
  }
  ctx.log("cost: orchestrator RSS with many jobs in flight");
  await inFlightRss(ctx);
  ctx.log("cost: Redis memory per pending job");
  await memoryPerPendingJob(ctx);
}
