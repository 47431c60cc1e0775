import { field, int, type Problems, str } from "./values.js";

/** Credentials for HTTP basic auth of the dashboard (`dashboard_basic_auth = "user:password"`). */
export interface BasicAuthConfig {
  readonly user: string;
  readonly password: string;
}

/**
 * How the dashboard authenticates requests: a bearer token, basic auth, or both (either one
 * is accepted). `undefined` on {@link ObservabilityConfig.dashboardAuth} means no auth.
 */
export interface DashboardAuthConfig {
  readonly token?: string;
  readonly basic?: BasicAuthConfig;
}

/** The metrics and dashboard part of the resolved configuration (README "Metrics", "Dashboard"). */
export interface ObservabilityConfig {
  /** Port of the Prometheus `/metrics` endpoint the worker daemon serves (0: off, the default). */
  readonly metricsPort: number;
  /**
   * Host the `/metrics` endpoint binds (default loopback "127.0.0.1"; "0.0.0.0" lets a
   * Prometheus on another host scrape it).
   */
  readonly metricsHost: string;
  /** Port of the dashboard the worker daemon serves (0: off, the default). */
  readonly dashboardPort: number;
  /** Host the dashboard binds (default loopback "127.0.0.1"). */
  readonly dashboardHost: string;
  /** Auth of the dashboard from `dashboard_auth_token` / `dashboard_basic_auth` or the env. */
  readonly dashboardAuth: DashboardAuthConfig | undefined;
  /**
   * Link template to the user's tracing UI with `{trace_id}` in it, e.g.
   * `"https://tempo.example/trace/{trace_id}"` (undefined: no link).
   */
  readonly dashboardTraceUrl: string | undefined;
}

/** Environment overrides of the observability keys (secrets are better kept out of files). */
export interface ObservabilityOverrides {
  /** `RRQ_DASHBOARD_TOKEN`. */
  dashboardAuthToken?: string;
  /** `RRQ_DASHBOARD_BASIC_AUTH` as `user:password`. */
  dashboardBasicAuth?: string;
}

/** The top-level keys this file reads. */
export const OBSERVABILITY_KEYS = [
  "metrics_port",
  "metrics_host",
  "dashboard_port",
  "dashboard_host",
  "dashboard_auth_token",
  "dashboard_basic_auth",
  "dashboard_trace_url",
] as const;

/** Default host of the dashboard and of the metrics endpoint: loopback only. */
export const DEFAULT_DASHBOARD_HOST = "127.0.0.1";

/**
 * Parses `user:password` (the password may contain ':'); records a problem naming `key`
 * without echoing the secret.
 */
function parseBasic(value: string, key: string, problems: Problems): BasicAuthConfig | undefined {
  const colon = value.indexOf(":");
  if (colon <= 0 || colon === value.length - 1) {
    problems.add(`${key} must be "user:password" with a non-empty user and password`);
    return undefined;
  }
  return Object.freeze({ user: value.slice(0, colon), password: value.slice(colon + 1) });
}

/**
 * Reads the metrics and dashboard keys of a `[rrq]` table, with the environment overrides
 * applied on top. Problems are collected in `problems`; secret values never appear in them.
 */
export function readObservability(
  raw: Record<string, unknown>,
  problems: Problems,
  overrides: ObservabilityOverrides = {},
): ObservabilityConfig {
  const f = <T>(key: string, read: (v: unknown, k: string) => T, fallback: T) =>
    problems.attempt(() => field(raw, key, "", read, fallback), fallback);
  const secret = (key: string): string | undefined =>
    raw[key] === undefined
      ? undefined
      : typeof raw[key] === "string" && raw[key].trim() !== ""
        ? raw[key]
        : (problems.add(`${key} must be a non-empty string`), undefined);
  const token =
    overrides.dashboardAuthToken !== undefined && overrides.dashboardAuthToken !== ""
      ? overrides.dashboardAuthToken
      : secret("dashboard_auth_token");
  const basicText =
    overrides.dashboardBasicAuth !== undefined && overrides.dashboardBasicAuth !== ""
      ? overrides.dashboardBasicAuth
      : secret("dashboard_basic_auth");
  const basicKey =
    overrides.dashboardBasicAuth !== undefined && overrides.dashboardBasicAuth !== ""
      ? "RRQ_DASHBOARD_BASIC_AUTH"
      : "dashboard_basic_auth";
  const basic = basicText === undefined ? undefined : parseBasic(basicText, basicKey, problems);
  const traceUrl = f<string | undefined>("dashboard_trace_url", str(), undefined);
  if (traceUrl !== undefined && !traceUrl.includes("{trace_id}"))
    problems.add(`dashboard_trace_url must contain {trace_id}, got "${traceUrl}"`);
  const auth: DashboardAuthConfig | undefined =
    token === undefined && basic === undefined
      ? undefined
      : Object.freeze({
          ...(token === undefined ? {} : { token }),
          ...(basic === undefined ? {} : { basic }),
        });
  return Object.freeze({
    metricsPort: f("metrics_port", int(0, 65535), 0),
    metricsHost: f("metrics_host", str(), DEFAULT_DASHBOARD_HOST),
    dashboardPort: f("dashboard_port", int(0, 65535), 0),
    dashboardHost: f("dashboard_host", str(), DEFAULT_DASHBOARD_HOST),
    dashboardAuth: auth,
    dashboardTraceUrl: traceUrl,
  });
}

/** `RRQ_DASHBOARD_TOKEN` and `RRQ_DASHBOARD_BASIC_AUTH` from the environment. */
export function observabilityEnv(env: NodeJS.ProcessEnv): ObservabilityOverrides {
  const overrides: ObservabilityOverrides = {};
  if (env.RRQ_DASHBOARD_TOKEN) overrides.dashboardAuthToken = env.RRQ_DASHBOARD_TOKEN;
  if (env.RRQ_DASHBOARD_BASIC_AUTH) overrides.dashboardBasicAuth = env.RRQ_DASHBOARD_BASIC_AUTH;
  return overrides;
}
