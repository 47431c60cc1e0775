/**
 * Flow control's price on the hot path (issue 22): the burn-down of N no-op jobs without any
 * flow option (`flow/keyless`), the same with each job given one of 10,000 concurrency keys at
 * cap 1 (`flow/keys-10k`: every claim takes a slot, every completion frees it), and their
 * ratio per repetition (`flow/keys-ratio`, target ≥ 0.7). With `BENCH_BASELINE_REV=<git rev>`
 * the keyless burn-down of that revision runs in the same rounds (`flow/keyless-vs-baseline`:
 * this checkout ÷ that revision), built once into /tmp from `git archive`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { burnDown } from "../lib/burn.js";
import {
  burnCases,
  burnLine,
  jobsPerSecondCase,
  ratioCase,
  recordBurnDown,
} from "../lib/burn-record.js";
import { rounds, type BenchContext } from "../lib/context.js";
import type { ConsumerSpec } from "../lib/consumers.js";
import { paths } from "../lib/paths.js";
import { OURS_BEST } from "../lib/specs.js";

/** Distinct concurrency keys of the keyed burn-down. */
export const FLOW_KEYS = 10_000;

/** One measured variant: a build and whether its jobs carry concurrency keys. */
interface Variant {
  id: string;
  label: string;
  system: "rrqkit";
  spec: ConsumerSpec;
  keyed: boolean;
}

/**
 * Builds `rev` into /tmp/rrq-bench-baseline-<sha> (git archive, node_modules symlinked from this
 * checkout, `tsc -b`), once per sha; returns its bin/rrq.js, or undefined with a warning.
 */
function baselineCli(ctx: BenchContext, rev: string): string | undefined {
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", paths.root, ...args], { encoding: "utf8" }).trim();
  let sha: string;
  try {
    sha = git("rev-parse", "--verify", `${rev}^{commit}`);
  } catch {
    ctx.log(`WARNING: BENCH_BASELINE_REV=${rev} is not a commit of this repository; skipped`);
    return undefined;
  }
  const dir = join("/tmp", `rrq-bench-baseline-${sha.slice(0, 12)}`);
  const cli = join(dir, "bin", "rrq.js");
  if (existsSync(join(dir, "dist", "src", "cli", "main.js"))) return cli;
  ctx.log(`building the baseline ${rev} (${sha.slice(0, 12)}) in ${dir}`);
  mkdirSync(dir, { recursive: true });
  const archive = spawnSync("sh", [
    "-c",
    `git -C "$1" archive "$2" | tar -x -C "$3"`,
    "sh",
    paths.root,
    sha,
    dir,
  ]);
  if (archive.status !== 0) {
    ctx.log(`WARNING: git archive of ${rev} failed: ${archive.stderr.toString()}`);
    return undefined;
  }
  if (!existsSync(join(dir, "node_modules")))
    symlinkSync(join(paths.root, "node_modules"), join(dir, "node_modules"));
  const build = spawnSync(
    process.execPath,
    [
      join(paths.root, "node_modules", "typescript", "bin", "tsc"),
      "-b",
      "runners/node",
      "tsconfig.json",
    ],
    { cwd: dir, encoding: "utf8" },
  );
  if (build.status !== 0 || !existsSync(join(dir, "dist", "src", "cli", "main.js"))) {
    ctx.log(`WARNING: building ${rev} failed; skipped:\n${build.stdout}${build.stderr}`);
    return undefined;
  }
  return cli;
}

export async function runFlow(ctx: BenchContext): Promise<void> {
  const params = { jobs: ctx.jobs, reps: ctx.reps, keys: FLOW_KEYS, cap: 1 };
  const variants: Variant[] = [
    {
      id: OURS_BEST.id,
      label: `${OURS_BEST.label}, keyless`,
      system: "rrqkit",
      spec: OURS_BEST,
      keyed: false,
    },
    {
      id: `${OURS_BEST.id}+keys`,
      label: `${OURS_BEST.label}, ${FLOW_KEYS} keys at cap 1`,
      system: "rrqkit",
      spec: OURS_BEST,
      keyed: true,
    },
  ];
  const rev = process.env.BENCH_BASELINE_REV;
  const cli = rev ? baselineCli(ctx, rev) : undefined;
  if (rev && cli)
    variants.push({
      id: `rrqkit-baseline-${rev}`,
      label: `${OURS_BEST.label}, keyless, at ${rev}`,
      system: "rrqkit",
      spec: { ...OURS_BEST, id: `rrqkit-baseline-${rev}`, cli },
      keyed: false,
    });
  const keyless = jobsPerSecondCase(
    ctx,
    "flow/keyless",
    `drain ${ctx.jobs} no-op jobs without flow options`,
    params,
  );
  const keyed = jobsPerSecondCase(
    ctx,
    "flow/keys-10k",
    `drain ${ctx.jobs} no-op jobs over ${FLOW_KEYS} concurrency keys at cap 1`,
    params,
  );
  // Per-job costs of the same runs (bench/lib/burn-record.ts)
  const cases = burnCases(
    ctx,
    [
      ["mainCpuPer10k", "flow/orchestrator-cpu", "orchestrator CPU seconds per 10,000 jobs", "s"],
      [
        "redisCommandsPerJob",
        "flow/redis-commands",
        "Redis commands per job (incl. inside Lua)",
        "cmds",
      ],
      ["redisCpuMsPer10k", "flow/redis-cpu", "Redis server CPU milliseconds per 10,000 jobs", "ms"],
    ],
    variants,
    params,
  );
  await rounds(ctx, variants, (variant, rep) =>
    recordBurnDown(ctx, variant, rep, variant.keyed ? keyed : keyless, cases, async () => {
      const result = await burnDown(
        ctx,
        variant.spec,
        rep < 0 ? Math.ceil(ctx.jobs / 5) : ctx.jobs,
        {
          enqueueOptions: variant.keyed
            ? (i) => ({ concurrencyKey: `k${i % FLOW_KEYS}`, concurrencyLimit: 1 })
            : undefined,
        },
      );
      ctx.log(burnLine(result));
      return result;
    }),
  );
  const ratio = (id: string, title: string, a: string, b: string, note: string) =>
    ratioCase(ctx, cases, { id, title, a, b, note, contender: OURS_BEST, params });
  ratio(
    "flow/keys-ratio",
    `keyed ÷ keyless burn-down, per repetition`,
    variants[1]!.id,
    variants[0]!.id,
    "target ≥ 0.7 (issue 22)",
  );
  if (rev && cli)
    ratio(
      "flow/keyless-vs-baseline",
      `keyless burn-down, this checkout ÷ ${rev}, per repetition`,
      variants[0]!.id,
      variants[2]!.id,
      "1.0 = no change on the hot path; each repetition measures both back to back",
    );
}
