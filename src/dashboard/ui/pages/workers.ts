/**
 * `#/workers`: every worker's health record (status, in-flight vs concurrency, queues, quiet,
 * clock offset, Redis link), its runner processes per language when the record lists them, and
 * the quiet/resume actions.
 */
import { api, type WorkerHealth } from "../api.js";
import {
  actionButton,
  card,
  displayValue,
  formatCount,
  formatTime,
  h,
  keyValues,
  table,
  type Child,
} from "../dom.js";
import type { PageContext } from "../route.js";

/** Fields shown in the summary table; the rest of the record goes to "More". */
const SHOWN = new Set([
  "worker_id",
  "status",
  "active_jobs",
  "concurrency_limit",
  "queues",
  "quiet",
  "timestamp",
  "implementation",
  "version",
  "runners",
]);

const record = (value: unknown): Record<string, unknown> =>
  value && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};

/** The language of a runner from its hello's runtime (`rrqkit-python` → python). */
function language(runtime: unknown): string {
  if (typeof runtime !== "string" || runtime === "") return "— (no hello)";
  return runtime.startsWith("rrqkit-") ? runtime.slice("rrqkit-".length) : runtime;
}

/**
 * Rows of the record's `runners` (rrqkit workers): one per runner pool with its language, load
 * and restarts, and each process's state, pid, in-flight requests and restarts.
 */
function runnerRows(runners: unknown): Child[][] {
  if (!Array.isArray(runners)) return [];
  return runners.map((raw) => {
    const r = record(raw);
    const processes = Array.isArray(r.processes) ? r.processes.map(record) : [];
    const version = typeof r.runtime_version === "string" ? ` ${r.runtime_version}` : "";
    return [
      displayValue(r.name),
      `${language(r.runtime)}${version}`,
      `${displayValue(r.in_flight)} of ${displayValue(r.max_in_flight)}`,
      displayValue(r.restarts),
      processes.length === 0
        ? "—"
        : h(
            "ul",
            { class: "processes" },
            ...processes.map((p) =>
              h(
                "li",
                { "data-state": displayValue(p.state) },
                `#${displayValue(p.index)} ${displayValue(p.state)}`,
                p.pid !== null && p.pid !== undefined ? `, pid ${displayValue(p.pid)}` : "",
                `, ${displayValue(p.in_flight)} in flight, ${displayValue(p.served)} served`,
                `, ${displayValue(p.restarts)} restarts`,
              ),
            ),
          ),
    ];
  });
}

function workerCard(worker: WorkerHealth, ctx: PageContext): HTMLElement {
  const health = worker.health ?? {};
  const quiet = worker.quiet ?? health.quiet === true;
  const queues = Array.isArray(health.queues)
    ? (health.queues as unknown[]).map(displayValue).join(", ")
    : displayValue(health.queues);
  const extra = Object.entries(health).filter(([key]) => !SHOWN.has(key));
  const runners = runnerRows(health.runners);
  const buttons = ctx.config.readOnly
    ? null
    : h(
        "div",
        { class: "actions" },
        quiet
          ? actionButton({
              name: "resume",
              label: "Resume",
              run: () => api.workerAction(worker.id, "resume"),
              done: () => ctx.reload(),
            })
          : actionButton({
              name: "quiet",
              label: "Quiet",
              confirm: `Quiet worker ${worker.id}? It finishes what runs and claims nothing new.`,
              run: () => api.workerAction(worker.id, "quiet"),
              done: () => ctx.reload(),
            }),
      );
  return card(
    `Worker ${worker.id}`,
    keyValues([
      ["Status", `${worker.status ?? displayValue(health.status)}${quiet ? " (quiet)" : ""}`],
      [
        "In flight",
        `${formatCount(Number(health.active_jobs ?? 0))} of ${displayValue(health.concurrency_limit)}`,
      ],
      ["Queues", queues],
      [
        "Implementation",
        `${worker.implementation ?? "rrq (RRQ 0.11 or unknown)"}${worker.version ? ` ${worker.version}` : ""}`,
      ],
      [
        "Last heartbeat",
        typeof health.timestamp === "string"
          ? formatTime(Number(health.timestamp) * 1000 || health.timestamp)
          : "—",
      ],
      ["Record expires in", `${worker.ttlSeconds}s`],
    ]),
    runners.length > 0 ? h("h3", {}, "Runners") : null,
    runners.length > 0
      ? table(["Runner", "Language", "In flight", "Restarts", "Processes"], runners)
      : null,
    extra.length > 0 ? h("details", {}, h("summary", {}, "More"), keyValues(extra)) : null,
    buttons,
  );
}

/** `#/workers`. */
export async function workersPage(ctx: PageContext): Promise<Node> {
  const { workers } = await api.workers();
  const rows = workers.map((w) => [
    w.id,
    w.status ?? displayValue(w.health?.status),
    displayValue(w.health?.active_jobs),
    (w.quiet ?? w.health?.quiet === true) ? "quiet" : "",
  ]);
  return h(
    "div",
    { class: "page workers" },
    card(
      `Workers (${workers.length})`,
      table(["Worker", "Status", "In flight", "Mode"], rows, "No worker is running."),
    ),
    ...workers.map((w) => workerCard(w, ctx)),
  );
}
