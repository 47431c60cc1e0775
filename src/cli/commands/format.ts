/**
 * Output formats of the `rrq` CLI. Tables, durations and relative times follow RRQ 0.11's CLI
 * (measured against its binary), so scripts that parse RRQ's output keep working; the only
 * deliberate change is that future times read "in 5m" where RRQ prints "-300s ago".
 */

/**
 * One table column: RRQ's format width and alignment; `flex` columns may shrink to fit the
 * terminal; `grow` columns widen to their longest cell (names that must never be cut).
 */
export interface Column {
  readonly header: string;
  readonly width: number;
  readonly align?: "left" | "right";
  readonly flex?: boolean;
  readonly grow?: boolean;
}

const length = (text: string) => [...text].length;

const pad = (text: string, width: number, align: "left" | "right" = "left") =>
  align === "right" ? text.padStart(width) : text.padEnd(width);

/** RRQ's truncation: longer than `max` characters → the first max−3 and "...". */
export function truncate(text: string, max: number): string {
  const chars = [...text];
  return chars.length > max ? `${chars.slice(0, Math.max(0, max - 3)).join("")}...` : text;
}

/**
 * Renders a table as RRQ does (cells padded to the column width, separated by one space, longer
 * cells overflow; `grow` columns keep RRQ's two-space gap after their longest cell). With `fit` (the terminal width, when printing to a terminal) and a table
 * wider than it, flexible columns shrink and their cells are truncated so every line fits.
 */
export function renderTable(
  columns: readonly Column[],
  rows: readonly string[][],
  fit?: number,
): string[] {
  let widths = columns.map((c, i) =>
    c.grow ? Math.max(c.width, ...rows.map((row) => length(row[i] ?? "") + 2)) : c.width,
  );
  const total = () => widths.reduce((a, b) => a + b, 0) + widths.length - 1;
  if (fit !== undefined && total() > fit) {
    const flexible = columns.flatMap((c, i) => (c.flex ? [i] : []));
    let excess = total() - fit;
    while (excess > 0 && flexible.some((i) => widths[i]! > 8)) {
      for (const i of flexible) {
        if (excess > 0 && widths[i]! > 8) {
          widths = widths.map((w, j) => (j === i ? w - 1 : w));
          excess--;
        }
      }
    }
  }
  const line = (cells: readonly string[], header: boolean) =>
    cells
      .map((cell, i) => {
        const column = columns[i]!;
        const width = widths[i]!;
        const text = !header && width < column.width ? truncate(cell, width) : cell;
        return pad(header ? truncate(text, width) : text, width, column.align);
      })
      .join(" ")
      .trimEnd();
  return [
    line(
      columns.map((c) => c.header),
      true,
    ),
    ...rows.map((row) => line(row, false)),
  ];
}

/** RRQ's duration text: μs, ms (one decimal), s (one decimal), "Xm Ys", "Xh Ym"; N/A. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || Number.isNaN(seconds)) return "N/A";
  if (seconds < 0) return `-${formatDuration(-seconds)}`;
  if (seconds < 0.001) return `${Math.round(seconds * 1_000_000)}μs`;
  if (seconds < 1) return `${(seconds * 1000).toFixed(1)}ms`;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.floor(seconds % 60)}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

/** `YYYY-MM-DD HH:MM:SS` in UTC. */
export function formatDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

/**
 * RRQ's relative time: "Ns ago" under a minute, "Nm ago" under an hour, "Nh ago" under a day,
 * else the UTC date and time. Future times read "in N…" (RRQ prints a negative "ago").
 */
export function formatTime(ms: number | undefined, now = Date.now()): string {
  if (ms === undefined || Number.isNaN(ms)) return "N/A";
  const diff = (now - ms) / 1000;
  const ahead = diff < 0;
  const d = Math.abs(diff);
  if (d >= 86400) return formatDate(ms);
  const amount =
    d < 60 ? `${Math.floor(d)}s` : d < 3600 ? `${Math.floor(d / 60)}m` : `${Math.floor(d / 3600)}h`;
  return ahead ? `in ${amount}` : `${amount} ago`;
}

/** RFC 3339 in UTC with `+00:00` (the job hash's style). */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace("Z", "+00:00");
}

/** A count with thousands separators (progress lines). */
export const count = (n: number): string => n.toLocaleString("en-US");

/** JSON for `--json` output (one document, pretty-printed). */
export const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;
