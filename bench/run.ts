/**
 * `npm run bench -- [--quick] [--json FILE] [--scenario GLOB[,GLOB]] [--reps N] [--jobs N]`
 *
 * Side-by-side benchmarks of rrqkit against BullMQ and RRQ 0.11's orchestrator, on one machine,
 * one fresh redis-server per scenario, contenders back to back (a warm-up round, then `reps`
 * rounds, rotating the order), reporting medians, spread and per-repetition ratios
 * (bench/README.md explains every scenario; bench/RESULTS.md holds a full run).
 *
 * Scenarios: burndown, enqueue, latency, cost, scaling, flow, live, python (against Celery, RQ,
 * arq, Dramatiq), rust (against a Rust job queue). `--quick` runs all of them at small
 * sizes for `npm test`: it checks that every scenario completes and every job is accounted for
 * (exit status 1 otherwise); its timings mean nothing.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join, relative } from "node:path";
import { parseArgs } from "node:util";
import type { BenchContext } from "./lib/context.js";
import { consumerAvailable, type ConsumerSpec } from "./lib/consumers.js";
import { paths } from "./lib/paths.js";
import { freshRedis } from "./lib/redis.js";
import { formatCase, type Case } from "./lib/report.js";
import { runBurnDown } from "./scenarios/burndown.js";
import { runCost } from "./scenarios/cost.js";
import { runEnqueue } from "./scenarios/enqueue.js";
import { runFlow } from "./scenarios/flow.js";
import { runLatency } from "./scenarios/latency.js";
import { runLive } from "./scenarios/live.js";
import { runPythonRace } from "./scenarios/python-race.js";
import { runRustRace } from "./scenarios/rust-race.js";
import { runScaling } from "./scenarios/scaling.js";
import { burnDownContenders } from "./lib/specs.js";

const GROUPS = [
  "burndown",
  "enqueue",
  "latency",
  "cost",
  "scaling",
  "flow",
  "live",
  "python",
  "rust",
] as const;
type Group = (typeof GROUPS)[number];

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    json: { type: "string" },
    scenario: { type: "string" },
    reps: { type: "string" },
    jobs: { type: "string" },
    contenders: { type: "string" },
  },
});
const quick = values.quick;
const reps = Number(values.reps ?? (quick ? 1 : 3));
const jobs = Number(values.jobs ?? (quick ? 1000 : 50_000));
const jsonFile =
  values.json ?? join(paths.root, "bench", "results", quick ? "quick.json" : "latest.json");

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}
const patterns = (values.scenario ?? "*").split(",").map((g) => globToRegExp(g.trim()));
const contenderPatterns = (values.contenders ?? "*").split(",").map((g) => globToRegExp(g.trim()));
const selected = new Set<Group>(GROUPS.filter((g) => patterns.some((p) => p.test(g))));
if (selected.size === 0) {
  process.stderr.write(
    `no scenario matches '${values.scenario}'; scenarios: ${GROUPS.join(", ")}\n`,
  );
  process.exit(2);
}

const started = Date.now();
const log = (message: string) =>
  process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${message}\n`);

function tryRun(command: string, args: string[]): string | undefined {
  try {
    return execFileSync(command, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return undefined;
  }
}

/** Warns when the compiled orchestrator is older than its sources (run `npm run build`). */
function checkBuild(): void {
  if (!existsSync(paths.rrqkitDist) || !existsSync(paths.nodeRunner)) {
    process.stderr.write("dist/ is missing: run `npm run build` first\n");
    process.exit(2);
  }
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const entry of tryRun("find", [dir, "-name", "*.ts"])?.split("\n") ?? []) {
      if (!entry || entry.includes("/conformance/")) continue;
      const js = join(paths.root, "dist", relative(paths.root, entry)).replace(/\.ts$/, ".js");
      if (existsSync(js) && statSync(entry).mtimeMs > statSync(js).mtimeMs) stale.push(entry);
    }
  };
  walk(join(paths.root, "src"));
  if (stale.length)
    log(
      `WARNING: dist/ is older than ${stale.length} source file(s) (e.g. ${relative(paths.root, stale[0]!)}); run \`npm run build\``,
    );
}

/** Builds the Rust runner and enqueue helper for the profile (no-ops when up to date). */
function buildRust(profile: "release" | "debug"): boolean {
  const flag = profile === "release" ? ["--release"] : [];
  const env = { ...process.env, CARGO_TARGET_DIR: paths.rustTarget };
  const steps: Array<[string, string[]]> = [
    // With otel, like runners/rust/ci.sh: the same binary serves `rrq conformance`, which
    // checks its spans; a build without it would replace that one in the debug profile.
    [paths.rustDir, ["build", ...flag, "--example", "conformance_runner", "--features", "otel"]],
    [paths.rustEnqueueDir, ["build", ...flag]],
  ];
  for (const [cwd, args] of steps) {
    log(`cargo ${args.join(" ")} (in ${relative(paths.root, cwd)})`);
    const r = spawnSync("cargo", args, { cwd, env, stdio: ["ignore", "ignore", "pipe"] });
    if (r.status !== 0) {
      log(
        `WARNING: Rust build failed; Rust contenders are skipped:\n${r.stderr?.toString() ?? ""}`,
      );
      return false;
    }
  }
  return true;
}

function machine(): Record<string, unknown> {
  const bullmq = JSON.parse(
    readFileSync(join(paths.root, "node_modules", "bullmq", "package.json"), "utf8"),
  ) as { version: string };
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    redis: tryRun("redis-server", ["--version"]),
    bullmq: bullmq.version,
    rrq: tryRun(paths.python, ["-c", "import importlib.metadata as m; print(m.version('rrq'))"]),
    commit: tryRun("git", ["-C", paths.root, "rev-parse", "--short", "HEAD"]),
    dirty:
      (tryRun("git", ["-C", paths.root, "status", "--porcelain", "src", "runners"]) ?? "") !== "",
  };
}

async function main(): Promise<number> {
  checkBuild();
  const rustProfile = quick ? "debug" : "release";
  const rustOk = buildRust(rustProfile);
  const available = (spec: ConsumerSpec) =>
    (spec.runner?.lang !== "rust" || rustOk) && consumerAvailable(spec, rustProfile);
  const skipped = burnDownContenders().filter((s) => !available(s));
  for (const s of skipped) log(`WARNING: skipping ${s.label} (its programs are not installed)`);

  const cases: Case[] = [];
  const workDir = mkdtempSync(join(tmpdir(), "rrq-bench-"));
  const meta = {
    command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
    started_at: new Date(started).toISOString(),
    quick,
    reps,
    jobs,
    machine: machine(),
    loadavg_before: loadavg().map((v) => Number(v.toFixed(2))),
    skipped: skipped.map((s) => s.id),
  };
  log(`machine: ${JSON.stringify(meta.machine)}; load ${meta.loadavg_before.join(" ")}`);
  const loads: number[] = [];
  const loadTimer = setInterval(() => loads.push(loadavg()[0]!), 5000);
  let failed = false;
  let port = 20_000;
  try {
    for (const group of GROUPS) {
      if (!selected.has(group)) continue;
      // A fresh redis-server per scenario (persistence off, same arguments every time).
      const redis = await freshRedis();
      const ctx: BenchContext = {
        quick,
        reps,
        jobs,
        redisUrl: redis.url,
        redis: redis.client,
        workDir,
        rustProfile,
        log,
        addCase: (c) => {
          cases.push(c);
          return c;
        },
        includes: (id) => contenderPatterns.some((p) => p.test(id)),
        // TCP runner ports stay below Linux's ephemeral range (32768-60999): a port in it can be
        // held by any outgoing connection (RRQ's orchestrator then refuses to start: seen in CI).
        nextPortBase: () => (port = port >= 32_000 ? 20_000 : port + 400),
      };
      log(`scenario ${group} (redis ${redis.url})`);
      const before = cases.length;
      try {
        if (group === "burndown")
          await runBurnDown(ctx, burnDownContenders().filter(available), { throughputCase: true });
        else if (group === "enqueue") await runEnqueue(ctx, { rust: rustOk });
        else if (group === "latency") await runLatency(ctx);
        else if (group === "cost")
          await runCost(ctx, { burnDownRan: selected.has("burndown"), available });
        else if (group === "scaling") await runScaling(ctx);
        else if (group === "flow") await runFlow(ctx);
        else if (group === "live") await runLive(ctx);
        else if (group === "python") await runPythonRace(ctx);
        else await runRustRace(ctx);
      } catch (error) {
        failed = true;
        log(`scenario ${group} FAILED: ${(error as Error).stack ?? String(error)}`);
      } finally {
        await redis.stop();
      }
      for (const c of cases.slice(before)) process.stdout.write(`${formatCase(c)}\n`);
    }
  } finally {
    clearInterval(loadTimer);
    rmSync(workDir, { recursive: true, force: true });
  }
  const notOk = cases.filter((c) => !c.ok);
  const report = {
    ...meta,
    finished_at: new Date().toISOString(),
    duration_seconds: Math.round((Date.now() - started) / 1000),
    loadavg_after: loadavg().map((v) => Number(v.toFixed(2))),
    loadavg_1m_max_during: loads.length ? Number(Math.max(...loads).toFixed(2)) : null,
    ok: !failed && notOk.length === 0,
    scenarios: cases.map((c) => c.toJSON()),
  };
  mkdirSync(dirname(jsonFile), { recursive: true });
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  log(`wrote ${relative(process.cwd(), jsonFile)}`);
  if (!report.ok) {
    log(`NOT OK: ${failed ? "a scenario failed; " : ""}${notOk.map((c) => c.id).join(", ")}`);
    return 1;
  }
  log(`all scenarios completed and every job was accounted for (${report.duration_seconds}s)`);
  return 0;
}

process.exitCode = await main();
