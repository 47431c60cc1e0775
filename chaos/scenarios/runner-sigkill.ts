import { conformanceRunners } from "../lib/paths.js";
import type { Scenario } from "../lib/scenario.js";
import { killBusyRunner, workCmd, workJobs } from "./common.js";

/**
 * SIGKILL runner processes mid-job, again and again: the chaos work runner (Node runtime) and
 * the Python and Rust conformance runners, all behind one orchestrator. Killed requests are
 * transport errors (an attempt each, RRQ's rule) and retried; the pool respawns the process.
 * Some jobs also SIGKILL their own runner on every attempt and must end in the DLQ.
 */
export const runnerSigkill: Scenario = {
  name: "runner-sigkill",
  description: "SIGKILL runner processes (Node, Python, Rust) mid-job, repeatedly",
  async run(ctx) {
    const others = conformanceRunners().filter((r) => r.name !== "node");
    const runners: Record<string, ReturnType<typeof ctx.runner>> = {
      work: ctx.runner(workCmd(), { pool_size: 3, max_in_flight: 6 }),
    };
    const routes: Record<string, string> = {};
    for (const r of others) {
      runners[r.name] = ctx.runner(r.cmd, { pool_size: 1, max_in_flight: 4 });
      routes[`q_${r.name}`] = r.name;
    }
    if (others.length < 2)
      ctx.notes.push(
        `only ${["node", ...others.map((r) => r.name)].join(", ")} runners are built; the others are skipped`,
      );
    const queues = ["default", ...Object.keys(routes)];
    await ctx.startDaemon(ctx.settings({ runner_routes: routes }), runners, { queues });

    const total = ctx.size(60, 3000);
    const perOther = Math.floor(total * 0.15);
    const work = total - perOther * others.length - ctx.size(2, 20);
    const items: Parameters<typeof ctx.enqueue>[0] = [
      ...workJobs(ctx, work, [50, 600], { maxRetries: 8 }).map((j) => ({ ...j, tag: "work" })),
      ...Array.from({ length: ctx.size(2, 20) }, () => ({
        fn: "crash",
        options: { maxRetries: 3 },
        expect: "FAILED" as const,
      })),
    ];
    for (const r of others) {
      for (let i = 0; i < perOther; i++) {
        const inspect = ctx.rng.chance(0.3);
        items.push({
          fn: inspect ? "inspect" : "sleep",
          params: inspect ? {} : { ms: ctx.rng.int(200, 1500) },
          options: { maxRetries: 8, jobTimeoutSeconds: 30, queueName: `q_${r.name}` },
          identity: inspect,
          tag: r.name,
        });
      }
    }
    const shuffled = items.sort(() => ctx.rng.next() - 0.5);
    await ctx.enqueue(shuffled);
    const kills = ctx.size(3, 70);
    // Round-robin over the runtimes, so each one is killed (falls back to any busy runner).
    const tags = [...others.map((r) => r.name), "work"];
    const done = await ctx.injectWhileRunning(
      kills,
      ctx.quick ? [300, 700] : [700, 2000],
      async (n) => {
        const tag = tags[n % tags.length]!;
        const onTag = (e: { job_id: string }) => (ctx.jobs.get(e.job_id)?.tag ?? "work") === tag;
        return (await killBusyRunner(ctx, "runner_sigkill", onTag)) || killBusyRunner(ctx);
      },
    );
    if (done < kills) ctx.notes.push(`only ${done} of ${kills} kills: the jobs ran out first`);
    // Every crash execution is a runner killing itself mid-job: a fault too.
    ctx.execLog.poll();
    for (const e of ctx.execLog.entries.filter((x) => x.function_name === "crash"))
      ctx.fault("runner_self_sigkill", [e.job_id], `pid ${e.pid}`, e.ts_ms);
  },
};
