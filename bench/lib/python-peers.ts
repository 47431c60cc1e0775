/**
 * The Python race's peer workers: how each is started (its own CLI, from its virtualenv, as
 * its documentation starts it), when it is ready, where its queue is, and how the bench sees
 * its jobs finish and checks that every one did (each by its own Redis keys: no counter of the
 * bench's is added to the peers' work).
 */
import type { Redis } from "ioredis";
import type { ContenderInfo } from "./report.js";
import { Proc } from "./procs.js";
import { peerBin, peersDir, type PeerName } from "./python-peers-venv.js";

/** A peer worker configuration (one contender). */
export interface PeerSpec extends ContenderInfo {
  peer: PeerName;
  /** Worker processes and, per process, jobs at a time (threads, async slots, pool size). */
  processes: number;
  perProcess: number;
  /** Celery only: its execution pool. */
  pool?: "prefork" | "threads";
}

const sp = (peer: PeerName, id: string, label: string, rest: Partial<PeerSpec>): PeerSpec => ({
  id,
  label,
  system: peer,
  peer,
  processes: 1,
  perProcess: 1,
  ...rest,
});

/** Celery with `-P prefork -c n` (n processes) or `-P threads -c n` (n threads). */
export function celerySpec(pool: "prefork" | "threads", c: number): PeerSpec {
  return sp("celery", `celery-${pool}-c${c}`, `Celery 5 ${pool} -c ${c}`, {
    pool,
    processes: pool === "prefork" ? c : 1,
    perProcess: pool === "prefork" ? 1 : c,
  });
}

/** RQ `worker-pool -n n` of SimpleWorkers (each runs its jobs itself, one at a time). */
export function rqSpec(n: number): PeerSpec {
  return sp("rq", `rq-pool-n${n}`, `RQ worker-pool -n ${n} (SimpleWorker)`, { processes: n });
}

/** arq, one process, `max_jobs` jobs at a time. */
export function arqSpec(maxJobs: number): PeerSpec {
  return sp("arq", `arq-max${maxJobs}`, `arq max_jobs ${maxJobs}`, { perProcess: maxJobs });
}

/** Dramatiq `-p processes -t threads`. */
export function dramatiqSpec(processes: number, threads: number): PeerSpec {
  return sp(
    "dramatiq",
    `dramatiq-p${processes}t${threads}`,
    `Dramatiq -p ${processes} -t ${threads}`,
    {
      processes,
      perProcess: threads,
    },
  );
}

/** The Redis key each peer's pending jobs wait in (a list; arq's is a sorted set). */
export const QUEUE_KEY: Record<PeerName, string> = {
  celery: "celery",
  rq: "rq:queue:default",
  arq: "arq:queue",
  dramatiq: "dramatiq:default",
};

/** Pending jobs of a peer's queue. */
export async function queueDepth(redis: Redis, peer: PeerName): Promise<number> {
  return peer === "arq" ? redis.zcard(QUEUE_KEY.arq) : redis.llen(QUEUE_KEY[peer]);
}

function workerCommand(spec: PeerSpec): [string, string[]] {
  switch (spec.peer) {
    case "celery":
      // gossip, mingle and heartbeat only matter to clusters of workers (the usual advice for
      // throughput); warning level as every contender (no per-task INFO lines).
      return [
        peerBin("celery", "celery"),
        [
          ...["-A", "celery_app", "worker", "-P", spec.pool!],
          ...["-c", String(spec.pool === "prefork" ? spec.processes : spec.perProcess)],
          ...["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
        ],
      ];
    case "rq":
      return [
        peerBin("rq", "rq"),
        [
          "worker-pool",
          "-n",
          String(spec.processes),
          "-w",
          "rq.worker.SimpleWorker",
          "-l",
          "WARNING",
          "default",
        ],
      ];
    case "arq":
      return [
        peerBin("arq", "arq"),
        ["--custom-log-dict", "arq_app.LOG_CONFIG", "arq_app.WorkerSettings"],
      ];
    case "dramatiq":
      return [
        peerBin("dramatiq", "dramatiq"),
        ["dramatiq_app", "-p", String(spec.processes), "-t", String(spec.perProcess)],
      ];
  }
}

/** A started peer worker. */
export interface PeerWorker {
  proc: Proc;
  stop(): Promise<void>;
}

/**
 * Starts a peer's worker on `redisUrl` and resolves once it is ready to take jobs: Celery's
 * `worker_ready` signal and arq's `on_startup` print `bench-ready`; each Dramatiq process logs
 * that it is ready; RQ's workers register in `rq:workers`.
 */
export async function startPeer(
  spec: PeerSpec,
  redis: Redis,
  options: { redisUrl: string; execLog?: string; onSpawn?: (pid: number) => void },
): Promise<PeerWorker> {
  const [command, args] = workerCommand(spec);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BENCH_REDIS_URL: options.redisUrl,
    BENCH_MAX_JOBS: String(spec.perProcess),
    PYTHONPATH: peersDir,
  };
  if (spec.peer === "rq") args.splice(1, 0, "-u", options.redisUrl);
  if (options.execLog) env.BENCH_EXEC_LOG = options.execLog;
  const proc = new Proc(command, args, { cwd: peersDir, env });
  options.onSpawn?.(proc.pid);
  const stop = () => proc.stop(15_000);
  try {
    if (spec.peer === "celery" || spec.peer === "arq")
      await proc.waitForLine(/bench-ready/, 60_000, `${spec.id} ready`);
    else await waitUntil(spec, proc, () => readyCount(spec, proc, redis));
  } catch (error) {
    await stop();
    throw error;
  }
  return { proc, stop };
}

async function readyCount(spec: PeerSpec, proc: Proc, redis: Redis): Promise<boolean> {
  if (spec.peer === "rq") return (await redis.scard("rq:workers")) >= spec.processes;
  return proc.lines.filter((l) => l.includes("ready for action")).length >= spec.processes;
}

async function waitUntil(spec: PeerSpec, proc: Proc, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await ready())) {
    if (proc.child.exitCode !== null || Date.now() > deadline)
      throw new Error(`${spec.id} did not become ready:\n${proc.tail()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Holds a filled queue back while the worker starts (its key renamed aside) so start-up is
 * never timed and every worker process is up when the first job is claimable; release()
 * renames it back (Redis wakes the workers blocked on a list; arq polls every 0.5 s).
 */
export async function holdQueue(redis: Redis, peer: PeerName): Promise<() => Promise<void>> {
  const staging = `bench-staging:${QUEUE_KEY[peer]}`;
  await redis.rename(QUEUE_KEY[peer], staging);
  return async () => {
    await redis.rename(staging, QUEUE_KEY[peer]);
  };
}

/** One cheap look at a peer's drain: jobs still queued, and whether all may be done. */
async function glance(redis: Redis, peer: PeerName, total: number) {
  const p = redis.pipeline();
  if (peer === "arq") p.zcard(QUEUE_KEY.arq);
  else p.llen(QUEUE_KEY[peer]);
  if (peer === "rq") p.zcard("rq:finished:default").zcard("rq:failed:default");
  else if (peer === "dramatiq") p.hlen("dramatiq:default.msgs");
  else p.dbsize();
  const r = ((await p.exec()) ?? []).map(([e, v]) => {
    if (e) throw e;
    return Number(v);
  });
  const pending = r[0]!;
  // arq keeps a job in its queue until it finishes; its start shows as a new in-progress key.
  const keys = peer === "arq" ? r[1]! : undefined;
  // Celery and arq keep one result key per job: the key count reaching the job count is a
  // cheap hint (other keys count too), confirmed by the exact count in account().
  const maybeDone =
    peer === "rq"
      ? r[1]! + r[2]! >= total
      : peer === "dramatiq"
        ? pending === 0 && r[1]! === 0
        : pending === 0 && r[1]! >= total;
  return { pending, maybeDone, keys };
}

async function countKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 5000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  return keys;
}

/** Exact accounting of a peer's `total` jobs: done (succeeded) and a detail line. */
export async function account(
  redis: Redis,
  peer: PeerName,
  total: number,
): Promise<{ ok: boolean; done: number; detail: string }> {
  const queued = await queueDepth(redis, peer);
  if (peer === "rq") {
    const [finished, failed] = await Promise.all([
      redis.zcard("rq:finished:default"),
      redis.zcard("rq:failed:default"),
    ]);
    const ok = finished === total && failed === 0 && queued === 0;
    return {
      ok,
      done: finished,
      detail: `finished ${finished}/${total}, failed ${failed}, queued ${queued}`,
    };
  }
  if (peer === "dramatiq") {
    const [msgs, delayed, dead] = await Promise.all([
      redis.hlen("dramatiq:default.msgs"),
      redis.hlen("dramatiq:default.DQ.msgs"),
      redis.hlen("dramatiq:default.XQ.msgs"),
    ]);
    const done = total - msgs - delayed - dead;
    const detail = `acked ${done}/${total}, unacked ${msgs}, retrying ${delayed}, dead ${dead}`;
    return { ok: msgs === 0 && delayed === 0 && dead === 0 && queued === 0, done, detail };
  }
  if (peer === "arq") {
    const [results, running] = await Promise.all([
      countKeys(redis, "arq:result:*"),
      countKeys(redis, "arq:in-progress:*"),
    ]);
    const ok = results.length === total && running.length === 0 && queued === 0;
    const detail = `results ${results.length}/${total}, in progress ${running.length}, queued ${queued}`;
    return { ok, done: results.length, detail };
  }
  // Celery: one result per task, its JSON saying SUCCESS (or FAILURE, RETRY, …).
  const keys = await countKeys(redis, "celery-task-meta-*");
  const states = new Map<string, number>();
  for (let i = 0; i < keys.length; i += 2000) {
    for (const value of await redis.mget(keys.slice(i, i + 2000))) {
      const status = value ? ((JSON.parse(value) as { status?: string }).status ?? "?") : "missing";
      states.set(status, (states.get(status) ?? 0) + 1);
    }
  }
  const done = states.get("SUCCESS") ?? 0;
  const detail = `results ${[...states].map(([k, v]) => `${k} ${v}`).join(", ") || "none"} of ${total}, queued ${queued}`;
  return { ok: done === total && keys.length === total && queued === 0, done, detail };
}

/**
 * Watches a peer drain `total` jobs: the window opens at the first probe (every ~2 ms) that
 * sees the queue shorter than `total` (the first claim; arq: the first new key, its first
 * in-progress marker, as its queue keeps jobs until they finish) and closes at the first probe after
 * which the exact count finds every job done. `onStart` runs at the window start.
 */
export async function watchPeerDrain(
  redis: Redis,
  peer: PeerName,
  total: number,
  options: { timeoutMs: number; onStart?: () => void },
): Promise<{ startMs: number; endMs: number }> {
  const deadline = performance.now() + options.timeoutMs;
  let startMs: number | undefined;
  let lastExact = 0;
  let keysAtRelease: number | undefined;
  for (;;) {
    const g = await glance(redis, peer, total);
    const now = performance.now();
    keysAtRelease ??= g.keys;
    const started = g.pending < total || (g.keys ?? 0) > (keysAtRelease ?? Infinity);
    if (startMs === undefined && started) {
      startMs = now;
      options.onStart?.();
    }
    // The exact count scans keys: at most every 20 ms, so it does not load Redis meanwhile.
    if (startMs !== undefined && g.maybeDone && now - lastExact > 20) {
      lastExact = now;
      if ((await account(redis, peer, total)).done >= total) return { startMs, endMs: now };
    }
    if (now > deadline) {
      const a = await account(redis, peer, total);
      throw new Error(`drain timed out after ${options.timeoutMs} ms: ${a.detail}`);
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}
