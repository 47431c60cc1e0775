/**
 * `#/`: totals, processed/failed/retried per minute (last hour) and per day (14 days), queue
 * depths and the wait of each queue's oldest ready job (enqueue→start latency). Live: the server
 * pushes a new overview every 2 s.
 */
import { api, type Overview } from "../api.js";
import { barChart, hbarChart, legend, lineChart, type Series } from "../charts.js";
import { card, queueLabel, formatCount, formatDuration, h, link, stat, table } from "../dom.js";
import type { PageContext } from "../route.js";

function minuteLabel(t: number): string {
  const date = new Date(t);
  return `${String(date.getUTCHours()).padStart(2, "0")}:${String(date.getUTCMinutes()).padStart(2, "0")}`;
}

function perMinute(data: Overview): HTMLElement {
  const points = data.perMinute ?? [];
  const series: Series[] = [
    { name: "completed", cls: "completed", values: points.map((p) => p.completed) },
    { name: "failed", cls: "failed", values: points.map((p) => p.failed) },
    { name: "retried", cls: "retried", values: points.map((p) => p.retried) },
  ];
  return card(
    "Per minute (last hour, UTC)",
    legend(series),
    lineChart(
      "Jobs per minute",
      points.map((p) => minuteLabel(p.t)),
      series,
    ),
  );
}

function perDay(data: Overview): HTMLElement {
  // history comes today first; charts read left to right
  const days = [...(data.history ?? [])].reverse();
  const series: Series[] = [
    { name: "completed", cls: "completed", values: days.map((d) => d.completed) },
    { name: "failed", cls: "failed", values: days.map((d) => d.failed) },
    { name: "retried", cls: "retried", values: days.map((d) => d.retried) },
  ];
  return card(
    "Per day (14 days, UTC)",
    legend(series),
    barChart(
      "Jobs per day",
      days.map((d) => d.date.slice(5)),
      series,
    ),
  );
}

function queues(data: Overview): HTMLElement {
  const rows = data.queues ?? [];
  return card(
    "Queues",
    rows.length > 0
      ? hbarChart(
          "Queue depth",
          rows.map((q) => [queueLabel(q.name), q.depth]),
        )
      : null,
    table(
      ["Queue", "Depth", "Ready", "Deferred", "Running", "Oldest ready job waits"],
      rows.map((q) => [
        q.paused
          ? h(
              "span",
              {},
              link(queueLabel(q.name), "queues", queueLabel(q.name)),
              " ",
              h("span", { class: "badge badge-paused" }, "paused"),
            )
          : link(queueLabel(q.name), "queues", queueLabel(q.name)),
        formatCount(q.depth),
        formatCount(q.ready),
        formatCount(q.deferred),
        formatCount(q.running),
        formatDuration(q.oldestAgeMs),
      ]),
      "No queues yet.",
    ),
  );
}

/** Renders the overview from pushed data, or fetches it. */
export async function overviewPage(_ctx: PageContext, data?: unknown): Promise<Node> {
  const overview = (data as Overview | undefined) ?? (await api.overview());
  const totals = overview.totals;
  const maxLatency = Math.max(0, ...(overview.queues ?? []).map((q) => q.oldestAgeMs ?? 0));
  return h(
    "div",
    { class: "page overview" },
    h(
      "div",
      { class: "stats" },
      stat("processed", formatCount(totals.processed)),
      stat("completed", formatCount(totals.completed), "ok"),
      stat("failed", formatCount(totals.failed), totals.failed > 0 ? "bad" : ""),
      stat("retried", formatCount(totals.retried)),
      stat("cancelled", formatCount(totals.cancelled)),
      stat(
        "workers",
        `${formatCount(overview.workers?.count)}${overview.workers?.quiet ? ` (${overview.workers.quiet} quiet)` : ""}`,
      ),
      h(
        "a",
        { href: "#/dlq", class: "stat-link" },
        stat("in DLQ", formatCount(overview.dlq?.entries), overview.dlq?.entries ? "bad" : ""),
      ),
      stat("oldest ready job waits", formatDuration(maxLatency)),
      stat(
        "enqueue→start, mean",
        overview.latency?.samples ? formatDuration(overview.latency.avgMs) : "—",
      ),
      stat(
        "enqueue→start, p95",
        overview.latency?.samples ? formatDuration(overview.latency.p95Ms) : "—",
      ),
    ),
    perMinute(overview),
    perDay(overview),
    queues(overview),
  );
}
