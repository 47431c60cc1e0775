import { readFileSync } from "node:fs";
import type { Daemon } from "../lib/daemon.js";
import { FaultProxy } from "../lib/fault-proxy.js";
import { scanKeys } from "../lib/invariants.js";
import { sleep } from "../lib/redis.js";
import type { Scenario, ScenarioContext } from "../lib/scenario.js";
import { workCmd, workJobs } from "./common.js";

/** The log line of a fenced write (src/telemetry/logger.ts). */
const NOT_WRITTEN = "another worker holds this job; result not written";

/**
 * The RESP request of a claim (claim-ready-4.lua: four keys, the queue first) and of a
 * batched completion (complete-success-batch-2.lua: two keys, the active set first); no other
 * script starts so.
 */
const AIMED = {
  claim: /\r\n\$1\r\n4\r\n\$\d+\r\nrrq:queue:/,
  complete: /\r\n\$1\r\n2\r\n\$\d+\r\nrrq:active:jobs:/,
};

/** State shared between run() and verify(). */
const runs = new WeakMap<ScenarioContext, { daemon: Daemon; proxy: FaultProxy }>();

/** The worker id of a daemon (from its health key). */
async function workerIdOf(ctx: ScenarioContext, daemon: Daemon): Promise<string> {
  const keys = await scanKeys(ctx.redis.client, `rrq:health:worker:${daemon.workerPrefix}*`);
  if (keys.length === 0) throw new Error(`${daemon.name} has no health key`);
  return keys[0]!.slice("rrq:health:worker:".length);
}

/**
 * Connection resets every 100–400 ms on one orchestrator's Redis link (through a
 * {@link FaultProxy}) while it claims and completes a steady stream of short jobs; a second
 * orchestrator talks to Redis directly. ioredis re-sends the commands whose replies a reset
 * lost, so claims, completions and retries run twice: every script must answer its second run
 * as it did the first (a claim's jobs are dispatched, a written result is reported written).
 * Besides the invariants: no job was counted as recovered for a run that never reached a
 * runner, and the stormed daemon logged no "result not written" for a job nobody else ran.
 */
export const resetStorm: Scenario = {
  name: "reset-storm",
  description: "connection resets every 100–400 ms on one orchestrator's Redis link",
  async run(ctx) {
    const settings = ctx.settings();
    const proxy = new FaultProxy({ port: ctx.redis.port });
    await proxy.listen();
    const stormed = await ctx.startDaemon(
      { ...settings, redis_dsn: proxy.url() },
      { work: ctx.runner(workCmd(), { pool_size: 2, max_in_flight: 8 }) },
    );
    await ctx.startDaemon(settings, {
      work: ctx.runner(workCmd(), { pool_size: 1, max_in_flight: 4 }),
    });
    runs.set(ctx, { daemon: stormed, proxy });
    const active = `rrq:active:jobs:${await workerIdOf(ctx, stormed)}`;
    // The jobs it holds at a reset: their runs go on; "recovered" once they finish.
    const held = async () =>
      (await ctx.redis.client.zrange(active, 0, -1)).filter((id) => ctx.jobs.has(id));
    let storming = true;
    const storm = (async () => {
      while (storming) {
        await sleep(ctx.rng.int(100, 400));
        if (!storming) break;
        if (ctx.rng.chance(0.5)) {
          const affected = await held();
          ctx.fault("redis_reset", affected, `${proxy.resetAll()} connections`);
          continue;
        }
        // Aimed: a reset between a claim's or a completion's request and its reply, the
        // moment random resets rarely hit (a few milliseconds per call).
        const target = ctx.rng.pick(["claim", "complete"] as const);
        const affected = await held();
        proxy.resetAfter((chunk) => AIMED[target].test(chunk.toString("latin1")));
        const until = Date.now() + 2000;
        while (proxy.trapsLeft > 0 && storming && Date.now() < until) await sleep(5);
        if (proxy.trapsLeft === 0) ctx.fault("redis_reset", affected, `after a ${target} call`);
        else proxy.resetAfter(() => false, 0);
      }
    })();
    try {
      // A steady stream, so the resets keep finding claims and completions in flight.
      const rounds = ctx.size(12, 70);
      for (let round = 0; round < rounds; round++) {
        await ctx.enqueue(workJobs(ctx, ctx.size(30, 45), [20, 400], { maxRetries: 3 }));
        await sleep(1000);
      }
      const deadline = Date.now() + ctx.size(20_000, 60_000);
      while ((await ctx.openJobs()).length > 0 && Date.now() < deadline) await sleep(500);
    } finally {
      storming = false;
      await storm;
      proxy.mode({ kind: "pass" });
    }
    ctx.notes.push(
      `${proxy.resets} resets closed ${proxy.connectionsReset} connections of ${stormed.name}`,
    );
  },

  async verify(ctx) {
    const state = runs.get(ctx);
    if (!state) return;
    ctx.execLog.poll();
    const execs = new Map<string, number>();
    for (const e of ctx.execLog.entries) execs.set(e.job_id, (execs.get(e.job_id) ?? 0) + 1);
    const recovered = new Set<string>();
    let strandedRecoveries = 0;
    for (const id of ctx.jobs.keys()) {
      const hash = await ctx.redis.client.hgetall(`rrq:job:${id}`);
      const recoveries = Number(hash.recovery_count ?? 0);
      if (recoveries === 0) continue;
      recovered.add(id);
      // Runs that never reached a runner, other than ones given back on purpose.
      const runsCount = Number(hash.runs ?? 0);
      let released = 0;
      for (let k = 1; k <= Math.min(runsCount, 100); k++)
        if (hash[`run_${k}_outcome`] === "released") released++;
      const unexecuted = runsCount - (execs.get(id) ?? 0) - released;
      if (unexecuted > 0) {
        strandedRecoveries++;
        ctx.extraViolations.push({
          kind: "unexpected_outcome",
          job: id,
          detail: `recovery_count ${recoveries}, but ${unexecuted} of its ${runsCount} claims never reached a runner (a claim whose reply was lost stranded it)`,
        });
      }
    }
    // A fenced write is right only for a job someone else took over (after a recovery).
    let falseWarnings = 0;
    let warnings = 0;
    for (const line of readFileSync(state.daemon.logFile, "utf8").split("\n")) {
      if (!line.includes(NOT_WRITTEN)) continue;
      warnings++;
      const jobId = (JSON.parse(line) as { job_id?: string }).job_id;
      if (jobId && !recovered.has(jobId)) {
        falseWarnings++;
        ctx.extraViolations.push({
          kind: "unexpected_outcome",
          job: jobId,
          detail: `${state.daemon.name} logged "${NOT_WRITTEN}" for a job no other attempt took over (a re-sent write reported its own result as another worker's)`,
        });
      }
    }
    ctx.notes.push(
      `${recovered.size} jobs recovered (${strandedRecoveries} for a claim that never reached a runner); ${warnings} "result not written" lines (${falseWarnings} false)`,
    );
  },
};
