import type { Command } from "commander";
import { implementationLabel, type WorkerHealth } from "../../api/workers.js";
import { quietSince } from "../../control/quiet.js";
import type { RrqApi } from "../../api/index.js";
import { ExitCode, say, withApi, type CliContext } from "./shared.js";
import { breakerLine, sinceText } from "./flow-format.js";
import { json } from "./format.js";

/**
 * The Status line's value: RRQ's JSON rendering, and when the record contradicts its active
 * count ("idle (no jobs)" with jobs running), the consistent status with the recorded one.
 */
function statusValue(w: WorkerHealth): string | undefined {
  const recorded = w.health?.status;
  if (recorded === undefined) return undefined;
  if (w.status === undefined || w.status === recorded) return JSON.stringify(recorded);
  return `${JSON.stringify(w.status)} (recorded ${JSON.stringify(recorded)} beside running jobs)`;
}

/** Offsets to Redis's clock up to this many ms are normal (the worker warns past it too). */
const CLOCK_OK_MS = 1000;

/**
 * The Clock line of an rrqkit worker's record: its clock's offset to Redis's (clock_offset_ms,
 * Redis minus host), flagged when past {@link CLOCK_OK_MS}; undefined without the field.
 */
function clockLine(offset: unknown): string | undefined {
  if (typeof offset !== "number" || !Number.isFinite(offset)) return undefined;
  if (Math.abs(offset) <= CLOCK_OK_MS) return `in sync with Redis (offset ${offset} ms)`;
  const way = offset > 0 ? "behind" : "ahead of";
  return `WARNING: ${Math.abs(offset)} ms ${way} Redis's clock (leases and cron use Redis's clock)`;
}

/**
 * The Redis Link line of an rrqkit worker's record: "partitioned" while its lease renewal cannot
 * reach Redis, else its last partition (when it ended, how long, attempts abandoned); undefined
 * for a worker that never had one (or an RRQ worker).
 */
function linkLine(link: unknown, last: unknown): string | undefined {
  if (link === "partitioned") return "PARTITIONED (lease renewal cannot reach Redis)";
  if (typeof last !== "object" || last === null) return undefined;
  const p = last as { ended_at?: unknown; down_seconds?: unknown; abandoned_attempts?: unknown };
  return (
    `ok; last partition ended ${String(p.ended_at)} after ${String(p.down_seconds)} s, ` +
    `${String(p.abandoned_attempts)} attempt(s) abandoned`
  );
}

/**
 * The Quiet line of a quiet rrqkit worker (its quiet key, or its record's `quiet` while the key
 * write of a SIGTSTP is pending); undefined for one that claims.
 */
function quietLine(since: string | null | undefined, recorded: unknown): string | undefined {
  if (since) return `yes, since ${since} (claims no new jobs; rrq worker resume undoes it)`;
  if (recorded === true) return "yes (claims no new jobs; rrq worker resume undoes it)";
  return undefined;
}

/** What flow control holds back: breakers that are not closed, and paused queues. */
async function flowState(api: RrqApi) {
  const [breakers, paused] = await Promise.all([api.flow.breakers(), api.flow.pausedQueues()]);
  return {
    breakers: breakers.filter((b) => b.state !== "closed"),
    paused: [...paused].sort(([a], [b]) => a.localeCompare(b)),
  };
}

/**
 * The flow-control part of the report, printed only when there is something to say (so that
 * without flow control the report is RRQ's). Informational: it never changes the exit code.
 */
function sayFlow(ctx: CliContext, flow: Awaited<ReturnType<typeof flowState>>): void {
  const now = Date.now();
  if (flow.breakers.length > 0) {
    say(ctx, `Circuit Breakers: ${flow.breakers.length} not closed:`);
    for (const b of flow.breakers) say(ctx, `  - ${breakerLine(b, now)}`);
  }
  if (flow.paused.length > 0) {
    say(ctx, `Paused Queues: ${flow.paused.length} (info):`);
    for (const [queue, info] of flow.paused) {
      const reason = info.reason ? `, reason: ${info.reason}` : "";
      say(ctx, `  - ${queue}: paused ${sinceText(info, now)}${reason}`);
    }
  }
}

/**
 * `rrq check` (alias `health`): RRQ's worker health report, plus each worker's implementation
 * (rrqkit and its version, or RRQ's). Unlike RRQ (always 0), it exits 1 when no worker has a
 * live health record, so it can serve as a liveness probe. Circuit breakers that are not closed
 * and paused queues follow the workers (informational: they do not change the exit code).
 */
async function check(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  return withApi(ctx, async (api) => {
    const workers = await api.workers.list();
    const flow = await flowState(api);
    const quiet = await quietSince(
      api.redis,
      workers.map((w) => w.id),
    );
    if (flags.json) {
      const detailed = await Promise.all(
        workers.map(async (w) => ({
          id: w.id,
          ttlSeconds: w.ttlSeconds,
          implementation: w.implementation ?? null,
          version: w.version ?? null,
          implementationLabel: implementationLabel(w),
          status: w.status ?? null,
          quiet: quietLine(quiet.get(w.id), w.health?.quiet) !== undefined,
          quietSince: quiet.get(w.id) ?? null,
          health: w.health ?? null,
          activeJobs: (await api.workers.activeJobs(w.id)).map((a) => ({
            id: a.id,
            claimedAt: new Date(a.claimedAt * 1000).toISOString(),
            functionName: a.job?.functionName ?? null,
            queueName: a.job?.queueName ?? null,
          })),
        })),
      );
      ctx.io.out(
        json({
          healthy: workers.length > 0,
          workers: detailed,
          breakers: flow.breakers,
          pausedQueues: flow.paused.map(([queue, info]) => ({ queue, ...info })),
        }),
      );
      return workers.length > 0 ? ExitCode.ok : ExitCode.failure;
    }
    if (workers.length === 0) {
      say(ctx, "Worker Health Check: FAIL (No active workers found)");
      sayFlow(ctx, flow);
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
      const status = statusValue(w);
      if (status !== undefined) say(ctx, `    Status: ${status}`);
      for (const [field, label] of [
        ["active_jobs", "Active Jobs"],
        ["timestamp", "Last Heartbeat"],
      ] as const) {
        const value = w.health?.[field];
        if (value !== undefined) say(ctx, `    ${label}: ${JSON.stringify(value)}`);
      }
      say(ctx, `    TTL: ${w.ttlSeconds} seconds`);
      say(ctx, `    Implementation: ${implementationLabel(w)}`);
      const skew = clockLine(w.health?.clock_offset_ms);
      if (skew) say(ctx, `    Clock: ${skew}`);
      const link = linkLine(w.health?.redis_link, w.health?.last_partition);
      if (link) say(ctx, `    Redis Link: ${link}`);
      const quietText = quietLine(quiet.get(w.id), w.health?.quiet);
      if (quietText) say(ctx, `    Quiet: ${quietText}`);
    }
    sayFlow(ctx, flow);
    return ExitCode.ok;
  });
}

/** `rrq check` / `rrq health`. */
export function registerCheck(program: Command, ctx: CliContext): void {
  program
    .command("check")
    .alias("health")
    .description(
      "list live workers from their health records (exits 1 when there is none), then circuit " +
        "breakers that are not closed and paused queues",
    )
    .option("--json", "print JSON (with each worker's active jobs)")
    .action((flags: { json?: boolean }) => ctx.run(() => check(ctx, flags)));
}
