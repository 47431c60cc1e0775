/**
 * `python/enqueue-single`, `-single-50` and `-bulk`: each ecosystem's producer in its own
 * process, timed inside it after it connected (bench/py/peers/enqueue_peers.py for the peers,
 * bench/py/enqueue.py for rrqkit's Python producer, bench/node/enqueue.mjs for BullMQ), then
 * the queue must hold exactly the jobs sent. Bulk is the ecosystem's bulk call in batches of
 * 100 where it has one (rrqkit `enqueue_many`, RQ `Queue.enqueue_many`, BullMQ `addBulk`), its
 * fastest documented way to send 100 otherwise (Celery `group(...).apply_async()`, Dramatiq
 * `group(...).run()`, arq `asyncio.gather` of 100 `enqueue_job`).
 */
import { rounds, type BenchContext } from "./context.js";
import { BULL_QUEUE, RRQ_QUEUE } from "./consumers.js";
import { paths } from "./paths.js";
import { timedEnqueue } from "./enqueue-run.js";
import { queueDepth } from "./python-peers.js";
import { PEERS, peerBin, peersDir, type PeerName } from "./python-peers-venv.js";
import { resetServer } from "./redis.js";
import { Case, type ContenderInfo } from "./report.js";

interface Producer extends ContenderInfo {
  /** Async producers take several concurrent callers. */
  async: boolean;
  /** Largest job count per run (slow producers: a run of ~5-10 s keeps the rate comparable). */
  cap: number;
  command(mode: "single" | "bulk", jobs: number, callers: number): [string, string[]];
  queued(ctx: BenchContext): Promise<number>;
}

const BATCH = 100;

const BULK_WAY: Record<PeerName, string> = {
  celery: "group(...).apply_async()",
  rq: "Queue.enqueue_many",
  arq: "asyncio.gather of enqueue_job",
  dramatiq: "group(...).run()",
};

function producers(ctx: BenchContext): Producer[] {
  const url = ctx.redisUrl;
  const list: Producer[] = [
    {
      id: "rrqkit-python",
      label: "rrqkit Python producer (enqueue / enqueue_many)",
      system: "rrqkit",
      async: true,
      cap: Infinity,
      command: (mode, jobs, callers) => [
        paths.python,
        [paths.pyEnqueue, "rrqkit", url, mode, String(jobs), String(callers), String(BATCH)],
      ],
      queued: () => ctx.redis.zcard(RRQ_QUEUE),
    },
    {
      id: "bullmq",
      label: "BullMQ Queue.add / addBulk",
      system: "bullmq",
      async: true,
      cap: Infinity,
      command: (mode, jobs, callers) => [
        process.execPath,
        [paths.nodeEnqueue, "bullmq", url, mode, String(jobs), String(callers), String(BATCH)],
      ],
      queued: () => ctx.redis.llen(`bull:${BULL_QUEUE}:wait`),
    },
  ];
  for (const peer of PEERS)
    list.push({
      id: peer,
      label: `${peer} (${peer === "arq" ? "enqueue_job" : peer === "rq" ? "Queue.enqueue" : peer === "celery" ? "apply_async" : "send"} / ${BULK_WAY[peer]})`,
      system: peer,
      async: peer === "arq",
      // Celery's apply_async also subscribes to each result's channel: ~4 ms per job here.
      cap: peer === "celery" ? 1000 : Infinity,
      command: (mode, jobs, callers) => [
        peerBin(peer, "python"),
        [
          `${peersDir}/enqueue_peers.py`,
          peer,
          url,
          mode,
          String(jobs),
          "--callers",
          String(callers),
          "--batch",
          String(BATCH),
        ],
      ],
      queued: () => queueDepth(ctx.redis, peer),
    });
  return list;
}

/** Runs the three enqueue cases of the Python race. */
export async function runPeerEnqueue(ctx: BenchContext): Promise<void> {
  const all = producers(ctx);
  const modes = [
    { id: "single", mode: "single" as const, callers: 1, jobs: ctx.quick ? 100 : 2000 },
    { id: "single-50", mode: "single" as const, callers: 50, jobs: ctx.quick ? 100 : 5000 },
    { id: "bulk", mode: "bulk" as const, callers: 1, jobs: ctx.quick ? 200 : 10_000 },
  ];
  const baselines = {
    celery: "celery",
    rq: "rq",
    arq: "arq",
    dramatiq: "dramatiq",
    bullmq: "bullmq",
  };
  for (const m of modes) {
    const list = all.filter((p) => m.callers === 1 || p.async);
    const title =
      m.mode === "bulk"
        ? `bulk enqueue in batches of ${BATCH} (each ecosystem's bulk call or fastest way)`
        : `single enqueues, ${m.callers} concurrent caller${m.callers > 1 ? "s" : ""}`;
    const jobsOf = (p: Producer) => Math.min(m.jobs, p.cap);
    const c = ctx.addCase(
      new Case(`python/enqueue-${m.id}`, title, "jobs/s", true, baselines, {
        callers: m.callers,
        batch: m.mode === "bulk" ? BATCH : 1,
        jobs: Object.fromEntries(list.map((p) => [p.id, jobsOf(p)])),
      }),
    );
    if (m.mode === "bulk")
      c.notes.push(
        `no bulk call: Celery ${BULK_WAY.celery}, Dramatiq ${BULK_WAY.dramatiq}, arq ${BULK_WAY.arq}`,
      );
    if (m.callers > 1)
      c.notes.push("async producers only (rrqkit, arq, BullMQ): 50 asyncio tasks / promises");
    await rounds(ctx, list, async (p, rep) => {
      await resetServer(ctx.redis);
      const jobs = rep < 0 ? Math.ceil(jobsOf(p) / 5) : jobsOf(p);
      await timedEnqueue(ctx, c, p, rep, jobs, {
        command: p.command(m.mode, jobs, m.callers),
        spawn: { cwd: peersDir },
        queued: () => p.queued(ctx),
        extra: { jobs },
      });
    });
  }
}
