import type { BreakerState, PausedInfo } from "../../api/index.js";
import { formatDuration, formatTime, rfc3339, type Column } from "./format.js";

/**
 * How the CLI shows flow control (README "Flow control"): pauses, circuit breakers and a job's
 * flow fields, shared by `queue list|pause|resume`, `check` and `job show`.
 */

/** "since 2026-01-01T00:00:00.000+00:00 (5m ago)", or "since an unknown time". */
export function sinceText(info: PausedInfo, now = Date.now()): string {
  if (!(info.since > 0)) return "since an unknown time";
  return `since ${rfc3339(info.since)} (${formatTime(info.since, now)})`;
}

/** A pause in one phrase: "paused since … (5m ago), reason: maintenance". */
export function pausedText(info: PausedInfo, now = Date.now()): string {
  return `paused ${sinceText(info, now)}${info.reason ? `, reason: ${info.reason}` : ""}`;
}

/** The PAUSED cell of `queue list`: "yes (5m ago)" or "". */
export function pausedCell(info: PausedInfo | null, now = Date.now()): string {
  if (!info) return "";
  return info.since > 0 ? `yes (${formatTime(info.since, now)})` : "yes";
}

/** A breaker's state as printed ("half-open" rather than the stored "half_open"). */
export const stateText = (b: BreakerState): string => b.state.replace("_", "-");

/**
 * When a breaker next lets a job through: an open one at its retry time ("in 25s", or "due" once
 * it has passed: the next claim sends a probe), a half-open one when its probe finishes.
 */
export function retryText(b: BreakerState, now = Date.now()): string {
  if (b.state === "half_open") return b.probe ? `probe ${b.probe} running` : "probe running";
  if (b.state !== "open") return "";
  if (b.retryAt === undefined) return "unknown";
  return b.retryAt <= now ? "due (next claim probes)" : formatTime(b.retryAt, now);
}

/** The breakers table of `queue list`. */
export const BREAKER_COLUMNS: Column[] = [
  { header: "Breaker", width: 24, grow: true },
  { header: "State", width: 9 },
  { header: "Failures", width: 8, align: "right" },
  { header: "Trips", width: 5, align: "right" },
  { header: "Held", width: 6, align: "right" },
  { header: "Retry", width: 16 },
  { header: "Last error", width: 30, flex: true },
];

/** One breakers-table row per breaker. */
export function breakerRows(breakers: readonly BreakerState[], now = Date.now()): string[][] {
  return breakers.map((b) => [
    b.scope,
    stateText(b),
    String(b.failures),
    String(b.trips),
    String(b.held),
    retryText(b, now),
    b.lastError ?? "",
  ]);
}

/** One line of `rrq check` for a breaker that is not closed. */
export function breakerLine(b: BreakerState, now = Date.now()): string {
  const parts = [`${b.scope}: ${stateText(b)}`];
  if (b.openedAt !== undefined) parts.push(`opened ${rfc3339(b.openedAt)}`);
  if (b.state === "open" && b.retryAt !== undefined)
    parts.push(
      b.retryAt <= now
        ? `retry due since ${rfc3339(b.retryAt)} (the next claim sends a probe)`
        : `retry at ${rfc3339(b.retryAt)} (${formatTime(b.retryAt, now)})`,
    );
  if (b.state === "half_open") parts.push(retryText(b, now));
  parts.push(`${b.held} job(s) held`, `${b.trips} trip(s)`);
  if (b.lastError) parts.push(`last error: ${b.lastError}`);
  return parts.join("; ");
}

/** A `start_rate` field ("50/1000") in words ("50 per 1.0s"); the raw text when malformed. */
export function startRateText(raw: string): string {
  const match = /^(\d+)\/(\d+)$/.exec(raw);
  if (!match) return raw;
  return `${match[1]} per ${formatDuration(Number(match[2]) / 1000)}`;
}

/** A job's flow-control fields in `--json` form (only those present). */
export interface FlowFields {
  concurrencyKey?: string;
  concurrencyLimit?: number;
  startRate?: { limit: number; periodMs: number } | string;
  limitName?: string;
  orderingKey?: string;
}

/** The producer-written flow fields of a job hash. */
export function flowFields(hash: Record<string, string>): FlowFields {
  const fields: FlowFields = {};
  if (hash.concurrency_key) fields.concurrencyKey = hash.concurrency_key;
  if (hash.concurrency_limit) fields.concurrencyLimit = Number(hash.concurrency_limit);
  if (hash.start_rate) {
    const match = /^(\d+)\/(\d+)$/.exec(hash.start_rate);
    fields.startRate = match
      ? { limit: Number(match[1]), periodMs: Number(match[2]) }
      : hash.start_rate;
  }
  if (hash.limit_name) fields.limitName = hash.limit_name;
  if (hash.ordering_key) fields.orderingKey = hash.ordering_key;
  return fields;
}

/** The lines `job show` prints under "Flow control:" (empty when the job has none). */
export function flowLines(hash: Record<string, string>): string[] {
  const lines: string[] = [];
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(22)} ${value}`);
  if (hash.concurrency_key)
    row(
      "concurrency_key",
      hash.concurrency_limit
        ? `${hash.concurrency_key} (limit ${hash.concurrency_limit})`
        : hash.concurrency_key,
    );
  else if (hash.concurrency_limit) row("concurrency_limit", hash.concurrency_limit);
  if (hash.start_rate) row("start_rate", startRateText(hash.start_rate));
  if (hash.limit_name) row("limit_name", hash.limit_name);
  if (hash.ordering_key) row("ordering_key", hash.ordering_key);
  return lines;
}
