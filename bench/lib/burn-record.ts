/**
 * Recording burn-downs into a scenario's cases: jobs/s into the variant's case, each per-job
 * cost into a case of its own (steadier than jobs/s on a shared machine: CPU time does not
 * count waiting for a core; command counts do not move with load at all), jobs/s by
 * repetition kept for ratios. Shared by the scenarios that compare burn-down variants.
 */
import type { BurnDown } from "./burn.js";
import type { BenchContext } from "./context.js";
import { Case, type ContenderInfo } from "./report.js";

/** The BurnDown figures that can be a per-job cost. */
export type CostKey = {
  [K in keyof BurnDown]: BurnDown[K] extends number ? K : never;
}[keyof BurnDown];

/** A cost case: the BurnDown figure it records, then its case id, title and unit. */
export type CostDef = readonly [key: CostKey, id: string, title: string, unit: string];

/** Where the repetitions of a scenario's burn-downs go. */
export interface BurnCases {
  costs: ReadonlyArray<{ key: CostKey; c: Case }>;
  /** jobs/s of each variant (by id) per repetition. */
  values: Map<string, number[]>;
}

/** Adds a jobs/s case (higher is better, no baselines) for burn-downs of one kind. */
export function jobsPerSecondCase(
  ctx: BenchContext,
  id: string,
  title: string,
  params: Record<string, unknown>,
): Case {
  return ctx.addCase(new Case(id, title, "jobs/s", true, {}, params));
}

/** Adds a cost case (lower is better) for each of `defs`, and a jobs/s list for each variant. */
export function burnCases(
  ctx: BenchContext,
  defs: readonly CostDef[],
  variants: readonly ContenderInfo[],
  params: Record<string, unknown>,
): BurnCases {
  return {
    costs: defs.map(([key, id, title, unit]) => ({
      key,
      c: ctx.addCase(new Case(id, title, unit, false, {}, params)),
    })),
    values: new Map(variants.map((v) => [v.id, []])),
  };
}

/**
 * Runs `measure` (a burn-down, logged as it likes) for repetition `rep` of `variant` and
 * records it into `target` and `cases`; rep < 0 is the warm-up, run but not recorded. A failure
 * is logged and marks the repetition failed in `target` and every cost case.
 */
export async function recordBurnDown(
  ctx: BenchContext,
  variant: ContenderInfo,
  rep: number,
  target: Case,
  cases: BurnCases,
  measure: () => Promise<BurnDown>,
): Promise<void> {
  try {
    const result = await measure();
    if (rep < 0) return;
    target.record(
      variant,
      rep,
      result.jobsPerSecond,
      { seconds: result.seconds },
      result.accounted,
    );
    cases.values.get(variant.id)![rep] = result.jobsPerSecond;
    for (const { key, c } of cases.costs) c.record(variant, rep, result[key], {}, result.accounted);
  } catch (error) {
    const message = (error as Error).message;
    ctx.log(`    FAILED: ${message}`);
    if (rep >= 0) {
      target.fail(variant, rep, message.split("\n")[0]!);
      for (const { c } of cases.costs) c.fail(variant, rep, "burn-down failed");
    }
  }
}

/** The log line of a burn-down: jobs/s, seconds and its detail, then `more` if any. */
export function burnLine(result: BurnDown, more?: string): string {
  const line = `    ${Math.round(result.jobsPerSecond)} jobs/s, ${result.seconds.toFixed(2)} s; ${result.detail}`;
  return more ? `${line}; ${more}` : line;
}

/** Per-repetition quotient a ÷ b of two series (NaN where either failed). */
export const quotients = (a: number[], b: number[]) => a.map((v, i) => v / (b[i] ?? NaN));

/** A ratio case: jobs/s of variant `a` ÷ that of variant `b`, per repetition. */
export interface RatioDef {
  id: string;
  title: string;
  a: string;
  b: string;
  note: string;
  /** Who the ratio is recorded for. */
  contender: ContenderInfo;
  params: Record<string, unknown>;
}

/** Adds the ratio case `def` (×, higher is better) from the jobs/s in `cases`. */
export function ratioCase(ctx: BenchContext, cases: BurnCases, def: RatioDef): Case {
  const c = ctx.addCase(new Case(def.id, def.title, "×", true, {}, def.params));
  const q = quotients(cases.values.get(def.a) ?? [], cases.values.get(def.b) ?? []);
  q.forEach((v, rep) => (Number.isFinite(v) ? c.record(def.contender, rep, v) : undefined));
  c.notes.push(def.note);
  return c;
}
