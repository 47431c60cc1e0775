/**
 * Live jobs' price (issue 23, README "Live jobs"): the burn-down of N no-op jobs that report
 * nothing (`live/plain`, `echo`) and of N jobs whose handler reports one progress update and
 * writes 10 output chunks (`live/progress-output`, `live_echo` of bench/node/live-runner.mjs),
 * both on rrqkit's headline settings with the same runner program, and their ratio per
 * repetition (`live/ratio`), with the per-job costs of the same runs. After every live
 * burn-down each job must have its progress in its hash and its output stream closed as
 * completed (`--quick` checks exactly that).
 */
import type { Redis } from "ioredis";
import { burnDown, type BurnDown } from "../lib/burn.js";
import {
  burnCases,
  burnLine,
  jobsPerSecondCase,
  ratioCase,
  recordBurnDown,
  type CostDef,
} from "../lib/burn-record.js";
import { rounds, type BenchContext } from "../lib/context.js";
import type { ConsumerSpec } from "../lib/consumers.js";
import { paths } from "../lib/paths.js";
import { OURS_BEST } from "../lib/specs.js";

/** Output chunks each live job writes (live_echo's default). */
export const LIVE_CHUNKS = 10;

/** One measured variant: the handler its jobs run. */
interface Variant {
  id: string;
  label: string;
  system: "rrqkit";
  spec: ConsumerSpec;
  functionName: "echo" | "live_echo";
}

/** OURS_BEST with the bench's live runner (the conformance handlers plus live_echo). */
const LIVE_RUNNER_SPEC: ConsumerSpec = {
  ...OURS_BEST,
  runner: { ...OURS_BEST.runner!, program: paths.liveRunner },
};

/**
 * Checks that every live job left its trace: progress fields in its hash and an output stream
 * for its first attempt whose last entry closes it as completed. Run after the measured window
 * (its commands are not counted). Returns a failure summary, or undefined when all are there.
 */
async function checkLiveTraces(redis: Redis, ids: readonly string[]): Promise<string | undefined> {
  let noProgress = 0;
  let notClosed = 0;
  let example: string | undefined;
  for (let i = 0; i < ids.length; i += 2000) {
    const batch = ids.slice(i, i + 2000);
    const pipeline = redis.pipeline();
    for (const id of batch) {
      pipeline.hget(`rrq:job:${id}`, "progress_at");
      pipeline.xrevrange(`rrq:output:${id}:1`, "+", "-", "COUNT", 1);
    }
    const replies = (await pipeline.exec()) ?? [];
    batch.forEach((id, j) => {
      const [progressError, progressAt] = replies[2 * j] ?? [];
      const [streamError, last] = replies[2 * j + 1] ?? [];
      const flat = (last as Array<[string, string[]]> | undefined)?.[0]?.[1] ?? [];
      const fields = new Map<string, string>();
      for (let k = 0; k + 1 < flat.length; k += 2) fields.set(flat[k]!, flat[k + 1]!);
      const closed = fields.get("k") === "closed" && fields.get("status") === "completed";
      if (progressError || !progressAt) noProgress++;
      if (streamError || !closed) notClosed++;
      if ((progressError || !progressAt || streamError || !closed) && !example) example = id;
    });
  }
  if (!noProgress && !notClosed) return undefined;
  return `live traces missing: ${noProgress} jobs without progress, ${notClosed} without a closed output stream (e.g. ${example})`;
}

/** The most frequent Redis commands of a burn-down, per job ("evalsha 2.00, xadd 1.00, …"). */
function commandsPerJob(result: BurnDown, jobs: number): string {
  return Object.entries(result.byCommand)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([name, n]) => `${name} ${(n / jobs).toFixed(2)}`)
    .join(", ");
}

/** The per-job cost cases, as flow's (`cost/*` of the same runs). */
const COSTS = [
  ["mainCpuPer10k", "live/orchestrator-cpu", "orchestrator CPU seconds per 10,000 jobs", "s"],
  ["childCpuPer10k", "live/runner-cpu", "runner CPU seconds per 10,000 jobs", "s"],
  [
    "redisCommandsPerJob",
    "live/redis-commands",
    "Redis commands per job (incl. inside Lua)",
    "cmds",
  ],
  ["redisCpuMsPer10k", "live/redis-cpu", "Redis server CPU milliseconds per 10,000 jobs", "ms"],
] as const satisfies readonly CostDef[];

export async function runLive(ctx: BenchContext): Promise<void> {
  const params = { jobs: ctx.jobs, reps: ctx.reps, progress_updates: 1, chunks: LIVE_CHUNKS };
  const variants: Variant[] = [
    {
      id: OURS_BEST.id,
      label: `${OURS_BEST.label}, echo`,
      system: "rrqkit",
      spec: LIVE_RUNNER_SPEC,
      functionName: "echo",
    },
    {
      id: `${OURS_BEST.id}+live`,
      label: `${OURS_BEST.label}, 1 progress + ${LIVE_CHUNKS} output chunks`,
      system: "rrqkit",
      spec: LIVE_RUNNER_SPEC,
      functionName: "live_echo",
    },
  ];
  const plain = jobsPerSecondCase(
    ctx,
    "live/plain",
    `drain ${ctx.jobs} no-op jobs that report nothing`,
    params,
  );
  const live = jobsPerSecondCase(
    ctx,
    "live/progress-output",
    `drain ${ctx.jobs} jobs reporting 1 progress update and ${LIVE_CHUNKS} output chunks each`,
    params,
  );
  // Per-job costs of the same runs, as flow's (bench/lib/burn-record.ts)
  const cases = burnCases(ctx, COSTS, variants, params);
  await rounds(ctx, variants, (variant, rep) =>
    recordBurnDown(
      ctx,
      variant,
      rep,
      variant.functionName === "echo" ? plain : live,
      cases,
      async () => {
        const jobs = rep < 0 ? Math.ceil(ctx.jobs / 5) : ctx.jobs;
        const result = await burnDown(ctx, variant.spec, jobs, {
          functionName: variant.functionName,
        });
        const missing =
          variant.functionName === "live_echo"
            ? await checkLiveTraces(ctx.redis, result.jobIds)
            : undefined;
        ctx.log(burnLine(result, missing));
        ctx.log(`    commands per job: ${commandsPerJob(result, jobs)}`);
        if (missing && rep >= 0) throw new Error(missing);
        return result;
      },
    ),
  );
  ratioCase(ctx, cases, {
    id: "live/ratio",
    title: "live ÷ plain burn-down, per repetition",
    a: variants[1]!.id,
    b: variants[0]!.id,
    note: "each repetition measures both back to back; 1.0 = live output is free",
    contender: OURS_BEST,
    params,
  });
}
