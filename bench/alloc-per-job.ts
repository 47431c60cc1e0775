/**
 * Bytes the orchestrator daemon allocates per job over a burn-down, and where.
 *
 *   npx tsx bench/alloc-per-job.ts [--transport unix|inprocess] [--jobs 20000] [--reps 3]
 *     [--sites] [--top 20] [--cli path/to/bin/rrq.js]
 *
 * Fills `--jobs` no-op jobs, holds them aside (the queue ZSET renamed, as the bench's burn-down
 * does), starts the daemon as the bench does (`bin/rrq.js worker run`, same configuration as
 * contender rrqkit-node-unix-json or rrqkit-node-inprocess) with a small preload module, then
 * releases the jobs. The preload opens its window on a first SIGUSR2, sent just before the
 * release, and closes it on a second one, sent once the queue and the worker's active set are
 * empty. Start-up, and the warm-up it does, is never counted.
 *
 * The figure: V8's GCProfiler (node:v8) records the used heap before and after every collection
 * in the window. Bytes allocated = growth of the used heap between collections (every object
 * allocated lands in the used heap until a collection frees it) summed over the window, plus the
 * growth since the last collection. It counts every JS heap allocation (new space, old space,
 * large objects) exactly, not a sample, so it repeats within a few percent; off-heap memory
 * (Buffer backing stores) is not in it. GC time and count come from the same records, and the
 * daemon's CPU time over the window from process.cpuUsage() (noisy on a shared machine, unlike
 * the bytes: compare builds in alternating runs).
 *
 * `--sites` also runs V8's sampling heap profiler (in the daemon, through node:inspector, with
 * objects collected by minor and major GCs included, 4 KB interval) over the same window and
 * prints the top allocation sites per job: by function (self), and by the nearest frame in
 * rrqkit's own code (dist/, runners/node/dist/) so allocations inside Node or a dependency are
 * charged to the rrqkit function that caused them. The profiler itself allocates, so the totals
 * of a `--sites` run are a little higher: compare totals between runs without it.
 *
 * `--cli` measures another build's bin/rrq.js (A/B: copy dist/, bin/, package.json and
 * src/store/lua/ elsewhere, symlink node_modules), as BENCH_RRQKIT_CLI does for the bench.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startConsumer, RRQ_QUEUE, type ConsumerSpec } from "./lib/consumers.js";
import { fill, watchDrain } from "./lib/jobs.js";
import { freshRedis, resetServer } from "./lib/redis.js";
import { OURS_BEST, OURS_INPROCESS } from "./lib/specs.js";

const { values } = parseArgs({
  options: {
    transport: { type: "string", default: "unix" },
    jobs: { type: "string", default: "20000" },
    reps: { type: "string", default: "3" },
    sites: { type: "boolean", default: false },
    top: { type: "string", default: "20" },
    cli: { type: "string" },
  },
});

/** The preload: opens and closes the measured window on SIGUSR2, writes RRQ_ALLOC_OUT. */
const HOOK = `
import v8 from "node:v8";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
const out = process.env.RRQ_ALLOC_OUT;
const withSites = process.env.RRQ_ALLOC_SITES === "1";
let profiler;
let startUsed = 0;
let startCpu;
let session;
process.on("SIGUSR2", () => {
  if (!profiler) {
    if (withSites) {
      session = new Session();
      session.connect();
      session.post("HeapProfiler.startSampling", {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    }
    profiler = new v8.GCProfiler();
    startUsed = v8.getHeapStatistics().used_heap_size;
    startCpu = process.cpuUsage();
    profiler.start();
    return;
  }
  const record = profiler.stop();
  const endUsed = v8.getHeapStatistics().used_heap_size;
  let allocated = 0;
  let previous = startUsed;
  let gcMicros = 0;
  const byType = {};
  for (const gc of record.statistics) {
    allocated += gc.beforeGC.heapStatistics.usedHeapSize - previous;
    previous = gc.afterGC.heapStatistics.usedHeapSize;
    gcMicros += gc.cost;
    byType[gc.gcType] = (byType[gc.gcType] ?? 0) + 1;
  }
  allocated += endUsed - previous;
  const cpu = process.cpuUsage(startCpu);
  const result = { allocated, gcMicros, byType, cpuMicros: cpu.user + cpu.system };
  if (!withSites) return writeFileSync(out, JSON.stringify(result));
  session.post("HeapProfiler.stopSampling", (error, reply) => {
    result.profile = error ? null : reply.profile;
    writeFileSync(out, JSON.stringify(result));
    session.disconnect();
  });
});
`;

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

interface WindowResult {
  allocated: number;
  /** The daemon's CPU time (user + system) over the window, µs. */
  cpuMicros: number;
  gcMicros: number;
  byType: Record<string, number>;
  profile?: { head: ProfileNode } | null;
}

const jobs = Number(values.jobs);
const reps = Number(values.reps);
const spec: ConsumerSpec = {
  ...(values.transport === "inprocess" ? OURS_INPROCESS : OURS_BEST),
  ...(values.cli ? { cli: values.cli } : {}),
};
if (!["unix", "inprocess"].includes(values.transport))
  throw new Error(`--transport must be unix or inprocess, not ${values.transport}`);

/** rrqkit's own code: compiled daemon and runner runtime (not node_modules, not node:). */
const isOwn = (url: string) =>
  (url.includes("/dist/src/") || url.includes("/runners/node/dist/")) &&
  !url.includes("node_modules");

const siteName = (frame: ProfileNode["callFrame"]) =>
  `${frame.functionName || "(anonymous)"} ${frame.url.replace(/^.*\/(dist|node_modules)\//, "$1/")}:${frame.lineNumber + 1}`;

/** Per-job bytes by self site and by the nearest rrqkit frame on the stack. */
function sites(head: ProfileNode): { self: Map<string, number>; own: Map<string, number> } {
  const self = new Map<string, number>();
  const own = new Map<string, number>();
  const walk = (node: ProfileNode, nearestOwn: string) => {
    const name = siteName(node.callFrame);
    const charged = isOwn(node.callFrame.url) ? name : nearestOwn;
    if (node.selfSize) {
      self.set(name, (self.get(name) ?? 0) + node.selfSize);
      own.set(charged, (own.get(charged) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, charged);
  };
  walk(head, "(outside rrqkit code)");
  return { self, own };
}

function printTop(title: string, map: Map<string, number>, total: number): void {
  console.log(`\n${title} (bytes per job, share of the sampled total)`);
  const rows = [...map].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top));
  for (const [name, bytes] of rows)
    console.log(
      `  ${(bytes / jobs).toFixed(0).padStart(6)}  ${((bytes / total) * 100).toFixed(1).padStart(5)} %  ${name}`,
    );
}

async function oneRun(
  redis: Awaited<ReturnType<typeof freshRedis>>,
  workDir: string,
  rep: number,
): Promise<WindowResult> {
  await resetServer(redis.client);
  await fill(redis.url, "rrqkit", jobs, { keepIds: false });
  const staging = "rrq:queue:alloc-staging";
  await redis.client.rename(RRQ_QUEUE, staging);
  const out = join(workDir, `alloc-${rep}.json`);
  process.env.RRQ_ALLOC_OUT = out;
  process.env.RRQ_ALLOC_SITES = values.sites ? "1" : "0";
  process.env.RRQ_NODE_OPTIONS = `--import=${join(workDir, "alloc-hook.mjs")}`;
  const consumer = await startConsumer(
    spec,
    { redisUrl: redis.url, workDir, portBase: 47000 + rep * 10, rustProfile: "debug" },
    redis.client,
  );
  try {
    const pid = consumer.pids[0]!;
    process.kill(pid, "SIGUSR2");
    await redis.client.rename(staging, RRQ_QUEUE);
    await redis.client.publish(`rrq:wake:${RRQ_QUEUE}`, "0");
    const window = await watchDrain(redis.client, "rrqkit", {
      from: jobs,
      to: 0,
      timeoutMs: 60_000 + jobs * 2,
      workerIds: () => consumer.workerIds,
    });
    process.kill(pid, "SIGUSR2");
    const deadline = Date.now() + 30_000;
    while (!existsSync(out)) {
      if (Date.now() > deadline) throw new Error(`no allocation record:\n${consumer.output()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 50)); // the write is one writeFileSync
    const result = JSON.parse(readFileSync(out, "utf8")) as WindowResult;
    const seconds = (window.endMs - window.startMs) / 1000;
    console.log(
      `rep ${rep + 1}: ${(result.allocated / jobs).toFixed(0)} B/job, CPU ${(result.cpuMicros / jobs).toFixed(1)} µs/job, ` +
        `GC ${(result.gcMicros / jobs).toFixed(2)} µs/job ` +
        `(${JSON.stringify(result.byType)}), ${(jobs / seconds).toFixed(0)} jobs/s`,
    );
    return result;
  } finally {
    await consumer.stop();
  }
}

async function main(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), "rrq-alloc-"));
  writeFileSync(join(workDir, "alloc-hook.mjs"), HOOK);
  const redis = await freshRedis();
  console.log(`${spec.id}, ${jobs} jobs, ${reps} reps${values.sites ? ", with sites" : ""}`);
  try {
    const results: WindowResult[] = [];
    for (let rep = 0; rep < reps; rep++) results.push(await oneRun(redis, workDir, rep));
    const perJob = results.map((r) => r.allocated / jobs).sort((a, b) => a - b);
    const median = perJob[Math.floor(perJob.length / 2)]!;
    const spread = ((perJob.at(-1)! - perJob[0]!) / median) * 100;
    console.log(
      `\ndaemon allocation: median ${(median / 1024).toFixed(2)} KB/job ` +
        `(${perJob.map((b) => (b / 1024).toFixed(2)).join(", ")}; spread ${spread.toFixed(1)} %)`,
    );
    // CPU time moves with the load on a shared machine: compare builds in alternating runs
    const cpu = results.map((r) => r.cpuMicros / jobs).sort((a, b) => a - b);
    const gc = results.map((r) => r.gcMicros / jobs).sort((a, b) => a - b);
    console.log(
      `daemon CPU: median ${cpu[Math.floor(cpu.length / 2)]!.toFixed(1)} µs/job ` +
        `(${cpu.map((c) => c.toFixed(1)).join(", ")}); GC median ${gc[Math.floor(gc.length / 2)]!.toFixed(1)} µs/job`,
    );
    const profile = results.at(-1)?.profile;
    if (profile) {
      const { self, own } = sites(profile.head);
      const total = [...self.values()].reduce((a, b) => a + b, 0);
      console.log(`sampled total of the last rep: ${(total / jobs / 1024).toFixed(2)} KB/job`);
      printTop("top sites (self)", self, total);
      printTop("top sites (nearest rrqkit frame)", own, total);
    }
  } finally {
    await redis.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

await main();
