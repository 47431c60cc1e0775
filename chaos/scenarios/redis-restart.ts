import { randomUUID } from "node:crypto";
import { sleep } from "../lib/redis.js";
import type { Scenario } from "../lib/scenario.js";
import { workCmd, workJobs } from "./common.js";

/**
 * kill -9 redis-server mid-run and start it again on the same port and directory (AOF with
 * `--appendfsync always`, so every acknowledged write survives). The daemons' connections
 * reconnect and their commands wait; running jobs finish and their writes are retried; leases
 * that lapsed while Redis was away are renewed or recovered. A producer keeps enqueueing through
 * the outages (its commands wait too).
 */
export const redisRestart: Scenario = {
  name: "redis-restart",
  description: "kill -9 redis-server (AOF, fsync always) mid-run, restart it in place",
  aof: true,
  async run(ctx) {
    const settings = ctx.settings();
    const runners = { work: ctx.runner(workCmd(), { pool_size: 2, max_in_flight: 6 }) };
    const daemons = await Promise.all([1, 2].map(() => ctx.startDaemon(settings, runners)));
    const total = ctx.size(80, 1500);
    await ctx.enqueue(workJobs(ctx, Math.floor(total * 0.7), [100, 1500], { maxRetries: 4 }));
    // A trickle of enqueues that runs across the outages.
    let trickling = true;
    const trickle = (async () => {
      const extra = workJobs(ctx, total - Math.floor(total * 0.7), [100, 800], { maxRetries: 4 });
      for (const item of extra) {
        if (!trickling) break;
        const jobId = randomUUID();
        ctx.jobs.set(jobId, { id: jobId, kind: "work", maxRetries: 4, identity: true });
        try {
          await ctx.producer.enqueue(item.fn, item.params, { ...item.options, jobId });
        } catch (error) {
          // Resent after a reconnect, an enqueue may find its own job already written.
          const exists = await ctx.redis.client.exists(`rrq:job:${jobId}`);
          ctx.notes.push(
            `enqueue of ${jobId} threw ${(error as Error).message}; the job ${exists ? "exists" : "does not exist"}`,
          );
          if (!exists) ctx.jobs.delete(jobId);
        }
        await sleep(ctx.rng.int(5, 40));
      }
    })();
    await ctx.injectWhileRunning(
      ctx.size(2, 16),
      ctx.quick ? [600, 1200] : [800, 2000],
      async () => {
        const affected = await ctx.activeJobsOf(undefined);
        await ctx.redis.kill9();
        ctx.fault("redis_kill9", affected, "redis-server SIGKILL");
        await sleep(ctx.rng.int(300, 3500));
        await ctx.redis.restart();
        for (const d of daemons)
          if (!d.alive) ctx.notes.push(`${d.name} died during the outage: ${d.tail(5)}`);
        return true;
      },
    );
    trickling = false;
    await trickle;
  },
};
