/**
 * The dashboard's client for the JSON API under `<base>/api/` (the server's contract). Every
 * request is same-origin and relative to the page, so the dashboard works at any base path.
 * Actions are POSTs carrying the CSRF token of the `rrq_csrf` cookie (double-submit).
 */

/** Outcome counters (the data API's `Counters`). */
export interface Counters {
  completed: number;
  retried: number;
  failed: number;
  cancelled: number;
  expired: number;
  processed: number;
  failedAttempts: number;
}

/** One UTC day of history. */
export interface DayStats extends Counters {
  date: string;
}

/** One minute of the overview's live series. */
export interface MinuteStats {
  t: number;
  completed: number;
  failed: number;
  retried: number;
}

/** One queue row. */
export interface QueueRow {
  name: string;
  depth: number;
  ready: number;
  deferred: number;
  oldestAgeMs: number | null;
  running: number;
  /** The queue's pause (`rrq queue pause`), or null when workers claim from it. */
  paused?: { since: number; reason?: string } | null;
  /** Jobs parked by flow control (waiting, but not counted in depth). */
  parked?: number;
}

/** `GET overview`. */
export interface Overview {
  totals: Counters;
  history: DayStats[];
  perMinute: MinuteStats[];
  queues: QueueRow[];
  workers: { count: number; quiet: number };
  dlq: { entries: number };
  /** Enqueue→start wait of the newest finished jobs. */
  latency?: { samples: number; avgMs: number | null; p95Ms: number | null };
}

/** A job as the data API's `jobJson` writes it (times are ISO strings). */
export interface JobJson {
  id: string;
  functionName: string | null;
  queueName: string | null;
  status: string | null;
  enqueueTime: string | null;
  startTime: string | null;
  completionTime: string | null;
  nextScheduledRunTime: string | null;
  currentRetries: number;
  maxRetries: number | null;
  lastError: string | null;
  lastErrorType: string | null;
  lastErrorTraceback: string | null;
  workerId: string | null;
  /** Queue pages: the entry's run-at time (its score). */
  runAt?: string;
}

/** One row of a job's timeline (`at` in epoch ms). */
export interface TraceEvent {
  at: number;
  event: string;
  details: string;
  errorType?: string;
}

/** `GET jobs/:id`. */
export interface JobDetail {
  job: JobJson;
  hash: Record<string, string>;
  trace: TraceEvent[];
  /** The rrqkit lease a running job holds, when it holds one. */
  lease?: { expiresAt: string } | null;
  traceId?: string | null;
  traceUrl: string | null;
}

/** The DLQ summary (counts grouped by queue, function and error). */
export interface DlqSummary {
  dlq: string;
  entries: number;
  jobs: number;
  avgRetries?: number | null;
  newest?: number | null;
  oldest?: number | null;
  byQueue: Array<[string, number]>;
  byFunction: Array<[string, number]>;
  byError: Array<[string, number]>;
  trimmed?: number;
}

/** A worker's health record. */
export interface WorkerHealth {
  id: string;
  ttlSeconds: number;
  health: Record<string, unknown> | null | undefined;
  implementation?: string | null;
  version?: string | null;
  status?: string | null;
  /** Quiet: claiming nothing, finishing what runs. */
  quiet?: boolean;
  quietSince?: string | null;
}

/** One cron entry. */
export interface CronRow {
  id: string;
  function: string;
  schedule: string;
  queue: string | null;
  lastFire: number | string | null;
  nextFire: number | string | null;
  /** Why the entry cannot fire (a schedule that does not parse). */
  error?: string;
}

/** `GET config`. */
export interface UiConfig {
  readOnly: boolean;
  basePath: string;
  version: string;
}

/** DLQ filters as the `dlq` query and the bulk actions take them. */
export interface DlqFilters {
  name?: string;
  function?: string;
  queue?: string;
  error?: string;
}

/** An error the API answered with (`{error: {code, message}}`) or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The page's URL without the hash: the base every API path is resolved against. */
function pageBase(): string {
  return location.href.split("#")[0] ?? location.href;
}

/** The absolute URL of an API path (`overview`, `jobs/abc`, …). */
export function apiUrl(path: string, query?: Record<string, string | undefined>): string {
  const url = new URL(`api/${path}`, pageBase());
  for (const [key, value] of Object.entries(query ?? {}))
    if (value !== undefined && value !== "") url.searchParams.set(key, value);
  return url.toString();
}

/** The CSRF token the server set in the `rrq_csrf` cookie on page load. */
export function csrfToken(): string {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "rrq_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

async function parse<T>(response: Response): Promise<T> {
  const text = await response.text();
  let body: unknown = undefined;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(
      response.status,
      error?.code ?? String(response.status),
      error?.message ?? (response.statusText || `HTTP ${response.status}`),
    );
  }
  return body as T;
}

/** GETs an API path and parses its JSON. */
export async function get<T>(path: string, query?: Record<string, string | undefined>): Promise<T> {
  const response = await fetch(apiUrl(path, query), {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  return parse<T>(response);
}

/** POSTs an action with its JSON body and the CSRF header. */
export async function post<T = unknown>(path: string, body: unknown = {}): Promise<T> {
  const response = await fetch(apiUrl(path), {
    method: "POST",
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      "Content-Type": "application/json",
      "X-CSRF-Token": csrfToken(),
    },
    body: JSON.stringify(body),
  });
  return parse<T>(response);
}

/** The typed calls of every page. */
export const api = {
  config: () => get<UiConfig>("config"),
  overview: () => get<Overview>("overview"),
  queues: () => get<{ queues: QueueRow[] }>("queues"),
  queueJobs: (name: string, state: string, cursor?: string) =>
    get<{ jobs: JobJson[]; next: string | null }>(`queues/${encodeURIComponent(name)}/jobs`, {
      state,
      cursor,
      limit: "50",
    }),
  jobs: (query: Record<string, string | undefined>) =>
    get<{ jobs: JobJson[] }>("jobs", { ...query, limit: "50" }),
  job: (id: string) => get<JobDetail>(`jobs/${encodeURIComponent(id)}`),
  dlq: (filters: DlqFilters) =>
    get<{ summary: DlqSummary; entries: JobJson[]; examined?: number }>("dlq", { ...filters }),
  workers: () => get<{ workers: WorkerHealth[] }>("workers"),
  cron: () => get<{ entries: CronRow[] }>("cron"),
  jobAction: (id: string, action: string, body: unknown = {}) =>
    post(`jobs/${encodeURIComponent(id)}/${action}`, body),
  dlqBulk: (action: "requeue" | "purge", filters: DlqFilters, dryRun: boolean) =>
    post<Record<string, unknown>>(`dlq/${action}`, {
      filters,
      dryRun,
      ...(dryRun ? {} : { confirm: true }),
    }),
  cronTrigger: (id: string) => post(`cron/${encodeURIComponent(id)}/trigger`),
  workerAction: (id: string, action: "quiet" | "resume") =>
    post(`workers/${encodeURIComponent(id)}/${action}`),
  queueAction: (name: string, action: "pause" | "resume", reason?: string) =>
    post(`queues/${encodeURIComponent(name)}/${action}`, reason ? { reason } : {}),
};
