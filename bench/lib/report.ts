/**
 * Results: one {@link Case} per measured quantity (e.g. "burndown", "enqueue/single-50",
 * "latency/200/start_p50"), holding every contender's per-repetition values. Ratios are
 * ours / theirs per repetition (repetitions of all contenders run back to back), with their
 * median as `ratio_vs_<name>` for each named baseline of the case: `ratio_vs_bullmq` (BullMQ's
 * in-process worker or its producer), `ratio_vs_rrq` (RRQ 0.11's orchestrator or producer), and
 * in the ecosystem races `ratio_vs_celery`, `ratio_vs_rq`, `ratio_vs_arq`, `ratio_vs_dramatiq`,
 * `ratio_vs_apalis`, … (any key of {@link Case.baselines}).
 */
import { pairedRatios, round, summarize, type Summary } from "./stats.js";

export interface ContenderInfo {
  id: string;
  label: string;
  /** "rrqkit" for ours (the only system whose ratios are reported); a peer's name otherwise. */
  system: string;
}

/** Baseline contender ids by peer name ("bullmq", "rrq", "celery", …). */
export type Baselines = Record<string, string | undefined>;

interface Entry extends ContenderInfo {
  /** Per repetition; NaN marks a failed repetition. */
  values: number[];
  extra: Map<string, number[]>;
  failures: string[];
  accounted: boolean;
}

/** One measured quantity with its contenders. */
export class Case {
  private readonly entries = new Map<string, Entry>();
  readonly notes: string[] = [];

  constructor(
    readonly id: string,
    readonly title: string,
    readonly unit: string,
    readonly higherIsBetter: boolean,
    readonly baselines: Baselines,
    readonly params: Record<string, unknown> = {},
  ) {}

  private entry(c: ContenderInfo): Entry {
    let e = this.entries.get(c.id);
    if (!e) {
      e = { ...c, values: [], extra: new Map(), failures: [], accounted: true };
      this.entries.set(c.id, e);
    }
    return e;
  }

  /** Records one repetition's value (and optional side figures) for a contender. */
  record(
    c: ContenderInfo,
    rep: number,
    value: number,
    extra: Record<string, number> = {},
    accounted = true,
  ): void {
    const e = this.entry(c);
    e.values[rep] = value;
    for (const [k, v] of Object.entries(extra)) {
      const list = e.extra.get(k) ?? [];
      list[rep] = v;
      e.extra.set(k, list);
    }
    if (!accounted) e.accounted = false;
  }

  /** Records a failed repetition (the value stays NaN and the case is not accounted). */
  fail(c: ContenderInfo, rep: number, error: string): void {
    const e = this.entry(c);
    e.values[rep] = NaN;
    e.failures.push(`rep ${rep}: ${error}`);
    e.accounted = false;
  }

  get contenders(): Entry[] {
    return [...this.entries.values()];
  }

  /** True when every contender completed every repetition with all jobs accounted for. */
  get ok(): boolean {
    return this.contenders.every((e) => e.accounted && e.failures.length === 0);
  }

  /** Values of one contender with failed repetitions kept as NaN (for pairing). */
  private series(id: string): number[] {
    const e = this.entries.get(id);
    return e ? Array.from(e.values, (v) => v ?? NaN) : [];
  }

  private ratio(id: string, baseline: string | undefined) {
    if (!baseline || baseline === id || !this.entries.has(baseline)) return null;
    const a = this.series(id);
    const b = this.series(baseline);
    const pairs = pairedRatios(a, b).filter(Number.isFinite);
    if (!pairs.length) return null;
    const s = summarize(pairs);
    return {
      median: round(s.median),
      min: round(s.min),
      max: round(s.max),
      values: s.values.map((v) => round(v)),
    };
  }

  /** Summary of one contender (or undefined). */
  summary(id: string): Summary | undefined {
    const values = this.series(id).filter(Number.isFinite);
    return values.length ? summarize(values) : undefined;
  }

  /** Median ratio of a contender against a baseline contender of this case. */
  medianRatio(id: string, which: string): number | undefined {
    return this.ratio(id, this.baselines[which])?.median;
  }

  /** The baseline names of this case, in the order given. */
  get baselineNames(): string[] {
    return Object.keys(this.baselines);
  }

  /** `ratio_vs_<name>` for every baseline (null for peers' own rows). */
  private ratioFields(id: string, ours: boolean): Record<string, object | null> {
    const fields: Record<string, object | null> = {};
    for (const name of this.baselineNames)
      fields[`ratio_vs_${name}`] = ours ? this.ratio(id, this.baselines[name]) : null;
    return fields;
  }

  toJSON(): object {
    return {
      id: this.id,
      title: this.title,
      unit: this.unit,
      higher_is_better: this.higherIsBetter,
      params: this.params,
      baselines: this.baselines,
      notes: this.notes,
      results: this.contenders.map((e) => {
        const values = Array.from(e.values, (v) => v ?? NaN);
        const s = summarize(values.filter(Number.isFinite));
        const extra: Record<string, object> = {};
        for (const [k, list] of e.extra) {
          const vs = Array.from(list, (v) => v ?? NaN).filter(Number.isFinite);
          const es = summarize(vs);
          extra[k] = { median: round(es.median), min: round(es.min), max: round(es.max) };
        }
        const ours = e.system === "rrqkit";
        return {
          contender: e.id,
          label: e.label,
          system: e.system,
          median: round(s.median),
          min: round(s.min),
          max: round(s.max),
          values: values.map((v) => (Number.isFinite(v) ? round(v) : null)),
          ...this.ratioFields(e.id, ours),
          extra,
          accounted: e.accounted && e.failures.length === 0,
          failures: e.failures,
        };
      }),
    };
  }
}

function fmt(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "-";
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toString();
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** A plain-text table of a case (median, spread, ratios). */
export function formatCase(c: Case): string {
  const names = c.baselineNames;
  const header = ["contender", `median ${c.unit}`, "min–max", ...names.map((n) => `×${n}`), "ok"];
  const rows = c.contenders.map((e) => {
    const s = c.summary(e.id);
    const ours = e.system === "rrqkit";
    return [
      e.label,
      fmt(s?.median),
      s ? `${fmt(s.min)}–${fmt(s.max)}` : "-",
      ...names.map((n) => (ours ? fmt(c.medianRatio(e.id, n)) : "")),
      e.accounted && e.failures.length === 0 ? "yes" : "NO",
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ");
  const dir = c.higherIsBetter ? "higher is better" : "lower is better";
  const out = [`\n## ${c.id}: ${c.title} (${dir})`, line(header), ...rows.map(line)];
  for (const e of c.contenders) for (const f of e.failures) out.push(`  ! ${e.label}: ${f}`);
  for (const note of c.notes) out.push(`  note: ${note}`);
  return out.join("\n");
}
