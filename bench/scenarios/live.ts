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
import { rounds, type BenchContext } from "../lib/context.js";
import type { ConsumerSpec } from "../lib/consumers.js";
import { paths } from "../lib/paths.js";
import { Case } from "../lib/report.js";
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

/** Per-repetition quotient a ÷ b of two series (NaN where either failed). */
const quotients = (a: number[], b: number[]) => a.map((v, i) => v / (b[i] ?? NaN));

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
] as const satisfies ReadonlyArray<readonly [keyof BurnDown, string, string, string]>;

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
  const plain = ctx.addCase(
    new Case(
      "live/plain",
      `drain ${ctx.jobs} no-op jobs that report nothing`,
      "jobs/s",
      true,
      {},
      params,
    ),
  );
  const live = ctx.addCase(
    new Case(
      "live/progress-output",
      `drain ${ctx.jobs} jobs reporting 1 progress update and ${LIVE_CHUNKS} output chunks each`,
      "jobs/s",
      true,
      {},
      params,
    ),
  );
  // Per-job costs: steadier than jobs/s on a shared machine (see flow.ts).
  const costs = COSTS.map(([key, id, title, unit]) => ({
    key,
    c: ctx.addCase(new Case(id, title, unit, false, {}, params)),
  }));
  const values = new Map<string, number[]>(variants.map((v) => [v.id, []]));
  await rounds(ctx, variants, async (variant, rep) => {
    const target = variant.functionName === "echo" ? plain : live;
    try {
      const jobs = rep < 0 ? Math.ceil(ctx.jobs / 5) : ctx.jobs;
      const result = await burnDown(ctx, variant.spec, jobs, {
        functionName: variant.functionName,
      });
      const missing =
        variant.functionName === "live_echo"
          ? await checkLiveTraces(ctx.redis, result.jobIds)
          : undefined;
      ctx.log(
        `    ${Math.round(result.jobsPerSecond)} jobs/s, ${result.seconds.toFixed(2)} s; ${result.detail}${missing ? `; ${missing}` : ""}`,
      );
      ctx.log(`    commands per job: ${commandsPerJob(result, jobs)}`);
      if (rep < 0) return;
      if (missing) throw new Error(missing);
      target.record(
        variant,
        rep,
        result.jobsPerSecond,
        { seconds: result.seconds },
        result.accounted,
      );
      values.get(variant.id)![rep] = result.jobsPerSecond;
      for (const { key, c } of costs) c.record(variant, rep, result[key], {}, result.accounted);
    } catch (error) {
      const message = (error as Error).message;
      ctx.log(`    FAILED: ${message}`);
      if (rep >= 0) {
        target.fail(variant, rep, message.split("\n")[0]!);
        for (const { c } of costs) c.fail(variant, rep, "burn-down failed");
      }
    }
  });
  const ratio = ctx.addCase(
    new Case("live/ratio", "live ÷ plain burn-down, per repetition", "×", true, {}, params),
  );
  quotients(values.get(variants[1]!.id) ?? [], values.get(variants[0]!.id) ?? []).forEach(
    (v, rep) => (Number.isFinite(v) ? ratio.record(OURS_BEST, rep, v) : undefined),
  );
  ratio.notes.push("each repetition measures both back to back; 1.0 = live output is free");
}
