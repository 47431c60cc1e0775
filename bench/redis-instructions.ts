/**
 * Redis-side cost of one job, as a machine-independent count: the CPU instructions redis-server
 * executes for the orchestrator's claim and success scripts, counted by valgrind's callgrind.
 * Wall-clock and CPU-time figures on this shared machine drift by ±20 % from one run to the
 * next; an instruction count repeats to within 0.2 %, so a Lua change of a few percent can be
 * measured before and after.
 *
 *   npx tsx bench/redis-instructions.ts [--system rrqkit|bullmq] [--jobs 2000] [--batch 64]
 *     [--depth 0] [--redis-config "name value"]...
 *
 * Starts redis-server under callgrind (instrumentation off until the drain) on a free port,
 * enqueues `--jobs` no-op jobs with the producer, then (counting only from here) drains them as
 * the orchestrator does: claim up to `--batch` jobs, then complete the previous claim's jobs
 * with one batched success write, so the worker's active set and the lease index hold one or
 * two batches, as in a burn-down with that many jobs in flight.
 *
 * - `--system bullmq` counts BullMQ's Worker instead (in this process, concurrency `--batch`,
 *   default retention, jobs added with addBulk): the same count for the peer.
 * - `--depth N` (rrqkit) enqueues N more jobs behind the measured ones, which stay pending while
 *   the measured jobs drain: the count at 1M pending against 1k.
 * - `--redis-config "name value"` (repeatable) sets a redis-server config directive, for an A/B
 *   of a server setting (e.g. `--redis-config "zset-max-listpack-entries 0"`).
 *
 * `KEEP_CALLGRIND=1` keeps the callgrind output (its directory is printed) for
 * `callgrind_annotate`.
 *
 * Needs `valgrind` (apt-get install valgrind).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startRedis } from "../src/conformance/redis-server.js";
import { Producer } from "../src/producer/producer.js";
import { JobStore, type ClaimedJob } from "../src/store/job-store.js";
import { Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "2000" },
    batch: { type: "string", default: "64" },
    "redis-config": { type: "string", multiple: true, default: [] },
    system: { type: "string", default: "rrqkit" },
    depth: { type: "string", default: "0" },
  },
});
const jobs = Number(values.jobs);
const batch = Number(values.batch);
const depth = Number(values.depth);
if (!Number.isInteger(jobs) || jobs < 1 || !Number.isInteger(batch) || batch < 1) {
  throw new Error("--jobs and --batch must be positive integers");
}
if (!Number.isInteger(depth) || depth < 0) throw new Error("--depth must be an integer >= 0");
if (depth > 0 && values.system === "bullmq") throw new Error("--depth applies to rrqkit only");
if (values.system !== "rrqkit" && values.system !== "bullmq") {
  throw new Error(`--system must be rrqkit or bullmq, not '${values.system}'`);
}
for (const tool of ["valgrind", "callgrind_control"]) {
  if (spawnSync(tool, ["--version"]).error) {
    throw new Error(`${tool} not found: install valgrind (apt-get install valgrind)`);
  }
}

// "name value" becomes `--name value`, each word single-quoted for the wrapper's shell.
const extraArgs = values["redis-config"]
  .flatMap((directive) => `--${directive.trim()}`.split(/\s+/))
  .map((word) => `'${word.replaceAll("'", "'\\''")}'`)
  .join(" ");
const dir = mkdtempSync(join(tmpdir(), "rrq-callgrind-"));
const wrapper = join(dir, "redis-under-callgrind.sh");
writeFileSync(
  wrapper,
  `#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=${dir}/out.%p redis-server "$@" ${extraArgs}\n`,
);
chmodSync(wrapper, 0o755);
process.env.REDIS_SERVER = wrapper;
const server = await startRedis({ databases: 1, startTimeoutMs: 60_000 });
const pid = server.process.pid!;
const control = (flag: string) => {
  const r = spawnSync("callgrind_control", [flag, String(pid)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`callgrind_control ${flag} failed: ${r.stderr}`);
};

/** rrqkit's drain: claim a batch, then complete the previous batch in one batched write. */
async function drainRrqkit(url: string, client: Redis): Promise<number> {
  const producer = new Producer({ redisDsn: url });
  // The measured jobs first (the oldest scores, so they are claimed first), then `depth` more
  // that stay pending behind them.
  for (let i = 0; i < jobs + depth; i += 1000) {
    const n = Math.min(1000, jobs + depth - i);
    await producer.enqueueMany(
      Array.from({ length: n }, (_, k) => ({ functionName: "echo", params: { i: i + k } })),
    );
  }
  await producer.close();

  const store = new JobStore(client);
  const worker = "rrq_worker_bench_callgrind";
  const complete = (claimed: ClaimedJob[]) =>
    Promise.all(
      claimed.map((job) =>
        store.completeSuccess(
          { jobId: job.id, workerId: worker, fence: job.hash.lease_fence! },
          '{"ok":true}',
          86_400,
        ),
      ),
    );
  control("--instr=on"); // count from here: the drain only
  let previous: ClaimedJob[] = [];
  let done = 0;
  let taken = 0;
  for (;;) {
    const ask = Math.min(batch, jobs - taken);
    const { claimed } =
      ask > 0
        ? await store.claim("rrq:queue:default", worker, ask, 60_000)
        : { claimed: [] as ClaimedJob[] };
    taken += claimed.length;
    await complete(previous);
    done += previous.length;
    previous = claimed;
    if (claimed.length === 0) break;
  }
  control("-d");
  return done;
}

/** BullMQ's drain: its Worker in this process, concurrency `--batch`, default retention. */
async function drainBullmq(url: string): Promise<number> {
  const { hostname, port } = new URL(url);
  const connection = { host: hostname, port: Number(port), maxRetriesPerRequest: null };
  const queue = new Queue("bench", { connection });
  for (let i = 0; i < jobs; i += 1000) {
    const n = Math.min(1000, jobs - i);
    await queue.addBulk(
      Array.from({ length: n }, (_, k) => ({ name: "echo", data: { i: i + k } })),
    );
  }
  let done = 0;
  let drained!: () => void;
  const finished = new Promise<void>((resolve) => (drained = resolve));
  const worker = new Worker("bench", (job) => Promise.resolve(job.data as unknown), {
    connection,
    concurrency: batch,
    autorun: false,
  });
  worker.on("completed", () => {
    if (++done === jobs) drained();
  });
  await worker.waitUntilReady();
  control("--instr=on"); // count from here: the drain only
  void worker.run();
  await finished;
  control("-d");
  await worker.close();
  await queue.close();
  return done;
}

try {
  const done =
    values.system === "bullmq"
      ? await drainBullmq(server.url(0))
      : await drainRrqkit(server.url(0), server.client(0));
  const dump = readdirSync(dir).find((f) => /^out\.\d+\.\d+$/.test(f));
  const totals = dump && /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, dump), "utf8"));
  if (!totals) throw new Error(`no callgrind dump in ${dir}`);
  const perJob = Math.round(Number(totals[1]) / done);
  const what = values.system === "bullmq" ? `concurrency ${batch}` : `batches of ${batch}`;
  process.stdout.write(
    `${values.system}: ${done} jobs, ${what}: ${perJob.toLocaleString("en")} redis-server instructions per job (claim + success)\n`,
  );
} finally {
  await server.stop();
  if (process.env.KEEP_CALLGRIND) process.stdout.write(`callgrind output kept in ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
}
