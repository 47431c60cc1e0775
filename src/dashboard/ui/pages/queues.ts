/**
 * `#/queues` (every queue: depth, ready vs deferred, parked, oldest job age, paused, with the
 * Pause/Resume action) and `#/queues/<name>` (its jobs, ready or deferred, a page of 50 at a
 * time).
 */
import { api, type JobJson, type QueueRow } from "../api.js";
import {
  actionButton,
  card,
  formatCount,
  formatDuration,
  queueLabel,
  formatTime,
  h,
  link,
  statusBadge,
  table,
  type Child,
} from "../dom.js";
import type { PageContext } from "../route.js";

/**
 * The State cell: a "paused" badge (since when and why in its title and beside it) or "active",
 * and, unless the dashboard is read-only, the Pause or Resume button (`rrq queue pause|resume`).
 */
function stateCell(q: QueueRow, ctx: PageContext): HTMLElement {
  const paused = q.paused ?? null;
  const since = paused && paused.since > 0 ? `since ${formatTime(paused.since)}` : "";
  const why = paused?.reason ? ` — ${paused.reason}` : "";
  const parts: Child[] = paused
    ? [
        h(
          "span",
          { class: "badge badge-paused", "data-field": "paused", title: `${since}${why}` },
          "paused",
        ),
        h("span", { class: "muted" }, `${since}${why}`),
      ]
    : [h("span", { "data-field": "state" }, "active")];
  if (!ctx.config.readOnly)
    parts.push(
      paused
        ? actionButton({
            name: "resume-queue",
            label: "Resume",
            run: () => api.queueAction(q.name, "resume"),
            done: () => ctx.reload(),
          })
        : actionButton({
            name: "pause-queue",
            label: "Pause",
            confirm: `Pause queue ${queueLabel(q.name)}? Workers claim no new job from it until it is resumed; running jobs finish.`,
            run: () => api.queueAction(q.name, "pause", "paused from the dashboard"),
            done: () => ctx.reload(),
          }),
    );
  return h("div", { class: "queue-state", "data-queue": q.name }, ...parts);
}

function queueRows(queues: QueueRow[], ctx: PageContext): HTMLElement {
  return table(
    ["Queue", "Depth", "Ready", "Deferred", "Running", "Parked", "Oldest ready job waits", "State"],
    queues.map((q) => [
      link(queueLabel(q.name), "queues", queueLabel(q.name)),
      formatCount(q.depth),
      formatCount(q.ready),
      formatCount(q.deferred),
      formatCount(q.running),
      formatCount(q.parked ?? 0),
      formatDuration(q.oldestAgeMs),
      stateCell(q, ctx),
    ]),
    "No queues yet.",
  );
}

/** `#/queues`. */
export async function queuesPage(ctx: PageContext): Promise<Node> {
  const { queues } = await api.queues();
  return h("div", { class: "page queues" }, card("Queues", queueRows(queues, ctx)));
}

/** The rows of a job list (shared with the search page). */
export function jobRows(jobs: JobJson[]): Node[][] {
  return jobs.map((job) =>
    [
      link(job.id, "jobs", job.id),
      job.functionName ?? "—",
      queueLabel(job.queueName),
      statusBadge(job.status),
      formatTime(job.enqueueTime),
      formatTime(job.runAt ?? job.nextScheduledRunTime),
      `${job.currentRetries}/${job.maxRetries ?? "—"}`,
    ].map((cell) => (typeof cell === "string" ? document.createTextNode(cell) : cell)),
  );
}

/** The header of {@link jobRows}. */
export const JOB_HEADERS = ["Job", "Function", "Queue", "Status", "Enqueued", "Runs at", "Retries"];

/** `#/queues/<name>?state=ready|deferred`. */
export async function queuePage(ctx: PageContext): Promise<Node> {
  const name = ctx.params[0] ?? "";
  const state = ctx.query.get("state") === "deferred" ? "deferred" : "ready";
  const [{ queues }, first] = await Promise.all([api.queues(), api.queueJobs(name, state)]);
  const row = queues.find((q) => queueLabel(q.name) === queueLabel(name));
  const body = h("tbody", {});
  const rows = (jobs: JobJson[]) => {
    for (const cells of jobRows(jobs))
      body.appendChild(h("tr", {}, ...cells.map((c) => h("td", {}, c))));
  };
  rows(first.jobs);
  let next = first.next;
  const more = h("button", { "data-action": "more" }, "Load 50 more");
  more.hidden = next === null;
  more.addEventListener("click", () => {
    void (async () => {
      if (next === null) return;
      more.disabled = true;
      const page = await api.queueJobs(name, state, next);
      rows(page.jobs);
      next = page.next;
      more.hidden = next === null;
      more.disabled = false;
    })();
  });
  const tab = (value: string, label: string) =>
    h(
      "a",
      {
        href: `#/queues/${encodeURIComponent(name)}?state=${value}`,
        class: value === state ? "tab active" : "tab",
      },
      label,
    );
  return h(
    "div",
    { class: "page queue" },
    card(
      `Queue ${name}`,
      row ? queueRows([row], ctx) : h("p", { class: "muted" }, "This queue holds no jobs."),
    ),
    card(
      "Jobs",
      h(
        "nav",
        { class: "tabs" },
        tab("ready", `Ready (${formatCount(row?.ready ?? 0)})`),
        tab("deferred", `Deferred (${formatCount(row?.deferred ?? 0)})`),
      ),
      first.jobs.length === 0
        ? h("p", { class: "muted empty" }, `No ${state} jobs.`)
        : h(
            "table",
            { class: "grid" },
            h("thead", {}, h("tr", {}, ...JOB_HEADERS.map((header) => h("th", {}, header)))),
            body,
          ),
      more,
    ),
  );
}
