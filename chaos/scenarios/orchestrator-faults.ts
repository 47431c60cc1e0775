import type { Daemon } from "../lib/daemon.js";
import { sleep } from "../lib/redis.js";
import type { Scenario, ScenarioContext } from "../lib/scenario.js";
import { workCmd, workJobs } from "./common.js";

/** A random daemon that holds at least one job right now, with those jobs. */
async function busiest(ctx: ScenarioContext, daemons: Daemon[]) {
  const busy: Array<{ daemon: Daemon; active: string[] }> = [];
  for (const daemon of daemons) {
    const active = await ctx.activeJobsOf(daemon);
    if (active.length > 0) busy.push({ daemon, active });
  }
  return busy.length > 0 ? ctx.rng.pick(busy) : undefined;
}

/**
 * SIGKILL orchestrator daemons mid-batch (their runners die with them through the parent
 * guard) and start replacements. The dead worker's jobs must come back through their expired
 * leases (about lease_seconds), on the surviving daemons, without an attempt counted.
 */
export const orchestratorSigkill: Scenario = {
  name: "orchestrator-sigkill",
  description: "SIGKILL orchestrator daemons mid-batch, start replacements",
  async run(ctx) {
    const settings = ctx.settings();
    const runners = { work: ctx.runner(workCmd(), { pool_size: 2, max_in_flight: 6 }) };
    const daemons = await Promise.all([1, 2, 3].map(() => ctx.startDaemon(settings, runners)));
    await ctx.enqueue(
      workJobs(ctx, ctx.size(80, 3000), [100, 1500], { maxRetries: 3 }).map((j) => ({
        ...j,
        params: { ...j.params, fail_until_attempt: ctx.rng.chance(0.1) ? 1 : 0 },
      })),
    );
    await ctx.injectWhileRunning(
      ctx.size(2, 30),
      ctx.quick ? [800, 1500] : [700, 1500],
      async () => {
        const live = daemons.filter((d) => d.alive);
        const target = await busiest(ctx, live);
        if (!target || live.length < 2) return false;
        target.daemon.signal("SIGKILL");
        ctx.fault(
          "orchestrator_sigkill",
          target.active,
          `${target.daemon.name} pid ${target.daemon.pid}`,
        );
        await sleep(ctx.rng.int(200, 1500));
        daemons.splice(daemons.indexOf(target.daemon), 1);
        daemons.push(await ctx.startDaemon(settings, runners));
        return true;
      },
    );
  },
};

/**
 * SIGSTOP an orchestrator daemon for longer than its lease, then SIGCONT it. Its runners keep
 * running (own process groups) and often finish while it is stopped; another daemon recovers
 * the jobs from the expired leases and runs them again. When the stopped daemon resumes, every
 * write of its stale attempts must be fenced off: one terminal write per job, by the last holder.
 */
export const orchestratorSigstop: Scenario = {
  name: "orchestrator-sigstop",
  description: "SIGSTOP an orchestrator past its lease, then SIGCONT",
  async run(ctx) {
    const settings = ctx.settings();
    const runners = { work: ctx.runner(workCmd(), { pool_size: 2, max_in_flight: 6 }) };
    const daemons = await Promise.all([1, 2, 3].map(() => ctx.startDaemon(settings, runners)));
    await ctx.enqueue(workJobs(ctx, ctx.size(80, 2000), [200, 2500], { maxRetries: 4 }));
    const leaseMs = 2000;
    await ctx.injectWhileRunning(
      ctx.size(2, 25),
      ctx.quick ? [500, 1000] : [500, 1500],
      async () => {
        const target = await busiest(ctx, daemons);
        if (!target) return false;
        target.daemon.signal("SIGSTOP");
        const stopMs = ctx.rng.int(leaseMs + 500, leaseMs + 4000);
        ctx.fault("orchestrator_sigstop", target.active, `${target.daemon.name} for ${stopMs} ms`);
        await sleep(stopMs);
        target.daemon.signal("SIGCONT");
        return true;
      },
    );
  },
};
