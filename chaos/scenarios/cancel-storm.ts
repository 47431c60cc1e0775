import type { Daemon } from "../lib/daemon.js";
import { conformanceRunners } from "../lib/paths.js";
import { statuses } from "../lib/invariants.js";
import { sleep } from "../lib/redis.js";
import type { Scenario, ScenarioContext } from "../lib/scenario.js";
import { killBusyRunner, workCmd, workJobs } from "./common.js";

/** Per run: job id → when its cancel returned `{cancelled: true}` (local epoch ms). */
const cancelledAt = new WeakMap<ScenarioContext, Map<string, number>>();
/** Per run: how each cancel answered, for the notes. */
const answers = new WeakMap<ScenarioContext, Map<string, number>>();

/** Cancels one tracked job now in one of `wanted` statuses; false when there is none. */
async function cancelOne(ctx: ScenarioContext, wanted: readonly string[]): Promise<boolean> {
  const ids = [...ctx.jobs.keys()].filter((id) => !cancelledAt.get(ctx)!.has(id));
  const now = await statuses(ctx.redis.client, ids);
  const candidates = ids.filter((_, i) => wanted.includes(now[i] ?? ""));
  if (candidates.length === 0) return false;
  const id = ctx.rng.pick(candidates);
  const holder = await ctx.redis.client.hget(`rrq:job:${id}`, "worker_id");
  const result = await ctx.producer.cancel(id);
  const tally = answers.get(ctx)!;
  const on = ctx.jobs.get(id)?.tag === "stubborn" ? " (ignore_cancel)" : "";
  const key = result.cancelled ? `cancelled from ${now[ids.indexOf(id)]}${on}` : result.reason!;
  tally.set(key, (tally.get(key) ?? 0) + 1);
  if (!result.cancelled) return true; // raced with a claim or a finish: also worth trying
  cancelledAt.get(ctx)!.set(id, Date.now());
  ctx.fault(
    wanted.includes("ACTIVE") ? "cancel_running" : "cancel_waiting",
    [id],
    holder ? `held by ${holder}` : undefined,
  );
  return true;
}

/** SIGKILLs a random live daemon holding jobs and starts a replacement. */
async function killOrchestrator(
  ctx: ScenarioContext,
  daemons: Daemon[],
  start: () => Promise<Daemon>,
): Promise<boolean> {
  const live = daemons.filter((d) => d.alive);
  if (live.length < 2) return false;
  const target = ctx.rng.pick(live);
  const active = await ctx.activeJobsOf(target);
  target.signal("SIGKILL");
  ctx.fault("orchestrator_sigkill", active, `${target.name} pid ${target.pid}`);
  await sleep(ctx.rng.int(200, 1000));
  daemons.splice(daemons.indexOf(target), 1);
  daemons.push(await start());
  return true;
}

/**
 * Cancels running (and some waiting) jobs at random while runner processes and orchestrator
 * daemons are SIGKILLed. Most jobs run on the chaos work runner (its handler hears the cancel);
 * some on the Node conformance runner's `ignore_cancel`, which blocks its process past the
 * cancel grace, so cancelling them recycles the runner. Checked beyond the usual invariants: a
 * job whose cancel returned `{cancelled: true}` ends CANCELLED (never COMPLETED, FAILED or in a
 * DLQ), with no write after the cancel's.
 */
export const cancelStorm: Scenario = {
  name: "cancel-storm",
  description: "cancel running jobs at random while runners and orchestrators are SIGKILLed",
  async run(ctx) {
    cancelledAt.set(ctx, new Map());
    answers.set(ctx, new Map());
    const node = conformanceRunners().find((r) => r.name === "node");
    const settings = ctx.settings({
      runner_cancel_grace_seconds: 0.5,
      ...(node ? { runner_routes: { stubborn: "node" } } : {}),
    });
    const runners: Record<string, ReturnType<typeof ctx.runner>> = {
      work: ctx.runner(workCmd(), { pool_size: 2, max_in_flight: 6 }),
    };
    if (node) runners.node = ctx.runner(node.cmd, { pool_size: 1, max_in_flight: 4 });
    else ctx.notes.push("the Node conformance runner is not built: no stubborn jobs");
    const queues = node ? ["default", "stubborn"] : ["default"];
    const start = () => ctx.startDaemon(settings, runners, { queues });
    const daemons = await Promise.all([1, 2, 3].map(() => start()));
    const stubborn = node ? ctx.size(6, 80) : 0;
    await ctx.enqueue(
      [
        ...workJobs(ctx, ctx.size(80, 2500), [300, 3000], { maxRetries: 4 }),
        ...Array.from({ length: stubborn }, () => ({
          fn: "ignore_cancel",
          params: { ms: ctx.rng.int(1200, 2500) },
          options: { maxRetries: 4, jobTimeoutSeconds: 20, queueName: "stubborn" },
          tag: "stubborn",
        })),
      ].sort(() => ctx.rng.next() - 0.5),
    );
    await ctx.injectWhileRunning(
      ctx.size(30, 600),
      ctx.quick ? [100, 300] : [100, 400],
      async () => {
        const roll = ctx.rng.next();
        if (roll < 0.6) return cancelOne(ctx, ["ACTIVE"]);
        if (roll < 0.72) return cancelOne(ctx, ["PENDING", "RETRYING"]);
        if (roll < 0.92) return killBusyRunner(ctx);
        return killOrchestrator(ctx, daemons, start);
      },
    );
    const tally = [...answers.get(ctx)!].map(([k, n]) => `${k} ${n}`).join(", ");
    ctx.notes.push(`cancel answers: ${tally || "none"}`);
  },
  async verify(ctx) {
    const cancelled = cancelledAt.get(ctx) ?? new Map<string, number>();
    const dlqIds = new Set<string>();
    for (const key of await ctx.redis.client.keys("rrq:dlq:*"))
      if ((await ctx.redis.client.type(key)) === "list")
        for (const id of await ctx.redis.client.lrange(key, 0, -1)) dlqIds.add(id);
    for (const [id, at] of cancelled) {
      const hash = await ctx.redis.client.hgetall(`rrq:job:${id}`);
      if (hash.status !== "CANCELLED")
        ctx.extraViolations.push({
          kind: "stale_terminal_write",
          job: id,
          detail: `cancel returned {cancelled: true} at ${at}, but the job ended ${hash.status} (completion_time ${hash.completion_time}, last_error ${JSON.stringify(hash.last_error ?? null)})`,
        });
      if (dlqIds.has(id))
        ctx.extraViolations.push({
          kind: "dlq_mismatch",
          job: id,
          detail: "cancelled, yet listed in a DLQ",
        });
    }
    ctx.notes.push(`${cancelled.size} jobs cancelled while the storm ran`);
  },
};
