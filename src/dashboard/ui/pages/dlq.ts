/**
 * `#/dlq`: the dead-letter queue grouped by error, function and queue; filters; the first 100
 * entries with a requeue button each; bulk requeue and purge of what the filters select, after a
 * dry-run count and a confirmation.
 */
import { api, type DlqFilters } from "../api.js";
import {
  actionButton,
  card,
  formatCount,
  formatTime,
  h,
  queueLabel,
  keyValues,
  link,
  statusBadge,
  table,
  formText,
  toast,
} from "../dom.js";
import { hashFor, type PageContext } from "../route.js";

const FILTERS = ["name", "function", "queue", "error"] as const;

function filtersOf(query: URLSearchParams): DlqFilters {
  const filters: DlqFilters = {};
  for (const key of FILTERS) {
    const value = query.get(key);
    if (value) filters[key] = value;
  }
  return filters;
}

/** A grouped count table whose rows set that filter. */
function groups(
  title: string,
  key: "function" | "queue" | "error",
  rows: Array<[string, number]>,
  filters: DlqFilters,
): HTMLElement {
  return h(
    "div",
    { class: "group" },
    h("h3", {}, title),
    table(
      [title, "Entries"],
      rows.slice(0, 20).map(([value, count]) => [
        h(
          "a",
          {
            href: hashFor("dlq", {
              ...filters,
              [key]: key === "queue" ? queueLabel(value) : value,
            }),
          },
          (key === "queue" ? queueLabel(value) : value) || "(none)",
        ),
        formatCount(count),
      ]),
      "None.",
    ),
  );
}

function bulk(filters: DlqFilters, ctx: PageContext): HTMLElement | null {
  if (ctx.config.readOnly) return null;
  if (filters.error)
    return card(
      "Bulk actions",
      h(
        "p",
        { class: "muted" },
        "Bulk actions select by queue and function; clear the error filter to use them.",
      ),
    );
  const described =
    Object.entries(filters)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ") || "no filter: every entry";
  const count = h("span", { class: "muted", "data-field": "dry-run" }, "");
  const dryRun = actionButton({
    name: "dry-run",
    label: "Count matching (dry run)",
    run: () => api.dlqBulk("requeue", filters, true),
    done: (result) => {
      const n = (result as { count?: unknown } | null)?.count;
      count.textContent = typeof n === "number" ? `${n} entries match` : "";
    },
  });
  const bulkAction = (action: "requeue" | "purge", label: string) =>
    actionButton({
      name: `bulk-${action}`,
      label,
      danger: action === "purge",
      confirm: `${label}: every DLQ entry matching ${described}. Continue?`,
      run: async () => {
        const preview = await api.dlqBulk(action, filters, true);
        const n = typeof preview.count === "number" ? preview.count : undefined;
        if (n === 0) {
          toast("Nothing matches.");
          return preview;
        }
        return api.dlqBulk(action, filters, false);
      },
      done: () => ctx.reload(),
    });
  return card(
    "Bulk actions",
    h("p", {}, "Applies to: ", h("strong", {}, described)),
    h(
      "div",
      { class: "actions" },
      dryRun,
      count,
      bulkAction("requeue", "Requeue matching"),
      bulkAction("purge", "Purge matching"),
    ),
  );
}

/** `#/dlq?name=&function=&queue=&error=`. */
export async function dlqPage(ctx: PageContext): Promise<Node> {
  const filters = filtersOf(ctx.query);
  const { summary, entries, examined } = await api.dlq(filters);
  const input = (key: (typeof FILTERS)[number], label: string) =>
    h(
      "label",
      {},
      label,
      h("input", { name: key, value: filters[key] ?? "", autocomplete: "off" }),
    );
  const form = h(
    "form",
    { class: "filters", id: "dlq-filters" },
    input("function", "Function"),
    input("queue", "Queue"),
    input("error", "Error"),
    input("name", "DLQ"),
    h("button", { type: "submit" }, "Filter"),
    h("a", { href: "#/dlq", class: "button-link" }, "Clear"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    window.location.hash = hashFor(
      "dlq",
      Object.fromEntries(FILTERS.map((k) => [k, formText(data, k)])),
    );
  });
  const reload = () => ctx.reload();
  return h(
    "div",
    { class: "page dlq" },
    card(
      `Dead-letter queue ${summary.dlq}`,
      keyValues([
        ["Entries", formatCount(summary.entries)],
        ["With a job hash", formatCount(summary.jobs)],
        ["Newest failure", formatTime(summary.newest ?? null)],
        ["Oldest failure", formatTime(summary.oldest ?? null)],
        ["Trimmed by the caps", formatCount(summary.trimmed ?? 0)],
      ]),
      h(
        "div",
        { class: "groups" },
        groups("Error", "error", summary.byError ?? [], filters),
        groups("Function", "function", summary.byFunction ?? [], filters),
        groups("Queue", "queue", summary.byQueue ?? [], filters),
      ),
    ),
    card("Filter", form),
    bulk(filters, ctx),
    card(
      `Entries (newest ${entries.length}${examined !== undefined ? ` of ${formatCount(examined)} examined` : ""})`,
      table(
        ["Job", "Function", "Queue", "Status", "Failed", "Error", ""],
        entries.map((job) => [
          link(job.id, "jobs", job.id),
          job.functionName ?? "—",
          queueLabel(job.queueName),
          statusBadge(job.status),
          formatTime(job.completionTime),
          h(
            "span",
            { class: "error-text" },
            `${job.lastErrorType ? `${job.lastErrorType}: ` : ""}${job.lastError ?? "—"}`,
          ),
          ctx.config.readOnly
            ? null
            : actionButton({
                name: "requeue",
                label: "Requeue",
                run: () => api.jobAction(job.id, "requeue"),
                done: reload,
              }),
        ]),
        "The DLQ holds no matching entry.",
      ),
    ),
  );
}
