import type { Exec } from "../lib/exec-log.js";
import { pidAlive } from "../lib/exec-log.js";
import { statuses } from "../lib/invariants.js";
import { WORK_RUNNER } from "../lib/paths.js";
import type { ScenarioContext } from "../lib/scenario.js";

/** The chaos work runner's launch command. */
export const workCmd = () => [process.execPath, WORK_RUNNER];

/** `n` work jobs sleeping a random time in `ms`, each returning its request's identity. */
export function workJobs(
  ctx: ScenarioContext,
  n: number,
  ms: [number, number],
  options: { maxRetries?: number; timeout?: number; queue?: string } = {},
) {
  return Array.from({ length: n }, () => ({
    fn: "work",
    params: { ms: ctx.rng.int(ms[0], ms[1]) },
    options: {
      maxRetries: options.maxRetries ?? 6,
      jobTimeoutSeconds: options.timeout ?? 30,
      ...(options.queue ? { queueName: options.queue } : {}),
    },
    identity: true,
  }));
}

/**
 * Runner processes that are executing a tracked job right now: the pids of recent executions
 * whose job is still ACTIVE, with those jobs (by their latest execution).
 */
export async function busyRunners(
  ctx: ScenarioContext,
  filter: (e: Exec) => boolean = () => true,
): Promise<Map<number, string[]>> {
  ctx.execLog.poll();
  const latest = new Map<string, Exec>();
  const horizon = Date.now() - 60_000;
  for (const e of ctx.execLog.entries) {
    if (e.ts_ms < horizon || !ctx.jobs.has(e.job_id) || !filter(e)) continue;
    const seen = latest.get(e.job_id);
    if (!seen || seen.ts_ms < e.ts_ms) latest.set(e.job_id, e);
  }
  const ids = [...latest.keys()];
  const now = await statuses(ctx.redis.client, ids);
  const byPid = new Map<number, string[]>();
  ids.forEach((id, i) => {
    if (now[i] !== "ACTIVE") return;
    const pid = latest.get(id)!.pid;
    if (!pidAlive(pid)) return;
    const list = byPid.get(pid) ?? [];
    list.push(id);
    byPid.set(pid, list);
  });
  return byPid;
}

/** SIGKILLs one busy runner process (chosen at random); returns false when none was busy. */
export async function killBusyRunner(
  ctx: ScenarioContext,
  kind = "runner_sigkill",
  filter?: (e: Exec) => boolean,
): Promise<boolean> {
  const busy = await busyRunners(ctx, filter);
  if (busy.size === 0) return false;
  const pid = ctx.rng.pick([...busy.keys()].sort((a, b) => a - b));
  const first = busy.get(pid)![0]!;
  const runtime = ctx.jobs.get(first)?.tag ?? ctx.jobs.get(first)?.kind ?? "?";
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return false;
  }
  ctx.fault(kind, busy.get(pid)!, `pid ${pid} (${runtime})`);
  return true;
}
