/**
 * One timed enqueue run of any enqueue race (bench/scenarios/enqueue.ts, rust-race.ts,
 * bench/lib/python-peers-enqueue.ts): a producer program enqueues `jobs` jobs and prints
 * `{"elapsed_ms": T}`; the rate is recorded for measured repetitions, and only counts as
 * accounted for when exactly `jobs` jobs are queued afterwards.
 */
import type { BenchContext } from "./context.js";
import { runJson } from "./procs.js";
import type { Case, ContenderInfo } from "./report.js";
import type { SpawnOptions } from "node:child_process";

export interface EnqueueRun {
  /** The producer program and its arguments. */
  command: [string, string[]];
  spawn?: SpawnOptions;
  /** How many jobs are queued once it ended. */
  queued: () => Promise<number>;
  /** Extra figures recorded with the rate. */
  extra?: Record<string, number>;
}

/** Runs one enqueue of `jobs` jobs by `contender` and records it in `c` (rep < 0: warm-up). */
export async function timedEnqueue(
  ctx: BenchContext,
  c: Case,
  contender: ContenderInfo,
  rep: number,
  jobs: number,
  run: EnqueueRun,
): Promise<void> {
  try {
    const [command, args] = run.command;
    const out = await runJson<{ elapsed_ms: number }>(command, args, run.spawn);
    const queued = await run.queued();
    const rate = jobs / (out.elapsed_ms / 1000);
    ctx.log(`    ${Math.round(rate)} jobs/s (${queued}/${jobs} queued)`);
    if (rep >= 0) c.record(contender, rep, rate, run.extra ?? {}, queued === jobs);
  } catch (error) {
    const message = (error as Error).message;
    ctx.log(`    FAILED: ${message}`);
    if (rep >= 0) c.fail(contender, rep, message.split("\n")[0]!);
  }
}
