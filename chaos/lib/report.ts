import type { KnownFailure, ScenarioReport } from "./scenario.js";

/** The totals the issue asks for. */
export interface Totals {
  jobs: number;
  faults: number;
  lost: number;
  stale_terminal_writes: number;
  duplicate_terminal_writes: number;
  stuck: number;
  over_executed: number;
  max_recovery_ms: number;
}

export function totals(reports: readonly ScenarioReport[]): Totals {
  const sum = (key: keyof Totals) => reports.reduce((n, r) => n + r[key], 0);
  return {
    jobs: sum("jobs"),
    faults: sum("faults"),
    lost: sum("lost"),
    stale_terminal_writes: sum("stale_terminal_writes"),
    duplicate_terminal_writes: sum("duplicate_terminal_writes"),
    stuck: sum("stuck"),
    over_executed: sum("over_executed"),
    max_recovery_ms: reports.reduce((m, r) => Math.max(m, r.max_recovery_ms), 0),
  };
}

/** Splits a report's violations into known (listed in known-failures.ts) and unexpected ones. */
export function applyKnownFailures(report: ScenarioReport, known: readonly KnownFailure[]): void {
  const unexpected = [];
  for (const v of report.violations) {
    const k = known.find(
      (f) =>
        f.scenario === report.name && f.kind === v.kind && (!f.match || f.match.test(v.detail)),
    );
    if (k) report.known.push({ ...v, finding: k.finding });
    else unexpected.push(v);
  }
  report.violations = unexpected;
  report.passed = unexpected.length === 0;
}

const pad = (s: string | number, n: number) => String(s).padStart(n);

/** The summary table. */
export function printTable(reports: readonly ScenarioReport[]): void {
  const head = `${"scenario".padEnd(22)}${pad("jobs", 7)}${pad("faults", 7)}${pad("lost", 6)}${pad("stale", 7)}${pad("dup", 5)}${pad("stuck", 7)}${pad("overrun", 8)}${pad("max rec ms", 11)}  result`;
  process.stdout.write(`\n${head}\n${"-".repeat(head.length + 6)}\n`);
  for (const r of reports) {
    const verdict = r.passed
      ? r.known.length
        ? `ok (${r.known.length} known: ${[...new Set(r.known.map((k) => k.finding))].join(",")})`
        : "ok"
      : `FAIL (${r.violations.length})`;
    process.stdout.write(
      `${r.name.padEnd(22)}${pad(r.jobs, 7)}${pad(r.faults, 7)}${pad(r.lost, 6)}${pad(r.stale_terminal_writes, 7)}${pad(r.duplicate_terminal_writes, 5)}${pad(r.stuck, 7)}${pad(r.over_executed, 8)}${pad(r.max_recovery_ms, 11)}  ${verdict}\n`,
    );
  }
  const t = totals(reports);
  process.stdout.write(
    `${"TOTAL".padEnd(22)}${pad(t.jobs, 7)}${pad(t.faults, 7)}${pad(t.lost, 6)}${pad(t.stale_terminal_writes, 7)}${pad(t.duplicate_terminal_writes, 5)}${pad(t.stuck, 7)}${pad(t.over_executed, 8)}${pad(t.max_recovery_ms, 11)}\n`,
  );
}

/** Violation details of failed scenarios (and known ones, shorter). */
export function printViolations(reports: readonly ScenarioReport[]): void {
  for (const r of reports) {
    if (r.violations.length === 0 && r.known.length === 0 && r.notes.length === 0) continue;
    process.stdout.write(`\n${r.name} (seed ${r.seed}):\n`);
    for (const note of r.notes) process.stdout.write(`  note: ${note}\n`);
    for (const v of r.violations.slice(0, 15))
      process.stdout.write(`  ✗ ${v.kind}${v.job ? ` job ${v.job}` : ""}: ${v.detail}\n`);
    if (r.violations.length > 15)
      process.stdout.write(`  … and ${r.violations.length - 15} more\n`);
    const knownKinds = new Map<string, number>();
    for (const k of r.known)
      knownKinds.set(`${k.finding} ${k.kind}`, (knownKinds.get(`${k.finding} ${k.kind}`) ?? 0) + 1);
    for (const [key, n] of knownKinds) {
      const example = r.known.find((k) => `${k.finding} ${k.kind}` === key)!;
      process.stdout.write(
        `  known ${key} ×${n}, e.g. ${example.job ?? ""}: ${example.detail.slice(0, 300)}\n`,
      );
    }
  }
}
