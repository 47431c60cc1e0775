/**
 * The Rust race (issue 25): rrqkit's Rust path (the daemon with the Rust runner, and the Rust
 * producer) against a Redis-backed Rust job queue, apalis 1.0 with apalis-redis
 * (bench/rust-peer, pinned in its Cargo.lock). Both run against the scenario's redis-server,
 * back to back in each round, so every repetition yields a ratio (`ratio_vs_apalis`).
 *
 * - `rust/noop`: drain N pre-enqueued no-op jobs (jobs/s), with the drain's CPU, peak RSS,
 *   Redis commands and Redis CPU per job as `rust/noop-*` cases.
 * - `rust/sleep`: the same with jobs that each sleep 10 ms (async), 64 in flight, and its CPU.
 * - `rust/enqueue-single-1`, `rust/enqueue-single-50`, `rust/enqueue-bulk`: each producer in
 *   its own process, 1 or 50 callers awaiting single enqueues, or batches of 100; the queue
 *   must then hold exactly the jobs sent.
 */
import { existsSync } from "node:fs";
import { burnDown, type BurnDown } from "../lib/burn.js";
import { rounds, type BenchContext } from "../lib/context.js";
import { consumerAvailable, RRQ_QUEUE } from "../lib/consumers.js";
import { paths } from "../lib/paths.js";
import { timedEnqueue } from "../lib/enqueue-run.js";
import { resetServer } from "../lib/redis.js";
import { Case, type ContenderInfo } from "../lib/report.js";
import {
  APALIS_VERSION,
  apalisBurnDown,
  apalisEnqueueCommand,
  apalisQueued,
  buildRustPeer,
} from "../lib/rust-peer.js";
import { OURS_RUST } from "../lib/specs.js";

/** apalis's worker: at most this many jobs in flight, as rrqkit's Rust runner (1 × 64). */
const APALIS_CONCURRENCY = OURS_RUST.runner!.maxInFlight;

const APALIS_WORKER: ContenderInfo = {
  id: "apalis-redis",
  label: `apalis ${APALIS_VERSION} + apalis-redis worker (c=${APALIS_CONCURRENCY})`,
  system: "apalis",
};
const APALIS_PRODUCER: ContenderInfo = {
  id: "apalis-redis",
  label: `apalis-redis ${APALIS_VERSION} push / push_bulk`,
  system: "apalis",
};
const RRQKIT_PRODUCER: ContenderInfo = {
  id: "rrqkit-rust",
  label: "rrqkit Rust producer",
  system: "rrqkit",
};
const BASELINES = { apalis: APALIS_WORKER.id };
const BATCH = 100;
const SLEEP_MS = 10;

/** Runs every Rust-race scenario (no-op and sleep drains, then enqueue). */
export async function runRustRace(ctx: BenchContext): Promise<void> {
  const peer = buildRustPeer(ctx);
  const ours = consumerAvailable(OURS_RUST, ctx.rustProfile);
  const producer = existsSync(paths.rustEnqueue(ctx.rustProfile));
  if (!peer) ctx.log("WARNING: skipping apalis (its bench binary did not build)");
  if (!ours) ctx.log(`WARNING: skipping ${OURS_RUST.label} (the Rust runner is not built)`);
  if (!producer) ctx.log("WARNING: skipping the rrqkit Rust producer (it is not built)");
  const consumers = [...(ours ? [OURS_RUST] : []), ...(peer ? [APALIS_WORKER] : [])];
  for (const drain of DRAINS) await runDrain(ctx, consumers, drain);
  await runEnqueue(ctx, [
    ...(producer ? [RRQKIT_PRODUCER] : []),
    ...(peer ? [APALIS_PRODUCER] : []),
  ]);
}

/** A cost case of a drain: what each figure sums over the consumer's processes. */
interface CostDef {
  id: string;
  title: string;
  unit: string;
  value(r: BurnDown): number;
}

const CPU: Omit<CostDef, "id"> = {
  title: "consumer CPU seconds per 10,000 jobs (rrqkit: daemon + Rust runner)",
  unit: "s",
  value: (r) => r.mainCpuPer10k + r.childCpuPer10k,
};

/** The no-op drain's costs, as the burn-down's `cost/*`. */
const NOOP_COSTS: CostDef[] = [
  { id: "rust/noop-cpu", ...CPU },
  {
    id: "rust/noop-rss",
    title: "consumer peak RSS during the drain (rrqkit: daemon + Rust runner)",
    unit: "MB",
    value: (r) => r.mainPeakRssMb + r.childPeakRssMb,
  },
  {
    id: "rust/noop-redis-commands",
    title: "Redis commands per job (INFO commandstats delta, incl. inside Lua)",
    unit: "cmds",
    value: (r) => r.redisCommandsPerJob,
  },
  {
    id: "rust/noop-redis-cpu",
    title: "Redis server CPU milliseconds per 10,000 jobs",
    unit: "ms",
    value: (r) => r.redisCpuMsPer10k,
  },
];

/** One kind of drain: its case id, the handler both sides run, and its cost cases. */
interface Drain {
  id: string;
  title: string;
  handler: "echo" | "sleep";
  /** rrqkit's params of job i (apalis's `sleep` defaults to 10 ms). */
  params?: (i: number) => Record<string, unknown>;
  costs: CostDef[];
}

const DRAINS: Drain[] = [
  { id: "rust/noop", title: "no-op", handler: "echo", costs: NOOP_COSTS },
  {
    id: "rust/sleep",
    title: "10 ms async sleep",
    handler: "sleep",
    params: (i) => ({ i, ms: SLEEP_MS }),
    costs: [{ id: "rust/sleep-cpu", ...CPU }],
  },
];

async function runDrain(
  ctx: BenchContext,
  contenders: ContenderInfo[],
  drain: Drain,
): Promise<void> {
  const jobs = ctx.quick ? 300 : ctx.jobs;
  const params = { jobs, reps: ctx.reps, in_flight: APALIS_CONCURRENCY };
  const throughput = ctx.addCase(
    new Case(
      drain.id,
      `drain ${jobs} pre-enqueued ${drain.title} jobs`,
      "jobs/s",
      true,
      BASELINES,
      params,
    ),
  );
  throughput.notes.push(
    `rrqkit: daemon + ${ctx.rustProfile} Rust runner (unix, msgpack), 1 × ${APALIS_CONCURRENCY} ` +
      `in flight. apalis ${APALIS_VERSION} (${ctx.rustProfile}): WorkerBuilder + RedisStorage on ` +
      `tokio's multi-threaded runtime (a thread per core), .concurrency(${APALIS_CONCURRENCY}), ` +
      "default Config (fetch batch 10, results persisted, tasks locked), its connection's " +
      "response timeout raised from redis-rs's 500 ms to 30 s.",
    "apalis's backlog is moved from bench:scheduled to bench:active by the bench before its " +
      "worker starts: apalis-redis 1.0.0's fetch script moves every due job with one " +
      "RPUSH unpack(ids) and fails past ~8,000 ('too many results to unpack').",
  );
  const costs = drain.costs.map((def) => ({
    def,
    c: ctx.addCase(new Case(def.id, def.title, def.unit, false, BASELINES, params)),
  }));
  const mix = new Map<string, Record<string, number>>();
  await rounds(ctx, contenders, async (contender, rep) => {
    const size = rep < 0 ? Math.ceil(jobs / 5) : jobs;
    let result: BurnDown;
    try {
      result =
        contender.system === "rrqkit"
          ? await burnDown(ctx, OURS_RUST, size, {
              functionName: drain.handler,
              params: drain.params,
            })
          : await apalisBurnDown(ctx, size, {
              handler: drain.handler,
              concurrency: APALIS_CONCURRENCY,
            });
    } catch (error) {
      const message = (error as Error).message;
      ctx.log(`    FAILED: ${message}`);
      if (rep < 0) return;
      throughput.fail(contender, rep, message.split("\n")[0]!);
      for (const { c } of costs) c.fail(contender, rep, "burn-down failed");
      return;
    }
    ctx.log(
      `    ${Math.round(result.jobsPerSecond)} jobs/s, ${result.seconds.toFixed(2)} s; ${result.detail}`,
    );
    if (rep < 0) return;
    throughput.record(
      contender,
      rep,
      result.jobsPerSecond,
      { seconds: result.seconds },
      result.accounted,
    );
    for (const { def, c } of costs)
      c.record(contender, rep, def.value(result), {}, result.accounted);
    mix.set(contender.id, result.byCommand);
  });
  const commands = costs.find(({ def }) => def.id.endsWith("-redis-commands"))?.c;
  if (!commands) return;
  for (const [id, byCommand] of mix) {
    const perJob = Object.entries(byCommand)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([name, n]) => `${name} ${(n / jobs).toFixed(2)}`)
      .join(", ");
    commands.notes.push(`${id}: ${perJob}`);
  }
}

async function runEnqueue(ctx: BenchContext, producers: ContenderInfo[]): Promise<void> {
  const modes = [
    { id: "single-1", mode: "single" as const, callers: 1, jobs: ctx.quick ? 300 : 10_000 },
    { id: "single-50", mode: "single" as const, callers: 50, jobs: ctx.quick ? 300 : 30_000 },
    { id: "bulk", mode: "bulk" as const, callers: 1, jobs: ctx.quick ? 300 : 50_000 },
  ];
  for (const m of modes) {
    const title =
      m.mode === "bulk"
        ? `bulk enqueue, batches of ${BATCH} (enqueue_many / push_bulk)`
        : `single enqueues, ${m.callers} concurrent caller${m.callers > 1 ? "s" : ""}`;
    const c = ctx.addCase(
      new Case(`rust/enqueue-${m.id}`, title, "jobs/s", true, BASELINES, {
        jobs: m.jobs,
        callers: m.callers,
        batch: m.mode === "bulk" ? BATCH : 1,
      }),
    );
    if (m.mode === "single")
      c.notes.push(
        "Callers share one connection: rrqkit's Producer (Arc), apalis's RedisStorage cloned " +
          "per caller (a ConnectionManager handle on one multiplexed connection).",
      );
    else c.notes.push("apalis: push_bulk, one batch_push script call per 100 jobs.");
    await rounds(ctx, producers, async (p, rep) => {
      await resetServer(ctx.redis);
      const jobs = rep < 0 ? Math.ceil(m.jobs / 5) : m.jobs;
      await timedEnqueue(ctx, c, p, rep, jobs, {
        command:
          p.system === "rrqkit"
            ? [
                paths.rustEnqueue(ctx.rustProfile),
                [ctx.redisUrl, m.mode, String(jobs), String(m.callers), String(BATCH)],
              ]
            : apalisEnqueueCommand(ctx, m.mode, jobs, m.callers, BATCH),
        queued: () =>
          p.system === "rrqkit" ? ctx.redis.zcard(RRQ_QUEUE) : apalisQueuedExactly(ctx),
      });
    });
  }
}

/** Jobs waiting in apalis's queue, or -1 when their payload count disagrees. */
async function apalisQueuedExactly(ctx: BenchContext): Promise<number> {
  const { waiting, stored } = await apalisQueued(ctx.redis);
  return waiting === stored ? waiting : -1;
}
