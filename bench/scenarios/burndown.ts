/**
 * Scenario 1, burn-down throughput: N no-op jobs pre-enqueued, time to drain them (first claim
 * to last completion). Also yields the cost figures of scenario 4 (CPU, RSS, Redis commands
 * and Redis CPU per job), measured over the same window.
 */
import { burnDown, type BurnDown } from "../lib/burn.js";
import { rounds, type BenchContext } from "../lib/context.js";
import type { ConsumerSpec } from "../lib/consumers.js";
import { Case } from "../lib/report.js";
import { BASELINES } from "../lib/specs.js";

/** The cost cases filled from burn-down runs. */
export const COST_FIELDS: Array<{
  key: keyof BurnDown;
  id: string;
  title: string;
  unit: string;
}> = [
  {
    key: "mainCpuPer10k",
    id: "cost/orchestrator-cpu",
    title: "orchestrator CPU seconds per 10,000 jobs",
    unit: "s",
  },
  {
    key: "childCpuPer10k",
    id: "cost/runner-cpu",
    title: "runner processes' CPU seconds per 10,000 jobs",
    unit: "s",
  },
  {
    key: "mainPeakRssMb",
    id: "cost/orchestrator-rss",
    title: "orchestrator peak RSS during the burn-down",
    unit: "MB",
  },
  {
    key: "childPeakRssMb",
    id: "cost/runner-rss",
    title: "runner processes' peak RSS (sum) during the burn-down",
    unit: "MB",
  },
  {
    key: "redisCommandsPerJob",
    id: "cost/redis-commands",
    title: "Redis commands per job (INFO commandstats delta, incl. inside Lua)",
    unit: "cmds",
  },
  {
    key: "redisScriptsPerJob",
    id: "cost/redis-scripts",
    title: "Redis script calls (EVALSHA) per job",
    unit: "calls",
  },
  {
    key: "redisCpuMsPer10k",
    id: "cost/redis-cpu",
    title: "Redis server CPU milliseconds per 10,000 jobs",
    unit: "ms",
  },
];

export async function runBurnDown(
  ctx: BenchContext,
  contenders: readonly ConsumerSpec[],
  options: { throughputCase: boolean },
): Promise<void> {
  const params = { jobs: ctx.jobs, reps: ctx.reps };
  const throughput = options.throughputCase
    ? ctx.addCase(
        new Case(
          "burndown",
          `drain ${ctx.jobs} pre-enqueued no-op jobs`,
          "jobs/s",
          true,
          BASELINES,
          params,
        ),
      )
    : undefined;
  const costs = COST_FIELDS.map((f) =>
    ctx.addCase(new Case(f.id, f.title, f.unit, false, BASELINES, params)),
  );
  const commandMix = new Map<string, Record<string, number>>();
  await rounds(ctx, contenders, async (spec, rep) => {
    let result: BurnDown;
    try {
      result = await burnDown(ctx, spec, rep < 0 ? Math.ceil(ctx.jobs / 5) : ctx.jobs);
    } catch (error) {
      const message = (error as Error).message;
      ctx.log(`    FAILED: ${message}`);
      if (rep >= 0) {
        throughput?.fail(spec, rep, message.split("\n")[0]!);
        for (const c of costs) c.fail(spec, rep, "burn-down failed");
      }
      return;
    }
    ctx.log(
      `    ${Math.round(result.jobsPerSecond)} jobs/s, ${result.seconds.toFixed(2)} s; ${result.detail}`,
    );
    if (rep < 0) return;
    throughput?.record(
      spec,
      rep,
      result.jobsPerSecond,
      { seconds: result.seconds },
      result.accounted,
    );
    COST_FIELDS.forEach((f, i) =>
      costs[i]!.record(spec, rep, result[f.key] as number, {}, result.accounted),
    );
    commandMix.set(spec.id, result.byCommand);
  });
  const mix = costs[COST_FIELDS.findIndex((f) => f.key === "redisCommandsPerJob")]!;
  for (const [id, byCommand] of commandMix) {
    const perJob = Object.entries(byCommand)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([name, n]) => `${name} ${(n / ctx.jobs).toFixed(2)}`)
      .join(", ");
    mix.notes.push(`${id}: ${perJob}`);
  }
}
