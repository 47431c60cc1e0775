/**
 * `python/latency-200`: enqueue→start at 200 jobs/s offered, open loop, ~10 s (40 jobs with
 * --quick). Each ecosystem's producer sends from its own process (bench/py/peers/
 * enqueue_peers.py `latency`), writing each job's key and send time; each job writes its start
 * time: the peers' `stamp` task to BENCH_EXEC_LOG, rrqkit's Python conformance runner to
 * RRQ_TEST_EXEC_LOG (its `ts_ms`). All clocks are this machine's wall clock.
 */
import { readFileSync, rmSync, existsSync } from "node:fs";
import { join } from "node:path";
import { rounds, startOptions, type BenchContext } from "./context.js";
import { startConsumer, type RunningConsumer } from "./consumers.js";
import { paths } from "./paths.js";
import { runJson } from "./procs.js";
import { isPeer, quickSubset, type RaceContender } from "./python-peers-burn.js";
import {
  arqSpec,
  celerySpec,
  dramatiqSpec,
  rqSpec,
  startPeer,
  type PeerWorker,
} from "./python-peers.js";
import { peerBin, peersDir } from "./python-peers-venv.js";
import { resetServer } from "./redis.js";
import { Case } from "./report.js";
import { PYTHON_RACE_OURS } from "./specs.js";
import { latencySummary } from "./stats.js";

const RATE = 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Start times by key from an exec log (peers: `key ms` lines; rrqkit: JSON lines). */
function readStarts(path: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync(path)) return out;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line.trim()) continue;
    if (line.startsWith("{")) {
      const e = JSON.parse(line) as { job_id: string; ts_ms?: number };
      if (e.ts_ms !== undefined && !out.has(e.job_id)) out.set(e.job_id, e.ts_ms);
    } else {
      const [key, ms] = line.split(" ");
      if (key && !out.has(key)) out.set(key, Number(ms));
    }
  }
  return out;
}

function readSent(path: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const [key, ms] = line.split(" ");
    if (key && ms) out.set(key, Number(ms));
  }
  return out;
}

/** Runs the latency case of the Python race. */
export async function runPeerLatency(ctx: BenchContext): Promise<void> {
  const jobs = ctx.quick ? 40 : RATE * 10;
  const contenders: RaceContender[] = [
    PYTHON_RACE_OURS,
    celerySpec("threads", 8),
    rqSpec(2),
    arqSpec(64),
    dramatiqSpec(2, 8),
  ];
  const baselines = {
    celery: contenders[1]!.id,
    rq: contenders[2]!.id,
    arq: contenders[3]!.id,
    dramatiq: contenders[4]!.id,
  };
  const params = { jobs, rate: RATE };
  const mk = (p: string) =>
    ctx.addCase(
      new Case(
        `python/latency-200/start_${p}`,
        `enqueue→start ${p}, ${RATE} jobs/s offered (open loop)`,
        "ms",
        false,
        baselines,
        params,
      ),
    );
  const cases = { p50: mk("p50"), p99: mk("p99") };
  await rounds(ctx, quickSubset(ctx, contenders), async (c, rep) => {
    await resetServer(ctx.redis);
    const execLog = join(ctx.workDir, `py-exec-${c.id}-${rep + 1}.log`);
    const sentFile = join(ctx.workDir, `py-sent-${c.id}-${rep + 1}.txt`);
    rmSync(execLog, { force: true });
    let consumer: RunningConsumer | undefined;
    let worker: PeerWorker | undefined;
    try {
      if (isPeer(c)) worker = await startPeer(c, ctx.redis, { redisUrl: ctx.redisUrl, execLog });
      else consumer = await startConsumer(c, { ...startOptions(ctx), execLog }, ctx.redis);
      await sleep(300); // let it settle into its idle loop
      const [python, peer] = isPeer(c)
        ? [peerBin(c.peer, "python"), c.peer]
        : [paths.python, "rrqkit"];
      await runJson(
        python,
        [
          `${peersDir}/enqueue_peers.py`,
          peer,
          ctx.redisUrl,
          "latency",
          String(jobs),
          "--rate",
          String(RATE),
          "--out",
          sentFile,
        ],
        { cwd: peersDir },
      );
      const sent = readSent(sentFile);
      const deadline = Date.now() + 30_000;
      let starts = readStarts(execLog);
      while (starts.size < sent.size && Date.now() < deadline) {
        await sleep(100);
        starts = readStarts(execLog);
      }
      const lat: number[] = [];
      for (const [key, t] of sent) {
        const s = starts.get(key);
        if (s !== undefined) lat.push(s - t);
      }
      const accounted = sent.size === jobs && lat.length === jobs;
      const st = latencySummary(lat);
      ctx.log(
        `    start p50 ${st.p50.toFixed(2)} p99 ${st.p99.toFixed(2)} ms; ${lat.length}/${jobs} started`,
      );
      if (rep < 0) return;
      cases.p50.record(c, rep, st.p50, {}, accounted);
      cases.p99.record(c, rep, st.p99, {}, accounted);
    } catch (error) {
      const message = (error as Error).message;
      ctx.log(`    FAILED: ${message}`);
      if (rep >= 0) for (const k of Object.values(cases)) k.fail(c, rep, message.split("\n")[0]!);
    } finally {
      await worker?.stop();
      await consumer?.stop();
    }
  });
}
