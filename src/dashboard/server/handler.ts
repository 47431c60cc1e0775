import type { IncomingMessage, ServerResponse } from "node:http";
import { CronApi } from "../../api/cron.js";
import { RrqApi } from "../../api/index.js";
import type { CronJobConfig, ResolvedConfig } from "../../config/config.js";
import { RrqError } from "../../errors.js";
import { packageVersion } from "../../orchestrator/implementation.js";
import { capText, MAX_LOG_LINE } from "../../telemetry/log-safety.js";
import { DashboardActions } from "./actions.js";
import {
  errorAnswer,
  HttpError,
  readJsonBody,
  securityHeaders,
  sendError,
  sendJson,
} from "./http.js";
import { DashboardReads } from "./reads.js";
import {
  appendCookie,
  authenticate,
  cookie,
  CSRF_COOKIE,
  csrfProblem,
  isSecure,
  newCsrfToken,
  parseCookies,
  SESSION_COOKIE,
  type DashboardAuth,
} from "./security.js";
import { defaultUiDir, serveStatic, uiBuilt } from "./static.js";

/** Options of {@link createDashboardHandler}. */
export interface DashboardOptions {
  /**
   * The data API to read and act through (the caller keeps ownership). Without it, one is
   * opened from `config` and closed by `handler.close()`.
   */
  readonly api?: RrqApi;
  /**
   * A resolved rrq.toml: the Redis connection (when `api` is not given), cron entries, the
   * trace link template and the dashboard's auth, unless the options below say otherwise.
   */
  readonly config?: ResolvedConfig;
  /** Refuse every action (403) and tell the UI to hide them. */
  readonly readOnly?: boolean;
  /**
   * Path prefix the dashboard answers under in a plain node:http server, e.g. "/rrq". In
   * Express, mount it with `app.use("/rrq", handler)` instead (Express strips the prefix).
   */
  readonly basePath?: string;
  /** Token and/or basic auth (default: `config.dashboardAuth`; none: no auth). */
  readonly auth?: DashboardAuth;
  /** Link template with `{trace_id}` (default: `config.dashboardTraceUrl`). */
  readonly traceUrl?: string;
  /** Cron entries to list and trigger (default: `config.cronJobs`). */
  readonly cronJobs?: readonly CronJobConfig[];
  /** Directory of the built UI (default: the package's `dist/src/dashboard/ui/`). */
  readonly uiDir?: string;
  /** Interval of the live `api/events` ticks, ms (default 2000). */
  readonly liveIntervalMs?: number;
  /** Where server errors are reported (default: stderr). Secrets never reach it. */
  readonly onError?: (error: unknown, context: string) => void;
}

/** A request handler for node:http, Express or Connect, with `close()` for shutdown. */
export interface DashboardHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void;
  /** Ends the live streams and closes the data API when the handler opened it. */
  close(): Promise<void>;
  /** Whether actions are refused. */
  readonly readOnly: boolean;
}

type RoutedRequest = IncomingMessage & { baseUrl?: string; originalUrl?: string };

const normalizeBase = (base: string | undefined): string => {
  if (!base || base === "/") return "";
  return `/${base.replace(/^\/+|\/+$/g, "")}`;
};

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, "invalid_argument", "malformed URL");
  }
}

/**
 * The dashboard as a request handler: the UI's files at `<base>/`, the JSON API under
 * `<base>/api/` (README "Dashboard"). Usable in node:http (`http.createServer(handler)`), and in
 * Express or Connect (`app.use("/rrq", handler)`): a request outside `basePath` goes to `next`
 * when there is one, else gets a 404.
 */
export function createDashboardHandler(options: DashboardOptions): DashboardHandler {
  const config = options.config;
  if (!options.api && !config)
    throw new TypeError("createDashboardHandler needs `api` or `config`");
  const api = options.api ?? RrqApi.fromConfig(config!);
  const ownsApi = !options.api;
  const auth = options.auth ?? config?.dashboardAuth;
  const cronJobs = options.cronJobs ?? config?.cronJobs ?? [];
  const cron = cronJobs.length ? new CronApi(api.redis, api.settings, cronJobs) : undefined;
  const reads = new DashboardReads(api, cron, options.traceUrl ?? config?.dashboardTraceUrl);
  const actions = new DashboardActions(api, cron);
  const readOnly = options.readOnly ?? false;
  const basePath = normalizeBase(options.basePath);
  const uiDir = options.uiDir ?? defaultUiDir();
  const liveMs = Math.max(100, options.liveIntervalMs ?? 2000);
  const report =
    options.onError ??
    ((error: unknown, context: string) => {
      // Redis being down is one line, at most every 10 s (every open page polls); anything
      // else is a bug worth its stack
      if (error instanceof RrqError && error.code === "redis_unavailable") {
        if (Date.now() - lastUnavailable < 10_000) return;
        lastUnavailable = Date.now();
        process.stderr.write(`rrq dashboard: ${capText(error.message, MAX_LOG_LINE)}\n`);
        return;
      }
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      process.stderr.write(`rrq dashboard: ${context}: ${capText(text, MAX_LOG_LINE)}\n`);
    });
  let lastUnavailable = 0;
  const streams = new Set<ServerResponse>();
  // live streams share one overview per tick interval, however many tabs are open
  let cached: { at: number; value: Promise<unknown> } | undefined;
  const overview = (): Promise<unknown> => {
    const now = Date.now();
    if (!cached || now - cached.at > Math.min(1000, liveMs / 2)) {
      const value = reads.overview(now);
      value.catch(() => (cached = undefined));
      cached = { at: now, value };
    }
    return cached.value;
  };

  async function getRoute(parts: string[], query: URLSearchParams): Promise<unknown> {
    const [head, second, third] = parts;
    const q = (name: string) => query.get(name) ?? undefined;
    const rawLimit = Number.parseInt(query.get("limit") ?? "", 10);
    const limit = Number.isFinite(rawLimit) ? rawLimit : undefined;
    if (parts.length === 1) {
      switch (head) {
        case "config":
          return { readOnly, basePath, version: packageVersion() };
        case "overview":
          return reads.overview();
        case "queues":
          return { queues: await reads.queueRows() };
        case "jobs":
          return reads.jobs({
            id: q("id"),
            function: q("function"),
            status: q("status"),
            queue: q("queue"),
            limit,
          });
        case "dlq":
          return reads.dlq({
            name: q("name"),
            function: q("function"),
            queue: q("queue"),
            error: q("error"),
          });
        case "workers":
          return reads.workers();
        case "cron":
          return reads.cronEntries();
      }
    }
    if (head === "jobs" && parts.length === 2) return reads.job(second!);
    if (head === "queues" && third === "jobs" && parts.length === 3)
      return reads.queueJobs(second!, { state: q("state"), cursor: q("cursor"), limit });
    throw new HttpError(404, "not_found", "no such endpoint");
  }

  async function postRoute(parts: string[], body: Record<string, unknown>): Promise<unknown> {
    const [head, second, third] = parts;
    if (head === "jobs" && parts.length === 3) return actions.job(second!, third!, body);
    if (head === "dlq" && parts.length === 2) return actions.dlq(second!, body);
    if (head === "cron" && third === "trigger" && parts.length === 3)
      return actions.cronTrigger(second!);
    if (head === "workers" && parts.length === 3) return actions.worker(second!, third!);
    if (head === "queues" && parts.length === 3) return actions.queue(second!, third!, body);
    throw new HttpError(404, "not_found", "no such action");
  }

  function live(req: IncomingMessage, res: ServerResponse): void {
    res.statusCode = 200;
    res.setHeader("Content-Type", "text/event-stream; charset=utf-8");
    res.setHeader("Cache-Control", "no-store");
    res.setHeader("Connection", "keep-alive");
    res.setHeader("X-Accel-Buffering", "no");
    res.flushHeaders();
    res.write(`retry: ${liveMs}\n\n`);
    streams.add(res);
    let busy = false;
    const tick = () => {
      if (busy) return;
      busy = true;
      overview()
        .then((value) => res.write(`event: tick\ndata: ${JSON.stringify(value)}\n\n`))
        .catch((error: unknown) => {
          const { code, message } = errorAnswer(error);
          res.write(`event: error\ndata: ${JSON.stringify({ error: { code, message } })}\n\n`);
        })
        .finally(() => (busy = false));
    };
    tick();
    const timer = setInterval(tick, liveMs);
    const stop = () => {
      clearInterval(timer);
      streams.delete(res);
    };
    req.on("close", stop);
    res.on("close", stop);
  }

  async function handle(req: RoutedRequest, res: ServerResponse, next?: (e?: unknown) => void) {
    const started = performance.now();
    const timing = () =>
      res.setHeader("Server-Timing", `app;dur=${(performance.now() - started).toFixed(1)}`);
    // concatenated, not resolved: a request path `//x/y` is a path, not a host
    const url = new URL(`http://dashboard.invalid${req.url?.startsWith("/") ? req.url : "/"}`);
    // one leading slash: a redirect to `//host/...` would leave the site
    let path = url.pathname.replace(/^\/{2,}/, "/");
    // Express/Connect mounts strip their prefix (req.baseUrl keeps it); node:http does not.
    const mounted = req.baseUrl ?? "";
    if (basePath && !mounted) {
      if (path === basePath) path = "";
      else if (path.startsWith(`${basePath}/`)) path = path.slice(basePath.length);
      else if (next) return next();
      else return sendError(res, 404, "not_found", "not found");
    }
    const external = `${mounted}${mounted ? "" : basePath}`;
    const originalPath = new URL(req.originalUrl ?? req.url ?? "/", "http://x").pathname;
    securityHeaders(res);
    const method = req.method ?? "GET";
    // the UI uses relative URLs, so its page must be addressed with the trailing slash
    if (path === "" || (path === "/" && mounted && !originalPath.endsWith("/"))) {
      res.statusCode = 308;
      res.setHeader("Location", `${external}/${url.search}`);
      return res.end();
    }
    const cookiePath = `${external}/`;
    const secure = isSecure(req);
    const queryToken = url.searchParams.get("token");
    const outcome = authenticate(req, auth, queryToken);
    if (!outcome.ok) {
      if (outcome.basic)
        res.setHeader("WWW-Authenticate", 'Basic realm="rrq dashboard", charset="UTF-8"');
      return sendError(res, 401, "unauthorized", "authentication required");
    }
    if (outcome.setSession) {
      appendCookie(
        res,
        cookie(SESSION_COOKIE, outcome.setSession, { path: cookiePath, httpOnly: true, secure }),
      );
      if (method === "GET" || method === "HEAD") {
        url.searchParams.delete("token");
        res.statusCode = 303;
        res.setHeader("Location", `${external}${path}${url.search}`);
        return res.end();
      }
    }
    if (!parseCookies(req)[CSRF_COOKIE])
      appendCookie(
        res,
        cookie(CSRF_COOKIE, newCsrfToken(), { path: cookiePath, httpOnly: false, secure }),
      );

    if (path.startsWith("/api/") || path === "/api") {
      const parts = path
        .slice("/api/".length)
        .split("/")
        .filter((p) => p !== "")
        .map(decodeSegment);
      if (method === "GET" || method === "HEAD") {
        if (parts.length === 1 && parts[0] === "events") {
          if (method === "HEAD") return sendJson(res, 200, {});
          return live(req, res);
        }
        const body = await getRoute(parts, url.searchParams);
        timing();
        return sendJson(res, 200, body);
      }
      if (method !== "POST") {
        res.setHeader("Allow", "GET, POST");
        return sendError(res, 405, "method_not_allowed", `${method} is not allowed`);
      }
      if (readOnly) return sendError(res, 403, "read_only", "the dashboard is read-only");
      const problem = csrfProblem(req);
      if (problem) return sendError(res, 403, "csrf", problem);
      const result = await postRoute(parts, await readJsonBody(req));
      timing();
      return sendJson(res, 200, result);
    }
    if (method !== "GET" && method !== "HEAD")
      return sendError(res, 405, "method_not_allowed", `${method} is not allowed`);
    if (!uiBuilt(uiDir)) {
      res.statusCode = 503;
      res.setHeader("Content-Type", "text/plain; charset=utf-8");
      return res.end("The dashboard UI is not built: run `npm run build`.\n");
    }
    if (await serveStatic(res, uiDir, path, method === "HEAD")) return;
    return sendError(res, 404, "not_found", "not found");
  }

  const handler = ((req: RoutedRequest, res: ServerResponse, next?: (e?: unknown) => void) => {
    handle(req, res, next).catch((error: unknown) => {
      const answer = errorAnswer(error);
      if (answer.status >= 500)
        report(error, `${req.method ?? "GET"} ${req.url?.split("?")[0] ?? ""}`);
      if (res.headersSent) return void res.end();
      sendError(res, answer.status, answer.code, answer.message);
    });
  }) as DashboardHandler;
  handler.close = async () => {
    for (const res of streams) res.end();
    streams.clear();
    if (ownsApi) await api.close();
  };
  Object.defineProperty(handler, "readOnly", { value: readOnly });
  return handler;
}
