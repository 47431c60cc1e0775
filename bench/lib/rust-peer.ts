/**
 * The Rust race's peer, apalis 1.0 with its Redis backend (bench/rust-peer): building its bench
 * binary, filling its queue with its own producer, and one burn-down of its worker measured
 * the way bench/lib/burn.ts measures rrqkit's (first claim to last completion, probed every
 * ~2 ms, with CPU, memory and Redis cost over the same window).
 *
 * apalis-redis keeps a queue in these keys (queue "bench"): `bench:scheduled` (ZSET: every
 * push lands here, due at its push second), `bench:active` (LIST: due jobs, moved here by the
 * worker's fetch script), `bench:inflight:<worker>` (SET), `bench:done` and `bench:dead`
 * (SETs of finished ids, results in `bench:meta:<id>`), `bench:data` (HASH: job payloads).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { relative } from "node:path";
import type { Redis } from "ioredis";
import { burnDownResult, type BurnDown } from "./burn.js";
import type { BenchContext } from "./context.js";
import { paths } from "./paths.js";
import { CostMeter, Proc, runJson } from "./procs.js";
import { commandDelta, readCounters, resetServer } from "./redis.js";

export const APALIS_VERSION = "1.0.0";
const QUEUE = "bench";
const WORKER = "bench-apalis";
const keys = {
  scheduled: `${QUEUE}:scheduled`,
  active: `${QUEUE}:active`,
  done: `${QUEUE}:done`,
  dead: `${QUEUE}:dead`,
  data: `${QUEUE}:data`,
  inflight: `${QUEUE}:inflight:${WORKER}`,
};
/** Ids moved per RPUSH when the bench promotes a backlog (see promoteBacklog). */
const PROMOTE_CHUNK = 1000;

/**
 * Builds the peer's binary for the profile with cargo (a no-op when up to date); false, with
 * the reason logged, when cargo fails.
 */
export function buildRustPeer(ctx: BenchContext): boolean {
  const args = ["build", ...(ctx.rustProfile === "release" ? ["--release"] : []), "--locked"];
  ctx.log(`cargo ${args.join(" ")} (in ${relative(paths.root, paths.rustPeerDir)})`);
  const env = { ...process.env, CARGO_TARGET_DIR: `${paths.rustPeerDir}/target` };
  const r = spawnSync("cargo", args, {
    cwd: paths.rustPeerDir,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  if (r.status !== 0 || !existsSync(paths.rustPeer(ctx.rustProfile))) {
    ctx.log(`WARNING: the apalis bench binary did not build:\n${r.stderr?.toString() ?? ""}`);
    return false;
  }
  return true;
}

/** The peer's enqueue command (same arguments and JSON output as bench/rust-enqueue). */
export function apalisEnqueueCommand(
  ctx: BenchContext,
  mode: "single" | "bulk",
  jobs: number,
  callers: number,
  batch: number,
): [string, string[]] {
  return [
    paths.rustPeer(ctx.rustProfile),
    ["enqueue", ctx.redisUrl, mode, String(jobs), String(callers), String(batch)],
  ];
}

/** Jobs waiting in the peer's queue (scheduled or due), and payloads stored. */
export async function apalisQueued(redis: Redis): Promise<{ waiting: number; stored: number }> {
  const [scheduled, active, stored] = await Promise.all([
    redis.zcard(keys.scheduled),
    redis.llen(keys.active),
    redis.hlen(keys.data),
  ]);
  return { waiting: scheduled + active, stored };
}

/**
 * Moves every pushed job from `bench:scheduled` to the `bench:active` list, in push order, as
 * the worker's fetch script would on its first call. The bench does it because that script
 * moves all due jobs with one `RPUSH key unpack(ids)`, and Lua refuses to unpack more than
 * ~8,000 values ("too many results to unpack"): apalis-redis 1.0.0's worker fails on a
 * backlog of more due jobs than that, so a pre-enqueued burn-down of 20,000 cannot start
 * otherwise. After this the worker takes the same path as in steady state (fetch from the
 * list in batches). Returns the number of jobs moved.
 */
async function promoteBacklog(redis: Redis): Promise<number> {
  const ids = await redis.zrange(keys.scheduled, 0, -1);
  const pipeline = redis.pipeline();
  for (let i = 0; i < ids.length; i += PROMOTE_CHUNK)
    pipeline.rpush(keys.active, ...ids.slice(i, i + PROMOTE_CHUNK));
  pipeline.del(keys.scheduled);
  for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
  return ids.length;
}

/** Counts of the peer's final states; `ok` when exactly `expected` jobs are done. */
export async function accountForApalis(
  redis: Redis,
  expected: number,
): Promise<{ ok: boolean; detail: string }> {
  const [done, dead, scheduled, active, inflight] = await Promise.all([
    redis.scard(keys.done),
    redis.scard(keys.dead),
    redis.zcard(keys.scheduled),
    redis.llen(keys.active),
    redis.scard(keys.inflight),
  ]);
  return {
    ok: done === expected && dead === 0 && scheduled + active + inflight === 0,
    detail: `done ${done}/${expected}, dead ${dead}, waiting ${scheduled + active}, in flight ${inflight}`,
  };
}

/** The peer's worker settings for one burn-down. */
export interface ApalisWorker {
  handler: "echo" | "sleep";
  /** Jobs in flight at most (tower's concurrency limit). */
  concurrency: number;
}

/**
 * One burn-down of `jobs` jobs by the peer's worker; the server is flushed first. The queue is
 * filled by the peer's own producer (bulk pushes) and the backlog promoted (promoteBacklog);
 * the worker then starts, and the window opens at the first probe that sees the list shorter
 * (its first fetch) and closes at the first probe that sees every job in `bench:done` (its
 * result and status written), so start-up is never timed.
 */
export async function apalisBurnDown(
  ctx: BenchContext,
  jobs: number,
  worker: ApalisWorker,
): Promise<BurnDown> {
  await resetServer(ctx.redis);
  const [command, args] = apalisEnqueueCommand(ctx, "bulk", jobs, 1, 1000);
  await runJson(command, args);
  const promoted = await promoteBacklog(ctx.redis);
  if (promoted !== jobs) throw new Error(`the peer's producer queued ${promoted}/${jobs} jobs`);
  const before = await readCounters(ctx.redis);
  const roots: number[] = [];
  const meter = new CostMeter(roots);
  meter.startSampling();
  const proc = new Proc(paths.rustPeer(ctx.rustProfile), [
    "worker",
    ctx.redisUrl,
    worker.handler,
    String(worker.concurrency),
  ]);
  roots.push(proc.pid);
  try {
    const window = await watchApalis(ctx.redis, jobs, proc, () => meter.begin());
    const cost = meter.end();
    const after = await readCounters(ctx.redis);
    const own = new Map([
      ["llen", window.probes],
      ["scard", window.probes],
    ]);
    const commands = commandDelta(before, after, own);
    const accounting = await accountForApalis(ctx.redis, jobs);
    return burnDownResult(jobs, window, cost, { before, after, commands }, accounting, []);
  } catch (error) {
    meter.end();
    throw new Error(`${(error as Error).message}\n${proc.tail()}`);
  } finally {
    await proc.stop();
  }
}

/** Probes the list length and the done count every ~2 ms (2 commands per probe). */
async function watchApalis(
  redis: Redis,
  jobs: number,
  proc: Proc,
  onStart: () => void,
): Promise<{ startMs: number; endMs: number; probes: number }> {
  const timeoutMs = 60_000 + jobs * 2;
  const deadline = performance.now() + timeoutMs;
  let startMs: number | undefined;
  let probes = 0;
  for (;;) {
    const replies = (await redis.pipeline().llen(keys.active).scard(keys.done).exec()) ?? [];
    const [pending, done] = replies.map(([error, value]) => {
      if (error) throw error;
      return Number(value);
    });
    probes++;
    const now = performance.now();
    if (startMs === undefined && pending! < jobs) {
      startMs = now;
      onStart();
    }
    if (startMs !== undefined && done! >= jobs) return { startMs, endMs: now, probes };
    if (proc.child.exitCode !== null)
      throw new Error(`the worker exited (${proc.child.exitCode}) with ${done}/${jobs} done`);
    if (now > deadline)
      throw new Error(`drain timed out after ${timeoutMs} ms (list ${pending}, done ${done})`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
