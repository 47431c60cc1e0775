/**
 * Redis-side cost of one job, as a machine-independent count: the CPU instructions redis-server
 * executes for the orchestrator's claim and success scripts, counted by valgrind's callgrind.
 * Wall-clock and CPU-time figures on this shared machine drift by ±20 % from one run to the
 * next; an instruction count repeats to within 0.2 %, so a Lua change of a few percent can be
 * measured before and after.
 *
 *   npx tsx bench/redis-instructions.ts [--jobs 2000] [--batch 64] [--redis-config "name value"]...
 *
 * Starts redis-server under callgrind on a free port, enqueues `--jobs` no-op jobs with the
 * producer, then (counting only from here) drains them as the orchestrator does: claim up to
 * `--batch` jobs, then complete the previous claim's jobs with one batched success write, so
 * the worker's active set and the lease index hold one or two batches, as in a burn-down with
 * that many jobs in flight. `--redis-config` (repeatable) sets a redis-server config directive, for
 * an A/B of a server setting (e.g. `--redis-config "zset-max-listpack-entries 0"`). Needs `valgrind`
 * (apt-get install valgrind).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startRedis } from "../src/conformance/redis-server.js";
import { Producer } from "../src/producer/producer.js";
import { JobStore, type ClaimedJob } from "../src/store/job-store.js";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "2000" },
    batch: { type: "string", default: "64" },
    "redis-config": { type: "string", multiple: true, default: [] },
  },
});
const jobs = Number(values.jobs);
const batch = Number(values.batch);
if (!Number.isInteger(jobs) || jobs < 1 || !Number.isInteger(batch) || batch < 1) {
  throw new Error("--jobs and --batch must be positive integers");
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
  `#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=${dir}/out.%p redis-server "$@" ${extraArgs}\n`,
);
chmodSync(wrapper, 0o755);
process.env.REDIS_SERVER = wrapper;
const server = await startRedis({ databases: 1, startTimeoutMs: 60_000 });
const pid = server.process.pid!;
const control = (flag: string) => {
  const r = spawnSync("callgrind_control", [flag, String(pid)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`callgrind_control ${flag} failed: ${r.stderr}`);
};

try {
  const producer = new Producer({ redisDsn: server.url(0) });
  for (let i = 0; i < jobs; i += 1000) {
    const n = Math.min(1000, jobs - i);
    await producer.enqueueMany(
      Array.from({ length: n }, (_, k) => ({ functionName: "echo", params: { i: i + k } })),
    );
  }
  await producer.close();

  const store = new JobStore(server.client(0));
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
  control("-z"); // count from here: the drain only
  let previous: ClaimedJob[] = [];
  let done = 0;
  for (;;) {
    const { claimed } = await store.claim("rrq:queue:default", worker, batch, 60_000);
    await complete(previous);
    done += previous.length;
    previous = claimed;
    if (claimed.length === 0) break;
  }
  control("-d");
  const dump = readdirSync(dir).find((f) => /^out\.\d+\.\d+$/.test(f));
  const totals = dump && /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, dump), "utf8"));
  if (!totals) throw new Error(`no callgrind dump in ${dir}`);
  const perJob = Math.round(Number(totals[1]) / done);
  process.stdout.write(
    `${done} jobs, batches of ${batch}: ${perJob.toLocaleString("en")} redis-server instructions per job (claim + success)\n`,
  );
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
