import { parseTimestampMicros } from "../store/encoding.js";
import type { CheckContext } from "./e2e-checks.js";
import type { Failure } from "./runner-script.js";

type Step = Record<string, unknown>;

/** When one job's last attempt ran, from its hash: claim (`start_time`) to `completion_time`. */
interface RunTime {
  name: string;
  /** Epoch microseconds. */
  start: number;
  end: number;
}

/**
 * The aliases a list of names stands for, in enqueue order: `x#*` is every job of a `count`
 * step (`x#0`, `x#1`, …), anything else one alias.
 */
function expand(patterns: unknown, ctx: CheckContext, caseId: string): string[] {
  const list = Array.isArray(patterns) ? patterns : [patterns];
  return list.flatMap((p) => {
    const name = String(p);
    const names = name.endsWith("#*")
      ? [...ctx.jobs.keys()].filter((k) => k.startsWith(name.slice(0, -1)))
      : [name];
    if (!names.length || names.some((n) => !ctx.jobs.has(n)))
      throw new Error(`${caseId} names job '${name}', which it never enqueued`);
    return names;
  });
}

/**
 * Waits for each job to finish and reads when its last attempt ran. The orchestrator writes
 * `start_time` when it claims a job and `completion_time` when the attempt's outcome is
 * stored, both before a flow-control slot is freed, so these intervals lie inside the slots.
 */
async function runTimes(
  names: string[],
  ctx: CheckContext,
): Promise<{ times: RunTime[]; failures: Failure[] }> {
  const times: RunTime[] = [];
  const failures: Failure[] = [];
  for (const name of names) {
    const id = ctx.jobs.get(name)!.id;
    const done = await ctx.waitDone(id);
    if (typeof done === "string") {
      failures.push({ rule: "the job finishes", message: `job ${name}: ${done}` });
      continue;
    }
    const [started, completed] = await ctx.redis.hmget(
      `rrq:job:${id}`,
      "start_time",
      "completion_time",
    );
    const start = parseTimestampMicros(started ?? "");
    const end = parseTimestampMicros(completed ?? "");
    if (start === undefined || end === undefined)
      failures.push({
        rule: "the job hash has start_time and completion_time",
        message: `job ${name}: start_time ${String(started)}, completion_time ${String(completed)}`,
      });
    else times.push({ name, start, end });
  }
  return { times, failures };
}

/** The most intervals open at once; an end at the same instant as a start counts first. */
function maxOverlap(times: RunTime[]): { max: number; at: string[] } {
  const points = times.flatMap((t) => [
    { at: t.start, delta: 1, name: t.name },
    { at: t.end, delta: -1, name: t.name },
  ]);
  points.sort((a, b) => a.at - b.at || a.delta - b.delta);
  const running = new Set<string>();
  let best = { max: 0, at: [] as string[] };
  for (const p of points) {
    if (p.delta > 0) running.add(p.name);
    else running.delete(p.name);
    if (running.size > best.max) best = { max: running.size, at: [...running] };
  }
  return best;
}

/**
 * The run-time expectations of flow control (conformance/README.md "End-to-end and producer
 * cases"): `{running_at_once: [names], max?, min?}` (how many of the jobs ran at the same time),
 * `{start_order: [group, …], serial?}` (every job of a group started before any job of the next;
 * `serial`: each started after the one before it completed) and
 * `{share: names, among: [names], first: n, min?, max?}` (how many of the first n starts among
 * the jobs were of `share`).
 */
export async function checkRunTimes(
  caseId: string,
  e: Step,
  ctx: CheckContext,
): Promise<Failure[]> {
  const rule = (fallback: string) => (typeof e.rule === "string" ? e.rule : fallback);
  if (e.running_at_once !== undefined) {
    const { times, failures } = await runTimes(expand(e.running_at_once, ctx, caseId), ctx);
    if (failures.length) return failures;
    const { max, at } = maxOverlap(times);
    const problems: string[] = [];
    if (typeof e.max === "number" && max > e.max) problems.push(`at most ${e.max}`);
    if (typeof e.min === "number" && max < e.min) problems.push(`at least ${e.min}`);
    return problems.length
      ? [
          {
            rule: rule("jobs running at the same time"),
            message: `${max} ran at once (${at.join(", ")}), expected ${problems.join(" and ")}`,
          },
        ]
      : [];
  }
  if (e.start_order !== undefined) {
    const groups = (e.start_order as unknown[]).map((g) => expand(g, ctx, caseId));
    const { times, failures } = await runTimes(groups.flat(), ctx);
    if (failures.length) return failures;
    const of = new Map(times.map((t) => [t.name, t]));
    for (let i = 1; i < groups.length; i++) {
      const lastBefore = groups[i - 1]!.map((n) => of.get(n)!).sort(
        (a, b) => b.start - a.start,
      )[0]!;
      const firstAfter = groups[i]!.map((n) => of.get(n)!).sort((a, b) => a.start - b.start)[0]!;
      if (firstAfter.start < lastBefore.start)
        failures.push({
          rule: rule("jobs start in the order the spec says"),
          message: `${firstAfter.name} started before ${lastBefore.name}`,
        });
    }
    if (e.serial === true) {
      const sorted = [...times].sort((a, b) => a.start - b.start);
      for (let i = 1; i < sorted.length; i++)
        if (sorted[i]!.start < sorted[i - 1]!.end)
          failures.push({
            rule: rule("jobs run one at a time"),
            message: `${sorted[i]!.name} started before ${sorted[i - 1]!.name} completed`,
          });
    }
    return failures;
  }
  const among = expand(e.among, ctx, caseId);
  const share = new Set(expand(e.share, ctx, caseId));
  const { times, failures } = await runTimes(among, ctx);
  if (failures.length) return failures;
  const first = [...times].sort((a, b) => a.start - b.start).slice(0, Number(e.first));
  const count = first.filter((t) => share.has(t.name)).length;
  const low = typeof e.min === "number" ? e.min : 0;
  const high = typeof e.max === "number" ? e.max : Infinity;
  return count >= low && count <= high
    ? []
    : [
        {
          rule: rule("the share of starts the queue weights give"),
          message: `${count} of the first ${first.length} starts were of ${String(e.share)} (${first.map((t) => t.name).join(", ")}), expected ${low}..${high}`,
        },
      ];
}
