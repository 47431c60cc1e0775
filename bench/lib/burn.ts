/**
 * One burn-down: fill N jobs, start a consumer, time the drain from its first claim to its last
 * completion, with the consumer's CPU, memory and Redis cost over the same window.
 */
import type { EnqueueOptions } from "../../src/producer/options.js";
import { startOptions, type BenchContext } from "./context.js";
import { Queue } from "bullmq";
import {
  BULL_QUEUE,
  RRQ_QUEUE,
  startConsumer,
  type ConsumerSpec,
  type RunningConsumer,
} from "./consumers.js";
import { accountFor, fill, ownCommands, watchDrain } from "./jobs.js";
import { CostMeter } from "./procs.js";
import { commandDelta, readCounters, resetServer } from "./redis.js";

export interface BurnDown {
  jobsPerSecond: number;
  seconds: number;
  /** Orchestrator (or BullMQ worker) CPU seconds per 10,000 jobs. */
  mainCpuPer10k: number;
  /** Runner processes' (or BullMQ sandbox children's) CPU seconds per 10,000 jobs. */
  childCpuPer10k: number;
  mainPeakRssMb: number;
  childPeakRssMb: number;
  /** Redis commands per job, including those run inside Lua scripts. */
  redisCommandsPerJob: number;
  /** Script calls (EVALSHA/EVAL/FCALL) per job. */
  redisScriptsPerJob: number;
  /** Redis server CPU milliseconds per 10,000 jobs. */
  redisCpuMsPer10k: number;
  accounted: boolean;
  detail: string;
  byCommand: Record<string, number>;
  /** rrqkit/RRQ job ids of the burn-down (empty for BullMQ), for checks after it. */
  jobIds: string[];
}

/**
 * Runs one burn-down of `jobs` jobs; the server is flushed first. The jobs are held back while
 * the consumer starts (rrqkit/RRQ: the queue ZSET is renamed aside; BullMQ: the queue is
 * paused), then released at once (RENAME back plus a wake-up PUBLISH; BullMQ `resume`), so
 * start-up is never timed and every orchestrator process is ready when the first job is.
 */
export async function burnDown(
  ctx: BenchContext,
  spec: ConsumerSpec,
  jobs: number,
  options: {
    processes?: number;
    execLog?: string;
    /**
     * Enqueue options of job i (flow control). Jobs parked by flow control are in no queue, so
     * the drain then also waits until every job is COMPLETED (read from the job hashes once the
     * queue and the in-flight sets are empty; those reads are left out of the command counts).
     */
    enqueueOptions?: (i: number) => EnqueueOptions;
    /** The handler every job runs (default `echo`). */
    functionName?: string;
    /** The params of job i (default `{ i }`). */
    params?: (i: number) => Record<string, unknown>;
  } = {},
): Promise<BurnDown> {
  await resetServer(ctx.redis);
  const filled = await fill(ctx.redisUrl, spec.system, jobs, {
    enqueueOptions: options.enqueueOptions,
    name: options.functionName,
    params: options.params,
  });
  const hold = await holdJobs(ctx, spec);
  const before = await readCounters(ctx.redis);
  const roots: number[] = [];
  const meter = new CostMeter(roots);
  meter.startSampling();
  let consumer: RunningConsumer | undefined;
  try {
    consumer = await startConsumer(
      spec,
      {
        ...startOptions(ctx),
        processes: options.processes,
        execLog: options.execLog,
        onSpawn: (pid) => roots.push(pid),
      },
      ctx.redis,
    );
    const ids = consumer.workerIds;
    await hold.release();
    // The window opens at the first probe that sees a job claimed (within ~2 ms of it).
    const window = await watchDrain(ctx.redis, spec.system, {
      from: jobs,
      to: 0,
      timeoutMs: 60_000 + jobs * 2,
      onStart: () => meter.begin(),
      workerIds: () => ids,
    });
    let checks = 0;
    if (options.enqueueOptions) {
      const deadline = performance.now() + 60_000 + jobs * 2;
      while ((checks++, !(await accountFor(ctx.redis, filled)).ok)) {
        if (performance.now() > deadline)
          throw new Error(
            `jobs still unfinished (parked?) ${jobs * 2 + 60_000} ms after the drain`,
          );
        await new Promise((r) => setTimeout(r, 10));
        window.endMs = performance.now();
      }
    }
    const cost = meter.end();
    const after = await readCounters(ctx.redis);
    const own = ownCommands(spec.system, ids.length, window.probes);
    for (const [k, v] of consumer.readinessCommands) own.set(k, (own.get(k) ?? 0) + v);
    for (const [k, v] of hold.commands) own.set(k, (own.get(k) ?? 0) + v);
    if (checks) own.set("hget", (own.get("hget") ?? 0) + checks * filled.ids.length);
    const commands = commandDelta(before, after, own);
    const accounting = await accountFor(ctx.redis, filled);
    return burnDownResult(jobs, window, cost, { before, after, commands }, accounting, filled.ids);
  } catch (error) {
    meter.end();
    const output = consumer?.output() ?? "";
    throw new Error(`${(error as Error).message}${output ? `\n${output}` : ""}`);
  } finally {
    await consumer?.stop();
    await hold.close();
  }
}

const STAGING = "rrq:queue:bench-staging";

/** Holds filled jobs back from consumers until release(). */
async function holdJobs(
  ctx: BenchContext,
  spec: ConsumerSpec,
): Promise<{ release(): Promise<void>; close(): Promise<void>; commands: Map<string, number> }> {
  if (spec.system === "bullmq") {
    const { hostname, port } = new URL(ctx.redisUrl);
    const queue = new Queue(BULL_QUEUE, { connection: { host: hostname, port: Number(port) } });
    await queue.pause();
    return {
      release: () => queue.resume(),
      close: () => queue.close(),
      commands: new Map([["evalsha", 1]]),
    };
  }
  await ctx.redis.rename(RRQ_QUEUE, STAGING);
  return {
    release: async () => {
      await ctx.redis.rename(STAGING, RRQ_QUEUE);
      await ctx.redis.publish(`rrq:wake:${RRQ_QUEUE}`, "0");
    },
    close: () => Promise.resolve(),
    commands: new Map([
      ["rename", 1],
      ["publish", 1],
    ]),
  };
}

/**
 * A drain's figures from what was measured around it: the window, the processes' cost, Redis's
 * counters and command delta, and the accounting (shared by every consumer the bench drains).
 */
export function burnDownResult(
  jobs: number,
  window: { startMs: number; endMs: number },
  cost: ReturnType<CostMeter["end"]>,
  redis: {
    before: Awaited<ReturnType<typeof readCounters>>;
    after: Awaited<ReturnType<typeof readCounters>>;
    commands: ReturnType<typeof commandDelta>;
  },
  accounting: { ok: boolean; detail: string },
  jobIds: string[],
): BurnDown {
  const seconds = (window.endMs - window.startMs) / 1000;
  const per10k = 10_000 / jobs;
  const { before, after, commands } = redis;
  return {
    jobsPerSecond: jobs / seconds,
    seconds,
    mainCpuPer10k: cost.mainCpuSeconds * per10k,
    childCpuPer10k: cost.childCpuSeconds * per10k,
    mainPeakRssMb: cost.mainPeakRssMb,
    childPeakRssMb: cost.childPeakRssMb,
    redisCommandsPerJob: commands.total / jobs,
    redisScriptsPerJob: commands.scripts / jobs,
    redisCpuMsPer10k: (after.cpuSeconds - before.cpuSeconds) * 1000 * per10k,
    accounted: accounting.ok,
    detail: accounting.detail,
    byCommand: commands.byCommand,
    jobIds,
  };
}
