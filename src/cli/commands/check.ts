import type { Command } from "commander";
import { ExitCode, say, withApi, type CliContext } from "./shared.js";
import { json } from "./format.js";

/**
 * `rrq check` (alias `health`): RRQ's worker health report. Unlike RRQ (always 0), it exits 1
 * when no worker has a live health record, so it can serve as a liveness probe.
 */
async function check(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  return withApi(ctx, async (api) => {
    const workers = await api.workers.list();
    if (flags.json) {
      const detailed = await Promise.all(
        workers.map(async (w) => ({
          id: w.id,
          ttlSeconds: w.ttlSeconds,
          health: w.health ?? null,
          activeJobs: (await api.workers.activeJobs(w.id)).map((a) => ({
            id: a.id,
            claimedAt: new Date(a.claimedAt * 1000).toISOString(),
            functionName: a.job?.functionName ?? null,
            queueName: a.job?.queueName ?? null,
          })),
        })),
      );
      ctx.io.out(json({ healthy: workers.length > 0, workers: detailed }));
      return workers.length > 0 ? ExitCode.ok : ExitCode.failure;
    }
    if (workers.length === 0) {
      say(ctx, "Worker Health Check: FAIL (No active workers found)");
      return ExitCode.failure;
    }
    say(ctx, `Worker Health Check: Found ${workers.length} active worker(s):`);
    for (const w of workers) {
      if (!w.health && w.ttlSeconds === 0) {
        say(ctx, `  - Worker ID: ${w.id} - Health data missing`);
        continue;
      }
      say(ctx, `  - Worker ID: ${w.id}`);
      // RRQ prints each value as JSON (strings keep their quotes)
      for (const [field, label] of [
        ["status", "Status"],
        ["active_jobs", "Active Jobs"],
        ["timestamp", "Last Heartbeat"],
      ] as const) {
        const value = w.health?.[field];
        if (value !== undefined) say(ctx, `    ${label}: ${JSON.stringify(value)}`);
      }
      say(ctx, `    TTL: ${w.ttlSeconds} seconds`);
    }
    return ExitCode.ok;
  });
}

/** `rrq check` / `rrq health`. */
export function registerCheck(program: Command, ctx: CliContext): void {
  program
    .command("check")
    .alias("health")
    .description("list live workers from their health records; exits 1 when there is none")
    .option("--json", "print JSON (with each worker's active jobs)")
    .action((flags: { json?: boolean }) => ctx.run(() => check(ctx, flags)));
}
