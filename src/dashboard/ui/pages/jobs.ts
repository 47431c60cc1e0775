/**
 * `#/jobs` (search by id, function, status, queue) and `#/jobs/<id>` (params, result, error with
 * traceback, runs timeline, lease, trace link, and the actions that fit the job's status).
 */
import { api, type JobDetail } from "../api.js";
import {
  actionButton,
  card,
  formText,
  formatDuration,
  formatTime,
  h,
  keyValues,
  link,
  prettyJson,
  queueLabel,
  statusBadge,
  table,
  type Child,
} from "../dom.js";
import { hashFor, type PageContext } from "../route.js";
import { JOB_HEADERS, jobRows } from "./queues.js";

const STATUSES = ["", "PENDING", "ACTIVE", "RETRYING", "COMPLETED", "FAILED", "CANCELLED"];
const FIELDS = ["id", "function", "status", "queue"] as const;

/** `#/jobs?id=&function=&status=&queue=`: the form, and the matching (or the newest) jobs. */
export async function jobsPage(ctx: PageContext): Promise<Node> {
  const value = (key: string) => ctx.query.get(key) ?? "";
  const input = (key: string, label: string) =>
    h("label", {}, label, h("input", { name: key, value: value(key), autocomplete: "off" }));
  const status = h(
    "select",
    { name: "status" },
    ...STATUSES.map((s) =>
      h("option", { value: s, selected: s === value("status").toUpperCase() }, s || "any"),
    ),
  );
  const form = h(
    "form",
    { class: "filters", id: "job-search" },
    input("id", "Job id"),
    input("function", "Function"),
    h("label", {}, "Status", status),
    input("queue", "Queue"),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const query = Object.fromEntries(FIELDS.map((key) => [key, formText(data, key)]));
    window.location.hash = hashFor("jobs", query);
  });
  const query = Object.fromEntries(FIELDS.map((key) => [key, value(key) || undefined]));
  const searched = FIELDS.some((key) => value(key) !== "");
  // without a filter the server lists the newest jobs from its recent-jobs index
  const { jobs } = await api.jobs(query);
  const results: Child = table(
    JOB_HEADERS,
    jobRows(jobs),
    searched ? "No job matches." : "No job finished recently.",
  );
  return h(
    "div",
    { class: "page jobs" },
    card("Find jobs", form),
    card(searched ? "Results" : "Recent jobs", results),
  );
}

/** The runs recorded in a job hash (`run_<k>_*`), as the data API's `jobRuns` reads them. */
function runs(hash: Record<string, string>): Array<Record<string, string | undefined>> {
  const count = Math.min(Number(hash.runs ?? 0) || 0, 100);
  return Array.from({ length: count }, (_, i) => {
    const k = i + 1;
    const field = (name: string) => hash[`run_${k}_${name}`];
    return {
      number: String(k),
      worker: field("worker"),
      started: field("started_at"),
      ended: field("ended_at"),
      outcome: field("outcome"),
      error: field("error"),
      errorType: field("error_type"),
    };
  });
}

function toMs(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (Number.isFinite(n)) return n > 1e12 ? n : n * 1000;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

function runsCard(hash: Record<string, string>): HTMLElement {
  const list = runs(hash);
  return card(
    "Runs",
    table(
      ["Run", "Worker", "Started", "Ended", "Took", "Outcome", "Error"],
      list.map((run) => {
        const started = toMs(run.started);
        const ended = toMs(run.ended);
        return [
          run.number,
          run.worker ?? "—",
          formatTime(started),
          formatTime(ended),
          started !== undefined && ended !== undefined ? formatDuration(ended - started) : "—",
          run.outcome ?? (ended === undefined ? "running" : "—"),
          run.error ? `${run.errorType ? `${run.errorType}: ` : ""}${run.error}` : "—",
        ];
      }),
      "No runs recorded.",
    ),
  );
}

/** The W3C trace id of the job's stored trace context, when it has one. */
export function traceId(hash: Record<string, string>): string | undefined {
  try {
    const context = JSON.parse(hash.trace_context ?? "{}") as Record<string, unknown>;
    const parent = typeof context.traceparent === "string" ? context.traceparent : "";
    const match = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(parent);
    return match?.[1];
  } catch {
    return undefined;
  }
}

/** Only http(s) links are followed: a `javascript:` URL would run script. */
function safeUrl(url: string | null): string | undefined {
  if (!url) return undefined;
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:"
      ? parsed.toString()
      : undefined;
  } catch {
    return undefined;
  }
}

function actions(detail: JobDetail, ctx: PageContext): HTMLElement | null {
  if (ctx.config.readOnly) return null;
  const { job } = detail;
  const status = (job.status ?? "").toUpperCase();
  const reload = () => ctx.reload();
  const buttons: HTMLElement[] = [];
  if (status === "PENDING" || status === "RETRYING" || status === "ACTIVE")
    buttons.push(
      actionButton({
        name: "cancel",
        label: "Cancel",
        danger: true,
        confirm: `Cancel job ${job.id}?`,
        run: () => api.jobAction(job.id, "cancel"),
        done: reload,
      }),
    );
  if (status === "FAILED")
    buttons.push(
      actionButton({
        name: "requeue",
        label: "Requeue from DLQ",
        run: () => api.jobAction(job.id, "requeue"),
        done: reload,
      }),
    );
  if (status !== "ACTIVE")
    buttons.push(
      actionButton({
        name: "replay",
        label: "Replay as a new job",
        confirm: `Enqueue a copy of job ${job.id}?`,
        run: () => api.jobAction(job.id, "replay"),
        done: (result) => {
          const id =
            (result as { id?: unknown; jobId?: unknown } | null)?.id ??
            (result as { jobId?: unknown } | null)?.jobId;
          if (typeof id === "string") window.location.hash = `#/jobs/${encodeURIComponent(id)}`;
        },
      }),
    );
  if (status === "PENDING" || status === "RETRYING") {
    const when = h("input", {
      type: "datetime-local",
      name: "at",
      "aria-label": "new run time (UTC)",
    });
    buttons.push(
      h(
        "span",
        { class: "inline-form" },
        when,
        actionButton({
          name: "reschedule",
          label: "Reschedule",
          run: () => {
            const at = when.value ? Date.parse(`${when.value}Z`) : Date.now();
            return api.jobAction(job.id, "reschedule", { at });
          },
          done: reload,
        }),
      ),
    );
  }
  if (status !== "ACTIVE")
    buttons.push(
      actionButton({
        name: "delete",
        label: "Delete",
        danger: true,
        confirm: `Delete job ${job.id}? This cannot be undone.`,
        run: () => api.jobAction(job.id, "delete"),
        done: () => (window.location.hash = "#/jobs"),
      }),
    );
  return card("Actions", h("div", { class: "actions" }, ...buttons));
}

/** `#/jobs/<id>`. */
export async function jobPage(ctx: PageContext): Promise<Node> {
  const id = ctx.params[0] ?? "";
  const detail = await api.job(id);
  const { job, hash } = detail;
  const trace = detail.traceId ?? traceId(hash);
  const traceHref = safeUrl(detail.traceUrl);
  const leaseSeconds = Number(hash.job_timeout_seconds ?? "") || undefined;
  const lease = detail.lease
    ? `held by ${job.workerId ?? "—"} until ${formatTime(detail.lease.expiresAt)}${leaseSeconds ? ` (job timeout ${leaseSeconds}s)` : ""}`
    : "none";
  return h(
    "div",
    { class: "page job" },
    card(
      `Job ${job.id}`,
      keyValues([
        ["Status", statusBadge(job.status)],
        ["Function", job.functionName],
        [
          "Queue",
          job.queueName
            ? link(queueLabel(job.queueName), "queues", queueLabel(job.queueName))
            : "—",
        ],
        ["Enqueued", formatTime(job.enqueueTime)],
        ["Runs at", formatTime(job.nextScheduledRunTime)],
        ["Started", formatTime(job.startTime)],
        ["Finished", formatTime(job.completionTime)],
        ["Retries", `${job.currentRetries} of ${job.maxRetries ?? "—"}`],
        ["Worker", job.workerId],
        ["Lease", lease],
        [
          "Trace",
          trace
            ? traceHref
              ? h("a", { href: traceHref, target: "_blank", rel: "noopener noreferrer" }, trace)
              : trace
            : "—",
        ],
      ]),
    ),
    actions(detail, ctx),
    card(
      "Params",
      h("pre", { class: "code", "data-field": "params" }, prettyJson(hash.job_params)),
    ),
    card("Result", h("pre", { class: "code", "data-field": "result" }, prettyJson(hash.result))),
    job.lastError
      ? card(
          "Last error",
          h(
            "p",
            { class: "error-text", "data-field": "error" },
            `${job.lastErrorType ? `${job.lastErrorType}: ` : ""}${job.lastError}`,
          ),
          job.lastErrorTraceback
            ? h(
                "pre",
                { class: "code traceback", "data-field": "traceback" },
                job.lastErrorTraceback,
              )
            : null,
        )
      : null,
    runsCard(hash),
    card(
      "Timeline",
      table(
        ["When", "Event", "Details"],
        detail.trace.map((event) => [formatTime(event.at), event.event, event.details]),
        "No events recorded.",
      ),
    ),
    h(
      "details",
      { class: "card" },
      h("summary", {}, "Raw hash"),
      keyValues(Object.entries(hash).sort(([a], [b]) => a.localeCompare(b))),
    ),
  );
}
