import { readFileSync, writeFileSync } from "node:fs";
import { CorpusError } from "./cases.js";
import type { Failure } from "./runner-script.js";

/** The result of one case on one binding and variant. */
export interface Result {
  /** `binding:variant:case-id` (variant: `tcp/json`, or `producer`). */
  id: string;
  binding: string;
  /** Transport/encoding for runner and e2e cases, `producer` for producer cases. */
  variant: string;
  caseId: string;
  /** xfail: a listed known failure that still fails (counted as skipped). */
  status: "pass" | "fail" | "skip" | "xfail";
  failures: Failure[];
  /** Why skipped or why listed. */
  note?: string;
  spec: string[];
  ms: number;
}

/** Totals for the closing line. */
export interface Totals {
  passed: number;
  failed: number;
  skipped: number;
}

const LABEL: Record<Result["status"], string> = {
  pass: "PASS ",
  fail: "FAIL ",
  skip: "SKIP ",
  xfail: "XFAIL",
};

/** The report line(s) of one result. */
export function formatResult(r: Result): string {
  const head = `${LABEL[r.status]} ${r.binding} ${r.variant} ${r.caseId}`;
  const lines = [r.note && r.status !== "fail" ? `${head}  (${r.note})` : head];
  if (r.status === "fail") {
    for (const f of r.failures) lines.push(`      rule: ${f.rule}`, `        ${f.message}`);
    if (r.note) lines.push(`      ${r.note}`);
    if (r.spec.length) lines.push(`      spec: ${r.spec.join(", ")}`);
  }
  return lines.join("\n");
}

/** Counts results: known failures that still fail count as skipped. */
export function totals(results: readonly Result[]): Totals {
  const t = { passed: 0, failed: 0, skipped: 0 };
  for (const r of results) {
    if (r.status === "pass") t.passed++;
    else if (r.status === "fail") t.failed++;
    else t.skipped++;
  }
  return t;
}

/** The closing line: `conformance: N passed, M failed` plus `, K skipped` when any. */
export function closingLine(t: Totals): string {
  return `conformance: ${t.passed} passed, ${t.failed} failed${t.skipped ? `, ${t.skipped} skipped` : ""}`;
}

/** Writes the machine-readable report. */
export function writeJsonReport(
  path: string,
  results: readonly Result[],
  started: Date,
  seconds: number,
): void {
  const report = { started: started.toISOString(), seconds, totals: totals(results), results };
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
}

type Area = "runner" | "e2e" | "producer";

/** Passed and total results of one binding in one area, and on which variants they ran. */
interface Cell {
  pass: number;
  total: number;
  variants: Set<string>;
}

function cellText(cell: Cell | undefined, area: Area): string {
  if (!cell?.total) return "—";
  const counts = `${cell.pass} / ${cell.total}`;
  if (area === "producer") return counts;
  const variants = [...cell.variants];
  return `${counts} on ${variants.length === 1 ? variants[0]! : `${variants.length} variants`}`;
}

/**
 * The parity table: one row per binding; per area (frame-level runner cases, end-to-end
 * cases, producer cases) how many results passed out of how many ran, then the known
 * failures (still failing, listed) and the failures.
 */
export function parityTable(results: readonly Result[]): string {
  const rows = new Map<
    string,
    { cells: Partial<Record<Area, Cell>>; known: number; failed: number; note?: string }
  >();
  for (const r of results) {
    const row = rows.get(r.binding) ?? { cells: {}, known: 0, failed: 0 };
    rows.set(r.binding, row);
    if (r.status === "skip") {
      row.note = r.note;
      continue;
    }
    const area: Area =
      r.variant === "producer" ? "producer" : r.caseId.startsWith("e2e/") ? "e2e" : "runner";
    const cell = (row.cells[area] ??= { pass: 0, total: 0, variants: new Set() });
    cell.total++;
    cell.variants.add(r.variant);
    if (r.status === "pass") cell.pass++;
    if (r.status === "xfail") row.known++;
    if (r.status === "fail") row.failed++;
  }
  const body = [...rows.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([binding, row]) =>
      row.note && !Object.keys(row.cells).length
        ? [binding, row.note, "", "", "", ""]
        : [
            binding,
            cellText(row.cells.runner, "runner"),
            cellText(row.cells.e2e, "e2e"),
            cellText(row.cells.producer, "producer"),
            String(row.known),
            String(row.failed),
          ],
    );
  return markdownTable(
    ["Binding", "Runner cases", "End-to-end cases", "Producer cases", "Known failures", "Failed"],
    ["left", "left", "left", "left", "right", "right"],
    body,
  );
}

/**
 * A Markdown table laid out the way Prettier lays it out (cells padded to the column width),
 * so that a regenerated README passes `prettier --check`.
 */
export function markdownTable(
  header: readonly string[],
  align: ReadonlyArray<"left" | "right">,
  rows: ReadonlyArray<readonly string[]>,
): string {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => r[i]!.length)));
  const cell = (text: string, i: number) =>
    align[i] === "right" ? text.padStart(widths[i]!) : text.padEnd(widths[i]!);
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(" | ")} |`;
  const rule = widths.map((w, i) =>
    align[i] === "right" ? `${"-".repeat(w - 1)}:` : "-".repeat(w),
  );
  return [line(header), `| ${rule.join(" | ")} |`, ...rows.map(line)].join("\n");
}

const START = "<!-- parity-table:start -->";
const END = "<!-- parity-table:end -->";

/**
 * Where the generated parity section of a Markdown file is. Throws {@link CorpusError} (a usage
 * error, checked before the run) when the file cannot be read or has no markers.
 */
export function parityTableSection(path: string): { text: string; begin: number; end: number } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new CorpusError(`--parity-table: cannot read ${path}: ${(error as Error).message}`);
  }
  const begin = text.indexOf(START);
  const end = text.indexOf(END);
  if (begin < 0 || end < begin)
    throw new CorpusError(`--parity-table: ${path} has no ${START} … ${END} section`);
  return { text, begin, end };
}

/** Replaces the generated parity section of a Markdown file (between the two markers). */
export function writeParityTable(
  path: string,
  results: readonly Result[],
  when: Date,
  command: string,
): void {
  const { text, begin, end } = parityTableSection(path);
  const t = totals(results);
  const body = [
    START,
    "",
    `Generated by \`${command}\` on ${when.toISOString().slice(0, 10)}: ${closingLine(t).replace("conformance: ", "")}.`,
    "",
    parityTable(results),
    "",
    END,
  ].join("\n");
  writeFileSync(path, text.slice(0, begin) + body + text.slice(end + END.length));
}

/**
 * Known-failures lines for the failing results (toml-test's `-script` idea): what to add to
 * each binding's list to accept the current state, with a placeholder reason to replace.
 * Results that fail because a listed case now passes are left out (their line must go).
 */
export function knownFailureLines(
  results: readonly Result[],
  listOf: (binding: string) => string,
): string[] {
  const byList = new Map<string, string[]>();
  for (const r of results) {
    if (r.status !== "fail" || !r.failures.length) continue;
    const list = listOf(r.binding);
    const rules = [...new Set(r.failures.map((f) => f.rule))].join("; ");
    byList.set(list, [...(byList.get(list) ?? []), `${r.id}  # TODO why: ${rules}`]);
  }
  return [...byList.entries()].flatMap(([list, lines]) => [`# add to ${list}:`, ...lines]);
}
