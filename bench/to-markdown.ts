/**
 * Renders a bench JSON report as Markdown tables (for bench/RESULTS.md):
 *
 *   npx tsx bench/to-markdown.ts bench/results/full.json > /tmp/tables.md
 */
import { readFileSync } from "node:fs";

interface Ratio {
  median: number;
  min: number;
  max: number;
}
interface Result {
  contender: string;
  label: string;
  system: string;
  median: number | null;
  min: number | null;
  max: number | null;
  accounted: boolean;
  /** `ratio_vs_<peer>` for each of the scenario's baselines. */
  [ratio: `ratio_vs_${string}`]: Ratio | null;
}
interface Scenario {
  id: string;
  title: string;
  unit: string;
  higher_is_better: boolean;
  baselines?: Record<string, string>;
  notes: string[];
  results: Result[];
}
interface Report {
  command: string;
  started_at: string;
  duration_seconds: number;
  reps: number;
  quick: boolean;
  jobs: number;
  machine: Record<string, unknown>;
  loadavg_before: number[];
  loadavg_after: number[];
  loadavg_1m_max_during: number | null;
  ok: boolean;
  scenarios: Scenario[];
}

function num(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString("en-US");
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function ratio(r: Ratio | null): string {
  if (!r) return "";
  return `${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
}

const PEER_NAMES: Record<string, string> = {
  bullmq: "BullMQ",
  rrq: "RRQ",
  celery: "Celery",
  rq: "RQ",
  arq: "arq",
  dramatiq: "Dramatiq",
  apalis: "apalis",
};

/** The scenario's baseline names (older reports: BullMQ and RRQ). */
function peers(s: Scenario): string[] {
  return s.baselines ? Object.keys(s.baselines) : ["bullmq", "rrq"];
}

const report = JSON.parse(
  readFileSync(process.argv[2] ?? "bench/results/full.json", "utf8"),
) as Report;
const out: string[] = [];
out.push(
  `Command: \`${report.command}\` · started ${report.started_at} · ${Math.round(report.duration_seconds / 60)} min · ${report.reps} repetitions ${report.quick ? "(--quick: no warm-up)" : "after a warm-up"} · all jobs accounted for: ${report.ok ? "yes" : "NO"}`,
  "",
  `Machine: ${Object.entries(report.machine)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(" · ")}`,
  "",
  `Load average (1 min): ${report.loadavg_before[0]} before, ${report.loadavg_1m_max_during ?? "–"} peak during, ${report.loadavg_after[0]} after.`,
  "",
);
for (const s of report.scenarios) {
  out.push(
    `#### \`${s.id}\`: ${s.title} (${s.unit}, ${s.higher_is_better ? "higher" : "lower"} is better)`,
    "",
    `| contender | median | min–max | ${peers(s)
      .map((p) => `ours ÷ ${PEER_NAMES[p] ?? p}`)
      .join(" | ")} |`,
    `| --- | ---: | ---: | ${peers(s)
      .map(() => "---:")
      .join(" | ")} |`,
  );
  const rank = (r: Result) =>
    (r.system === "rrqkit" ? 0 : r.system === "bullmq" ? 2 : 4) +
    (r.contender.startsWith("rrqkit-node-unix-json") || r.contender === "rrqkit-ts" ? 0 : 1);
  for (const r of [...s.results].sort((a, b) => rank(a) - rank(b))) {
    const flag = r.accounted ? "" : " ⚠ not all jobs accounted for";
    out.push(
      `| ${r.label}${flag} | ${num(r.median)} | ${num(r.min)}–${num(r.max)} | ${peers(s)
        .map((p) => ratio(r[`ratio_vs_${p}`] ?? null))
        .join(" | ")} |`,
    );
  }
  for (const n of s.notes) out.push("", `- ${n}`);
  out.push("");
}
process.stdout.write(`${out.join("\n")}\n`);
