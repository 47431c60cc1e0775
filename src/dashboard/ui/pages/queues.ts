/**
 * `#/queues` (every queue: depth, ready vs deferred, oldest job age, paused) and
 * `#/queues/<name>` (its jobs, ready or deferred, a page of 50 at a time).
 */
import { api, type JobJson, type QueueRow } from "../api.js";
import {
  card,
  formatCount,
  formatDuration,
  queueLabel,
  formatTime,
  h,
  link,
  statusBadge,
  table,
} from "../dom.js";
import type { PageContext } from "../route.js";

function queueRows(queues: QueueRow[]): HTMLElement {
  return table(
    ["Queue", "Depth", "Ready", "Deferred", "Running", "Oldest ready job waits", "State"],
    queues.map((q) => [
      link(queueLabel(q.name), "queues", queueLabel(q.name)),
      formatCount(q.depth),
      formatCount(q.ready),
      formatCount(q.deferred),
      formatCount(q.running),
      formatDuration(q.oldestAgeMs),
      q.paused ? h("span", { class: "badge badge-failed" }, "paused") : "active",
    ]),
    "No queues yet.",
  );
}

/** `#/queues`. */
export async function queuesPage(): Promise<Node> {
  const { queues } = await api.queues();
  return h("div", { class: "page queues" }, card("Queues", queueRows(queues)));
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
      row ? queueRows([row]) : h("p", { class: "muted" }, "This queue holds no jobs."),
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
