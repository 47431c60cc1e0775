/**
 * The Python race (issue 25): rrqkit with its Python runner and producer against the queues
 * Python teams would otherwise pick (Celery 5, RQ, arq, Dramatiq), each from its own
 * virtualenv (bench/.venv-peers/), on the scenario's redis-server, back to back, ratios per
 * repetition (bench/README.md, "The Python race"):
 *
 * - `python/noop`: drain N pre-enqueued no-op jobs (with each consumer's CPU and peak RSS, and
 *   the Python runner's CPU per job against the Node runner's: `python/runner-cpu*`);
 * - `python/sleep`: drain N jobs that each sleep 10 ms, 64 at a time for everyone;
 * - `python/enqueue-*` and `python/latency-200`: bench/lib/python-peers-enqueue.ts, -latency.ts;
 * - `python/rss-1000`: the consumer's peak RSS with 1,000 two-second jobs in flight.
 */
import { rounds, type BenchContext } from "../lib/context.js";
import {
  quickSubset,
  raceBurnDown,
  type RaceContender,
  type Work,
} from "../lib/python-peers-burn.js";
import { runPeerEnqueue } from "../lib/python-peers-enqueue.js";
import { runPeerLatency } from "../lib/python-peers-latency.js";
import { arqSpec, celerySpec, dramatiqSpec, rqSpec } from "../lib/python-peers.js";
import { ensurePeerVenvs } from "../lib/python-peers-venv.js";
import { Case, type Baselines } from "../lib/report.js";
import { BULLMQ_INPROCESS, OURS_BEST, PYTHON_RACE_OURS } from "../lib/specs.js";
import { median } from "../lib/stats.js";

/** The baselines of a race case; `celery` is set once the best Celery pool is known. */
function raceBaselines(contenders: readonly RaceContender[]): Baselines {
  const first = (system: string) => contenders.find((c) => c.system === system)?.id;
  return {
    celery: undefined,
    rq: first("rq"),
    arq: first("arq"),
    dramatiq: first("dramatiq"),
    bullmq: first("bullmq"),
  };
}

/**
 * Sets the `celery` baseline of `cases` to the Celery pool with the best median in `by`
 * (higher is better), and notes which.
 */
function pickCelery(by: Case, cases: readonly Case[]): void {
  const pools = by.contenders.filter((e) => e.system === "celery");
  let best: { id: string; value: number } | undefined;
  for (const e of pools) {
    const m = median(e.values.filter((v) => Number.isFinite(v)));
    if (Number.isFinite(m) && (!best || m > best.value)) best = { id: e.id, value: m };
  }
  if (!best) return;
  for (const c of cases) {
    c.baselines.celery = best.id;
    c.notes.push(`celery baseline: ${best.id} (the Celery pool with the best median jobs/s)`);
  }
}

interface DrainCases {
  rate: Case;
  cpu: Case;
  rss: Case;
}

/** Runs one drain race: every contender drains `jobsFor(c)` jobs of `work` per repetition. */
async function drainRace(
  ctx: BenchContext,
  id: string,
  what: string,
  contenders: readonly RaceContender[],
  work: Work,
  jobsFor: (c: RaceContender) => number,
  onResult?: (c: RaceContender, rep: number, runnerCpu: number | undefined) => void,
): Promise<DrainCases> {
  const baselines = raceBaselines(contenders);
  const params = {
    reps: ctx.reps,
    jobs: Object.fromEntries(contenders.map((c) => [c.id, jobsFor(c)])),
    work,
  };
  const mk = (suffix: string, title: string, unit: string, higher: boolean) =>
    ctx.addCase(new Case(`${id}${suffix}`, `${what}: ${title}`, unit, higher, baselines, params));
  const cases = {
    rate: mk("", "throughput", "jobs/s", true),
    cpu: mk("/worker-cpu", "CPU seconds per 10,000 jobs, all the consumer's processes", "s", false),
    rss: mk("/worker-rss", "peak RSS of the consumer's processes (sum)", "MB", false),
  };
  await rounds(ctx, contenders, async (c, rep) => {
    const jobs = rep < 0 ? Math.ceil(jobsFor(c) / 5) : jobsFor(c);
    try {
      const r = await raceBurnDown(ctx, c, jobs, work);
      ctx.log(
        `    ${Math.round(r.jobsPerSecond)} jobs/s, ${r.seconds.toFixed(2)} s, ${r.cpuPer10k.toFixed(2)} CPU s/10k, ${r.rssMb.toFixed(0)} MB; ${r.detail}`,
      );
      if (rep < 0) return;
      cases.rate.record(c, rep, r.jobsPerSecond, { seconds: r.seconds, jobs }, r.accounted);
      const extra: Record<string, number> =
        r.runnerCpuPer10k === undefined ? {} : { runner_cpu_s_per_10k: r.runnerCpuPer10k };
      cases.cpu.record(c, rep, r.cpuPer10k, extra, r.accounted);
      cases.rss.record(c, rep, r.rssMb, {}, r.accounted);
      onResult?.(c, rep, r.runnerCpuPer10k);
    } catch (error) {
      const message = (error as Error).message;
      ctx.log(`    FAILED: ${message}`);
      if (rep >= 0) for (const k of Object.values(cases)) k.fail(c, rep, message.split("\n")[0]!);
    }
  });
  pickCelery(cases.rate, Object.values(cases));
  return cases;
}

/** `python/noop`, with the Python vs Node runner CPU cases. */
async function noopRace(ctx: BenchContext): Promise<void> {
  const contenders: RaceContender[] = [
    PYTHON_RACE_OURS,
    celerySpec("prefork", 2),
    celerySpec("threads", 8),
    rqSpec(2),
    arqSpec(64),
    dramatiqSpec(2, 8),
    BULLMQ_INPROCESS,
    OURS_BEST,
  ];
  // Peers are capped at 10,000 jobs (5-10 s each at their rates): rates stay comparable.
  const jobsFor = (c: RaceContender) =>
    ctx.quick
      ? 200
      : c.system === "rrqkit" || c.system === "bullmq"
        ? ctx.jobs
        : Math.min(ctx.jobs, 10_000);
  const runnerCpu = new Map<string, number[]>();
  await drainRace(
    ctx,
    "python/noop",
    "drain pre-enqueued no-op jobs",
    contenders,
    { task: "noop", ms: 0 },
    jobsFor,
    (c, rep, cpu) => {
      if (cpu === undefined) return;
      const list = runnerCpu.get(c.id) ?? [];
      list[rep] = cpu;
      runnerCpu.set(c.id, list);
    },
  );
  const params = { jobs: ctx.quick ? 200 : ctx.jobs, reps: ctx.reps };
  const cpu = ctx.addCase(
    new Case(
      "python/runner-cpu",
      "runner process CPU seconds per 10,000 no-op jobs (from python/noop)",
      "s",
      false,
      {},
      params,
    ),
  );
  for (const c of [PYTHON_RACE_OURS, OURS_BEST])
    (runnerCpu.get(c.id) ?? []).forEach((v, rep) => cpu.record(c, rep, v));
  const ratio = ctx.addCase(
    new Case(
      "python/runner-cpu-ratio",
      "Python runner CPU per job ÷ Node runner's, per repetition (target ≤ 2)",
      "×",
      false,
      {},
      params,
    ),
  );
  const py = runnerCpu.get(PYTHON_RACE_OURS.id) ?? [];
  const node = runnerCpu.get(OURS_BEST.id) ?? [];
  py.forEach((v, rep) => {
    const n = node[rep];
    if (n !== undefined && n > 0) ratio.record(PYTHON_RACE_OURS, rep, v / n);
  });
}

/** `python/sleep`: 10 ms sleeps, the same concurrency budget (64; 8 with --quick) for all. */
async function sleepRace(ctx: BenchContext): Promise<void> {
  const budget = ctx.quick ? 8 : 64;
  const ours: RaceContender = {
    ...PYTHON_RACE_OURS,
    runner: { ...PYTHON_RACE_OURS.runner!, poolSize: 1, maxInFlight: budget },
  };
  const contenders = quickSubset(ctx, [
    ours,
    celerySpec("threads", budget),
    celerySpec("prefork", budget),
    rqSpec(budget),
    arqSpec(budget),
    dramatiqSpec(2, budget / 2),
  ]);
  const jobs = ctx.quick ? 200 : Math.min(ctx.jobs, 5000);
  await drainRace(
    ctx,
    "python/sleep",
    `drain jobs that sleep 10 ms, ${budget} at a time`,
    contenders,
    { task: "sleep", ms: 10 },
    () => jobs,
  );
}

/**
 * `python/rss-1000`: 1,000 jobs of 2 s each (100 of 300 ms with --quick) in flight at once,
 * the consumer's peak RSS (all its processes). rrqkit: 16 Python runners × 64 in flight (64 is
 * max_in_flight's limit); arq max_jobs 1,000; Celery threads -c 1,000; Dramatiq 2 × 500; RQ 64
 * SimpleWorker processes (a process per job in flight: 1,000 would not fit).
 */
async function rssRace(ctx: BenchContext): Promise<void> {
  const n = ctx.quick ? 100 : 1000;
  const ms = ctx.quick ? 300 : 2000;
  const runners = ctx.quick ? 2 : 16;
  const perRunner = Math.min(64, Math.ceil(n / runners));
  const ours: RaceContender = {
    ...PYTHON_RACE_OURS,
    id: `${PYTHON_RACE_OURS.id}-${runners}x${perRunner}`,
    runner: {
      ...PYTHON_RACE_OURS.runner!,
      poolSize: runners,
      maxInFlight: perRunner,
    },
  };
  const contenders: RaceContender[] = [
    ours,
    celerySpec("threads", n),
    rqSpec(ctx.quick ? 8 : 64),
    arqSpec(n),
    dramatiqSpec(2, n / 2),
  ];
  const baselines = raceBaselines(contenders);
  baselines.celery = contenders[1]!.id;
  const c = ctx.addCase(
    new Case(
      "python/rss-1000",
      `peak RSS of the consumer's processes draining ${n} jobs of ${ms} ms, up to ${n} at once`,
      "MB",
      false,
      baselines,
      { jobs: n, sleep_ms: ms },
    ),
  );
  c.notes.push(
    "RQ runs one job per worker process: 64 processes (8 with --quick), not 1,000.",
    "extra mean_in_flight = jobs × sleep ÷ drain time: a peer that starts fewer jobs at once than it may is measured at that many.",
  );
  await rounds(ctx, quickSubset(ctx, contenders), async (spec, rep) => {
    try {
      const r = await raceBurnDown(ctx, spec, n, { task: "sleep", ms }, 50);
      ctx.log(`    peak RSS ${r.rssMb.toFixed(0)} MB, ${r.seconds.toFixed(2)} s; ${r.detail}`);
      // Jobs × duration ÷ drain time: how many ran at once on average (not every peer starts
      // all it is allowed to at once; the peak RSS is then that of fewer jobs in flight).
      const meanInFlight = (n * ms) / 1000 / r.seconds;
      if (rep >= 0)
        c.record(
          spec,
          rep,
          r.rssMb,
          { seconds: r.seconds, mean_in_flight: meanInFlight },
          r.accounted,
        );
    } catch (error) {
      const message = (error as Error).message;
      ctx.log(`    FAILED: ${message}`);
      if (rep >= 0) c.fail(spec, rep, message.split("\n")[0]!);
    }
  });
}

/** Runs every Python-race scenario (after making sure the peers' virtualenvs are installed). */
export async function runPythonRace(ctx: BenchContext): Promise<void> {
  await ensurePeerVenvs((m) => ctx.log(m));
  ctx.log("python race: no-op drain");
  await noopRace(ctx);
  ctx.log("python race: 10 ms sleeps");
  await sleepRace(ctx);
  ctx.log("python race: enqueue");
  await runPeerEnqueue(ctx);
  ctx.log("python race: latency at 200 jobs/s");
  await runPeerLatency(ctx);
  ctx.log("python race: RSS with 1,000 jobs in flight");
  await rssRace(ctx);
}
