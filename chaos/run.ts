/**
 * The fault-injection suite: `npm run chaos -- [--quick] [--json FILE] [--seed N]
 * [--only a,b] [--skip a,b] [--no-fuzz] [--fuzz-only] [--fuzz-inputs N] [--keep] [--verbose]`.
 *
 * Runs every scenario (real orchestrator daemons, real runner processes, a real redis-server),
 * checks the invariants over all jobs after each, then the bad-input checks (frame-decoder
 * fuzzers, malformed job hashes, malformed configs). Prints a table and, with --json, writes
 * `{jobs, faults, lost, stale_terminal_writes, stuck, max_recovery_ms, scenarios: {...}, fuzz:
 * {...}}`. Exits 1 when any invariant is violated (other than the known failures listed in
 * known-failures.ts, each with its reason).
 */
import { writeFileSync } from "node:fs";
import { runBadInput, type BadInputReport } from "./fuzz/index.js";
import { KNOWN_FAILURES } from "./known-failures.js";
import { applyKnownFailures, printTable, printViolations, totals } from "./lib/report.js";
import { ScenarioContext, type RunMode, type ScenarioReport } from "./lib/scenario.js";
import { SCENARIOS } from "./scenarios/index.js";

const argv = process.argv.slice(2);
const has = (flag: string) => argv.includes(flag);
const value = (flag: string) => {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
};
const list = (flag: string) => value(flag)?.split(",").filter(Boolean);

if (has("--help") || has("-h")) {
  process.stdout.write(
    `usage: npm run chaos -- [--quick] [--json FILE] [--seed N] [--only a,b] [--skip a,b]\n` +
      `                       [--no-fuzz] [--fuzz-only] [--fuzz-inputs N] [--keep] [--verbose]\n\nscenarios:\n` +
      SCENARIOS.map((s) => `  ${s.name.padEnd(24)}${s.description}\n`).join("") +
      `bad input (after the scenarios): decoder fuzzers, malformed job hashes, malformed configs\n`,
  );
  process.exit(0);
}

const mode: RunMode = {
  quick: has("--quick"),
  seed: Number(value("--seed") ?? Date.now() % 100_000),
  verbose: has("--verbose") || has("-v") || !has("--quick"),
};
const only = list("--only");
const skip = list("--skip") ?? [];
const jsonFile = value("--json");

async function runScenario(
  scenario: (typeof SCENARIOS)[number],
  index: number,
): Promise<ScenarioReport> {
  const started = Date.now();
  const seed = mode.seed + index;
  const ctx = new ScenarioContext(scenario, { ...mode, seed });
  process.stdout.write(`\n▶ ${scenario.name} (seed ${seed}): ${scenario.description}\n`);
  const limitMs = mode.quick ? 90_000 : 30 * 60_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await ctx.setup();
    const ran = scenario.run(ctx).then(() => "done" as const);
    const outcome = await Promise.race([
      ran,
      new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), limitMs))),
    ]);
    if (outcome === "timeout") {
      ctx.extraViolations.push({
        kind: "scenario_error",
        detail: `the scenario's fault phase did not finish within ${limitMs / 1000} s`,
      });
      ran.catch(() => undefined);
    }
    const report = await ctx.finish(mode.quick ? 45_000 : 180_000, started);
    applyKnownFailures(report, KNOWN_FAILURES);
    const verdict = report.passed ? "✓" : "✗";
    process.stdout.write(
      `${verdict} ${scenario.name}: ${report.jobs} jobs (${report.completed} completed, ${report.failed} failed), ${report.faults} faults, ${report.executions} executions, lost ${report.lost}, stale ${report.stale_terminal_writes}, stuck ${report.stuck}, max recovery ${report.max_recovery_ms} ms, ${(report.duration_ms / 1000).toFixed(1)} s\n`,
    );
    return report;
  } catch (error) {
    process.stdout.write(`✗ ${scenario.name}: ${(error as Error).stack ?? String(error)}\n`);
    return {
      name: scenario.name,
      seed,
      jobs: ctx.jobs.size,
      faults: ctx.faults.length,
      faultKinds: {},
      lost: 0,
      stale_terminal_writes: 0,
      duplicate_terminal_writes: 0,
      stuck: 0,
      over_executed: 0,
      max_recovery_ms: 0,
      unrecovered_faults: 0,
      completed: 0,
      failed: 0,
      executions: 0,
      duration_ms: Date.now() - started,
      violations: [{ kind: "scenario_error", detail: (error as Error).stack ?? String(error) }],
      known: [],
      notes: ctx.notes,
      passed: false,
    };
  } finally {
    clearTimeout(timer);
    const keep = has("--keep");
    if (keep) process.stdout.write(`  (files kept in ${ctx.dir})\n`);
    await ctx.cleanup(keep);
  }
}

async function main(): Promise<number> {
  const started = Date.now();
  process.stdout.write(
    `rrqkit chaos suite — ${mode.quick ? "quick" : "full"} mode, seed ${mode.seed}\n`,
  );
  const reports: ScenarioReport[] = [];
  if (!has("--fuzz-only")) {
    const chosen = SCENARIOS.filter(
      (s) => (!only || only.includes(s.name)) && !skip.includes(s.name),
    );
    for (const [i, scenario] of chosen.entries()) reports.push(await runScenario(scenario, i));
  }
  let badInput: BadInputReport | undefined;
  if (!has("--no-fuzz") && (!only || only.some((o) => o.startsWith("fuzz") || o === "bad-input")))
    badInput = await runBadInput(
      mode,
      only,
      value("--fuzz-inputs") ? Number(value("--fuzz-inputs")) : undefined,
    );
  if (reports.length > 0) {
    printTable(reports);
    printViolations(reports);
  }
  const t = totals(reports);
  const failed = reports.filter((r) => !r.passed).map((r) => r.name);
  if (badInput && !badInput.passed) failed.push("bad-input");
  const durationMs = Date.now() - started;
  if (jsonFile) {
    const scenarios = Object.fromEntries(
      reports.map((r) => [
        r.name,
        {
          jobs: r.jobs,
          faults: r.faults,
          lost: r.lost,
          stale_terminal_writes: r.stale_terminal_writes,
          stuck: r.stuck,
          max_recovery_ms: r.max_recovery_ms,
          duplicate_terminal_writes: r.duplicate_terminal_writes,
          over_executed: r.over_executed,
          unrecovered_faults: r.unrecovered_faults,
          fault_kinds: r.faultKinds,
          completed: r.completed,
          failed: r.failed,
          executions: r.executions,
          duration_ms: r.duration_ms,
          seed: r.seed,
          passed: r.passed,
          violations: r.violations,
          known_failures: r.known,
          notes: r.notes,
        },
      ]),
    );
    const doc = {
      mode: mode.quick ? "quick" : "full",
      seed: mode.seed,
      command: `npm run chaos -- ${argv.join(" ")}`.trim(),
      started_at: new Date(started).toISOString(),
      duration_ms: durationMs,
      ...t,
      passed: failed.length === 0,
      scenarios,
      bad_input: badInput ?? null,
    };
    writeFileSync(jsonFile, `${JSON.stringify(doc, null, 2)}\n`);
    process.stdout.write(`\nwrote ${jsonFile}\n`);
  }
  process.stdout.write(
    `\nchaos: ${t.jobs} jobs, ${t.faults} faults, lost ${t.lost}, stale terminal writes ${t.stale_terminal_writes}, stuck ${t.stuck}, max recovery ${t.max_recovery_ms} ms — ${(durationMs / 1000).toFixed(0)} s — ${failed.length === 0 ? "PASSED" : `FAILED (${failed.join(", ")})`}\n`,
  );
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
