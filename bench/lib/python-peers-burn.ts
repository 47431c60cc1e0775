/**
 * One drain of the Python race, for any contender: a peer worker (Celery, RQ, arq, Dramatiq:
 * its own producer fills its queue, bench/py/peers/enqueue_peers.py) or a bench consumer
 * (rrqkit with a runner, BullMQ: bench/lib/burn.ts). Both are measured the same way: jobs held
 * back while the consumer starts, the window from the first claim to the last completion, the
 * CPU and peak RSS of every process of the consumer over that window.
 */
import { burnDown } from "./burn.js";
import type { BenchContext } from "./context.js";
import type { ConsumerSpec } from "./consumers.js";
import { CostMeter, runJson } from "./procs.js";
import {
  account,
  holdQueue,
  queueDepth,
  startPeer,
  watchPeerDrain,
  type PeerSpec,
  type PeerWorker,
} from "./python-peers.js";
import { peerBin, peersDir } from "./python-peers-venv.js";
import { resetServer } from "./redis.js";

/** A contender of the Python race's drains. */
export type RaceContender = PeerSpec | ConsumerSpec;

export const isPeer = (c: RaceContender): c is PeerSpec => "peer" in c;

/**
 * The contenders of a race case under `--quick`: rrqkit's and Dramatiq's only (every peer's
 * worker, producer and accounting are checked by `python/noop` and the enqueue race, which keep
 * them all); the full run keeps every one. Saves ~50 s of CI.
 */
export function quickSubset<T extends RaceContender>(
  ctx: { quick: boolean },
  contenders: readonly T[],
): T[] {
  return ctx.quick
    ? contenders.filter((c) => !isPeer(c) || c.peer === "dramatiq")
    : [...contenders];
}

/** What every drain runs: a no-op, or a sleep of `ms` (async where the framework is). */
export interface Work {
  task: "noop" | "sleep";
  ms: number;
}

/** One drain's figures. */
export interface RaceBurn {
  jobsPerSecond: number;
  seconds: number;
  /** CPU seconds per 10,000 jobs of all the consumer's processes (rrqkit: daemon + runners). */
  cpuPer10k: number;
  /** rrqkit only: of its runner processes alone. */
  runnerCpuPer10k?: number;
  /** Peak RSS of the consumer's processes, MB (rrqkit: daemon peak + runners' peak). */
  rssMb: number;
  accounted: boolean;
  detail: string;
}

const enqueueScript = `${peersDir}/enqueue_peers.py`;

/** Fills `jobs` jobs of `work` into a peer's queue with the peer's own producer. */
export async function fillPeer(
  ctx: BenchContext,
  spec: PeerSpec,
  jobs: number,
  work: Work,
): Promise<void> {
  const args = [enqueueScript, spec.peer, ctx.redisUrl, "fill", String(jobs)];
  await runJson(
    peerBin(spec.peer, "python"),
    [...args, "--task", work.task, "--arg", String(work.ms)],
    {
      cwd: peersDir,
    },
  );
  const queued = await queueDepth(ctx.redis, spec.peer);
  if (queued !== jobs)
    throw new Error(`${spec.id}: ${queued} of ${jobs} jobs queued after the fill`);
}

async function peerBurn(
  ctx: BenchContext,
  spec: PeerSpec,
  jobs: number,
  work: Work,
  sampleMs: number,
): Promise<RaceBurn> {
  await resetServer(ctx.redis);
  await fillPeer(ctx, spec, jobs, work);
  const release = await holdQueue(ctx.redis, spec.peer);
  const roots: number[] = [];
  const meter = new CostMeter(roots, sampleMs);
  meter.startSampling();
  let worker: PeerWorker | undefined;
  try {
    worker = await startPeer(spec, ctx.redis, {
      redisUrl: ctx.redisUrl,
      onSpawn: (pid) => roots.push(pid),
    });
    await release();
    const window = await watchPeerDrain(ctx.redis, spec.peer, jobs, {
      timeoutMs: 60_000 + jobs * (work.ms + 20),
      onStart: () => meter.begin(),
    });
    const cost = meter.end();
    const accounting = await account(ctx.redis, spec.peer, jobs);
    const seconds = (window.endMs - window.startMs) / 1000;
    return {
      jobsPerSecond: jobs / seconds,
      seconds,
      cpuPer10k: ((cost.mainCpuSeconds + cost.childCpuSeconds) * 10_000) / jobs,
      rssMb: cost.mainPeakRssMb + cost.childPeakRssMb,
      accounted: accounting.ok,
      detail: accounting.detail,
    };
  } catch (error) {
    meter.end();
    const output = worker?.proc.tail() ?? "";
    throw new Error(`${(error as Error).message}${output ? `\n${output}` : ""}`);
  } finally {
    await worker?.stop();
  }
}

/** Drains `jobs` jobs of `work` by contender `c` (see the module comment). */
export async function raceBurnDown(
  ctx: BenchContext,
  c: RaceContender,
  jobs: number,
  work: Work,
  sampleMs = 100,
): Promise<RaceBurn> {
  if (isPeer(c)) return peerBurn(ctx, c, jobs, work, sampleMs);
  const r = await burnDown(
    ctx,
    c,
    jobs,
    work.task === "sleep" ? { functionName: "sleep", params: () => ({ ms: work.ms }) } : {},
  );
  return {
    jobsPerSecond: r.jobsPerSecond,
    seconds: r.seconds,
    cpuPer10k: r.mainCpuPer10k + r.childCpuPer10k,
    runnerCpuPer10k: c.runner && c.runner.transport !== "inprocess" ? r.childCpuPer10k : undefined,
    rssMb: r.mainPeakRssMb + r.childPeakRssMb,
    accounted: r.accounted,
    detail: r.detail,
  };
}
