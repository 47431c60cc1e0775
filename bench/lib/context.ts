/** What every scenario gets from the runner (bench/run.ts). */
import type { Redis } from "ioredis";
import type { StartOptions } from "./consumers.js";
import { Case, type ContenderInfo } from "./report.js";

export interface BenchContext {
  quick: boolean;
  /** Measured repetitions (a warm-up round runs first and is discarded). */
  reps: number;
  /** Burn-down size. */
  jobs: number;
  redisUrl: string;
  redis: Redis;
  workDir: string;
  rustProfile: "release" | "debug";
  /** Prints a progress line. */
  log(message: string): void;
  /** Registers a result case (printed and written to JSON at the end). */
  addCase(c: Case): Case;
  /** False for contenders left out by `--contenders GLOB`. */
  includes(contenderId: string): boolean;
  /** A fresh TCP port range for one consumer start. */
  nextPortBase(): number;
}

/**
 * The consumer start options every scenario shares: the scenario's Redis (or `redisUrl`), the
 * scratch directory, a fresh TCP port range and the Rust build profile.
 */
export function startOptions(
  ctx: BenchContext,
  redisUrl: string = ctx.redisUrl,
): Pick<StartOptions, "redisUrl" | "workDir" | "portBase" | "rustProfile"> {
  return {
    redisUrl,
    workDir: ctx.workDir,
    portBase: ctx.nextPortBase(),
    rustProfile: ctx.rustProfile,
  };
}

/**
 * Runs `rounds` rounds (the first is the warm-up, reported as rep -1) of `fn` over
 * `contenders`, back to back, rotating the starting contender each round so no contender is
 * always first after a flush. `--quick` checks correctness only, so it skips the warm-up.
 */
export async function rounds<T extends ContenderInfo>(
  ctx: BenchContext,
  contenders: readonly T[],
  fn: (contender: T, rep: number) => Promise<void>,
): Promise<void> {
  contenders = contenders.filter((c) => ctx.includes(c.id));
  for (let round = ctx.quick ? 1 : 0; round <= ctx.reps; round++) {
    const rep = round - 1;
    for (let i = 0; i < contenders.length; i++) {
      // Rotation by round − 1: the first measured round runs in the listed order.
      const contender = contenders[(i + round + contenders.length - 1) % contenders.length]!;
      ctx.log(`  ${rep < 0 ? "warm-up" : `rep ${rep + 1}/${ctx.reps}`}: ${contender.label}`);
      await fn(contender, rep);
    }
  }
}
