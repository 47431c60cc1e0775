import { availableParallelism } from "node:os";
import { isLoopbackHost } from "@rrqkit/runner/protocol";
import { ConfigError } from "../errors.js";
import { queueKey } from "../store/keys.js";
import { DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS, redisDsnProblem } from "../store/redis.js";
import { FLOW_CONTROL_KEYS, readFlowControl, type FlowControlConfig } from "./flow-control.js";
import { JOB_CONTROL_KEYS, readJobControl, type JobControlConfig } from "./job-control.js";
import { LIVE_KEYS, readLive, type LiveConfig } from "./live.js";
import {
  OBSERVABILITY_KEYS,
  readObservability,
  type ObservabilityConfig,
  type ObservabilityOverrides,
} from "./observability.js";
import {
  bool,
  field,
  int,
  isTable,
  num,
  oneOf,
  Problems,
  rejectUnknownKeys,
  str,
  stringMap,
  strings,
  table,
  unknownKeyProblems,
} from "./values.js";

/**
 * How the orchestrator reaches a runner: a process over stdio, a Unix socket or TCP, or (Node
 * handlers only) "inprocess": the handler module is loaded into the orchestrator itself.
 */
export type RunnerTransport = "stdio" | "unix" | "tcp" | "inprocess";

/** One `[rrq.runners.<name>]` table, fully defaulted. */
export interface RunnerConfig {
  readonly name: string;
  readonly type: "socket";
  readonly cmd: readonly string[];
  readonly poolSize: number;
  readonly maxInFlight: number;
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string | undefined;
  /** Default: "tcp" when tcp_port is set (RRQ-style tables), else "unix". */
  readonly transport: RunnerTransport;
  readonly encoding: "json" | "msgpack";
  readonly tcpHost: string;
  readonly tcpPort: number | undefined;
  readonly allowedHosts: readonly string[];
  readonly responseTimeoutSeconds: number | undefined;
  /**
   * transport "inprocess": the ES module whose default (or `registry`) export is the
   * `@rrqkit/runner` Registry, relative to `cwd` (else the orchestrator's working directory).
   */
  readonly handlers: string | undefined;
}

/** One `[[rrq.cron_jobs]]` entry. */
export interface CronJobConfig {
  readonly functionName: string;
  readonly schedule: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly queueName: string | undefined;
  readonly unique: boolean;
}

/** The `[rrq.watch]` table. */
export interface WatchConfig {
  readonly path: string;
  readonly includePatterns: readonly string[];
  readonly ignorePatterns: readonly string[];
  readonly noGitignore: boolean;
  readonly preRestartCmds: readonly (readonly string[])[];
  readonly preRestartCwd: string | undefined;
  readonly preRestartTimeoutSeconds: number | undefined;
}

/**
 * The configuration, resolved once from rrq.toml, environment and CLI flags into frozen,
 * fully defaulted values. Nothing downstream reads raw options. Defaults are RRQ 0.11's.
 */
export interface ResolvedConfig
  extends JobControlConfig, FlowControlConfig, ObservabilityConfig, LiveConfig {
  readonly redisDsn: string;
  /**
   * rrqkit: how long CLI commands and producers wait for one Redis connection attempt before
   * failing with `redis_unavailable` (`redis_connect_timeout_seconds`, env
   * `RRQ_REDIS_CONNECT_TIMEOUT`; default 5). The worker daemon keeps reconnecting instead.
   */
  readonly redisConnectTimeoutSeconds: number;
  /** Full queue key, e.g. "rrq:queue:default". */
  readonly defaultQueueName: string;
  readonly defaultDlqName: string;
  readonly defaultMaxRetries: number;
  readonly defaultJobTimeoutSeconds: number;
  readonly defaultLockTimeoutExtensionSeconds: number;
  readonly defaultResultTtlSeconds: number;
  readonly defaultPollDelaySeconds: number;
  readonly runnerConnectTimeoutMs: number;
  readonly runnerShutdownTermGraceSeconds: number;
  readonly runnerEnableInflightCancelHints: boolean;
  readonly captureRunnerOutput: boolean;
  readonly defaultUniqueJobLockTtlSeconds: number;
  readonly defaultRunnerName: string;
  /** False when `default_runner_name` is RRQ's built-in default ("python"), not set in the file. */
  readonly defaultRunnerNameExplicit: boolean;
  readonly runnerManagementMode: "managed" | "external";
  readonly runners: Readonly<Record<string, RunnerConfig>>;
  /** Keys are full queue keys. */
  readonly runnerRoutes: Readonly<Record<string, string>>;
  readonly workerHealthCheckIntervalSeconds: number;
  readonly workerHealthCheckTtlBufferSeconds: number;
  readonly baseRetryDelaySeconds: number;
  readonly maxRetryDelaySeconds: number;
  readonly workerShutdownGracePeriodSeconds: number;
  readonly cronJobs: readonly CronJobConfig[];
  readonly watch: WatchConfig;
  readonly correlationMappings: Readonly<Record<string, string>>;
  /** rrqkit: seconds to wait for a runner to confirm a cancel before recycling its process. */
  readonly runnerCancelGraceSeconds: number;
  /** rrqkit: validate every frame against schemas/ (also RRQ_STRICT_FRAMES=1). */
  readonly strictFrames: boolean;
  /** rrqkit: lifetime of a job's lease (its lock); renewed while the job runs. */
  readonly leaseSeconds: number;
  /** rrqkit: how often leases are renewed and expired leases are looked for. */
  readonly leaseRenewIntervalSeconds: number;
  /** rrqkit: recoveries after which an interrupted job goes to the DLQ as poison (0: never). */
  readonly maxJobRecoveries: number;
  /**
   * rrqkit: seconds the worker waits for a reply to one Redis command before treating it as
   * failed (a silent link); default lease / 2, between 1 and 5.
   */
  readonly redisCommandTimeoutSeconds: number;
  /**
   * Settings that are accepted but have no effect, or look like a mistake, in words (e.g.
   * `worker_concurrency`). Always present, empty when there is nothing to say; the worker prints
   * each at start and `rrq check` can show them.
   */
  readonly warnings: readonly string[];
  /**
   * rrqkit: the job catalog directory (`job_catalog`, docs/contracts.md); undefined without one.
   * {@link loadConfig} makes a relative path absolute against the rrq.toml's directory.
   */
  readonly jobCatalog: string | undefined;
  /**
   * rrqkit: orchestrator plugin modules (`plugins`, docs/middleware.md), loaded by `rrq worker
   * run` before the first claim. {@link loadConfig} makes relative paths absolute against the
   * rrq.toml's directory and resolves package names from there; empty without plugins.
   */
  readonly plugins: readonly string[];
}

/**
 * Upper bound of every setting that becomes a timer: setTimeout fires at once for delays above
 * 2^31-1 ms (about 24.8 days), so a larger value would silently turn a wait into a busy loop.
 */
const MAX_TIMER_SECONDS = 2147483;

const RUNNER_KEYS = [
  "type",
  "cmd",
  "pool_size",
  "max_in_flight",
  "env",
  "cwd",
  "tcp_host",
  "tcp_port",
  "allowed_hosts",
  "response_timeout_seconds",
  "transport",
  "encoding",
  "handlers",
] as const;

const WATCH_DEFAULT_IGNORES = [
  ".git",
  ".git/**",
  ".venv",
  ".venv/**",
  "target",
  "target/**",
  "dist",
  "dist/**",
  "build",
  "build/**",
  "__pycache__",
  "__pycache__/**",
  "**/__pycache__/**",
  "*.pyc",
  "**/*.pyc",
  ".ruff_cache/**",
  ".pytest_cache/**",
  "node_modules",
  "node_modules/**",
];

function readRunner(
  name: string,
  raw: unknown,
  mode: "managed" | "external",
  problems: Problems,
): RunnerConfig | undefined {
  const where = `runners.${name}`;
  if (!isTable(raw)) {
    problems.add(`${where} must be a table, got ${JSON.stringify(raw)}`);
    return undefined;
  }
  const t = raw;
  const before = problems.messages.length;
  problems.add(...unknownKeyProblems(t, RUNNER_KEYS, where));
  const f = <T>(key: string, read: (v: unknown, k: string) => T, fallback: T) =>
    problems.attempt(() => field(t, key, where, read, fallback), fallback);
  const tcpPort = f<number | undefined>("tcp_port", int(1, 65535), undefined);
  const poolSize = mode === "external" ? 1 : f("pool_size", int(1), availableParallelism());
  const transport = f<RunnerTransport>(
    "transport",
    oneOf("stdio", "unix", "tcp", "inprocess"),
    tcpPort !== undefined ? "tcp" : "unix",
  );
  const cmd = f<string[]>("cmd", strings(true), []);
  const handlers = f<string | undefined>("handlers", str(true), undefined);
  const tcpHost = f("tcp_host", str(), "127.0.0.1");
  const allowedHosts = f("allowed_hosts", strings(), []);
  const check = (message: string | undefined) => message !== undefined && problems.add(message);
  if (transport === "inprocess") check(inProcessProblem(where, t, handlers));
  else if (handlers !== undefined)
    check(
      `${where}.handlers is only used with transport = "inprocess" (got transport "${transport}")`,
    );
  else if (mode === "managed" && t.cmd === undefined)
    check(`${where}.cmd is required in managed mode (an array: program and arguments)`);
  if (transport === "tcp" && tcpPort === undefined)
    check(`${where}.tcp_port is required when transport = "tcp"`);
  if (tcpPort !== undefined && tcpPort + poolSize - 1 > 65535)
    check(`${where}.tcp_port ${tcpPort} + pool_size ${poolSize} exceeds port 65535`);
  const allowed = allowedHosts.some((h) => h.toLowerCase() === tcpHost.toLowerCase());
  if (mode === "external" && transport === "tcp" && !isLoopbackHost(tcpHost) && !allowed)
    check(`${where}.tcp_host '${tcpHost}' is not loopback; list it in allowed_hosts to allow it`);
  if (mode === "external" && transport === "stdio")
    check(`${where}.transport "stdio" needs managed mode (the orchestrator must start the runner)`);
  const config = Object.freeze({
    name,
    type: f<"socket">("type", oneOf("socket"), "socket"),
    cmd: Object.freeze(cmd),
    poolSize,
    maxInFlight: f("max_in_flight", int(1, 64), 1),
    env: Object.freeze(f("env", stringMap, {})),
    cwd: f<string | undefined>("cwd", str(), undefined),
    transport,
    encoding: f<"json" | "msgpack">("encoding", oneOf("json", "msgpack"), "json"),
    tcpHost,
    tcpPort,
    allowedHosts: Object.freeze(allowedHosts),
    responseTimeoutSeconds: f<number | undefined>(
      "response_timeout_seconds",
      num(0, MAX_TIMER_SECONDS, true),
      undefined,
    ),
    handlers,
  });
  return problems.messages.length === before ? config : undefined;
}

/** Keys that configure a runner process or its socket; an in-process runner has neither. */
const PROCESS_ONLY_KEYS = [
  "cmd",
  "env",
  "encoding",
  "tcp_host",
  "tcp_port",
  "allowed_hosts",
] as const;

function inProcessProblem(
  where: string,
  t: Record<string, unknown>,
  handlers: string | undefined,
): string | undefined {
  if (handlers === undefined)
    return `${where}.handlers is required when transport = "inprocess" (the module exporting the Registry)`;
  const stray = PROCESS_ONLY_KEYS.find((key) => t[key] !== undefined);
  if (stray !== undefined)
    return `${where}.${stray} does not apply to transport = "inprocess" (no runner process is started)`;
  return undefined;
}

const CRON_KEYS = ["function_name", "schedule", "params", "queue_name", "unique"] as const;

function readCronJobs(raw: unknown): CronJobConfig[] {
  if (!Array.isArray(raw))
    throw new ConfigError(
      "invalid_config",
      "cron_jobs must be an array of tables ([[rrq.cron_jobs]])",
    );
  return raw.map((entry, i) => {
    const where = `cron_jobs[${i}]`;
    const t = table(entry, where);
    rejectUnknownKeys(t, CRON_KEYS, where);
    if (t.function_name === undefined || t.schedule === undefined) {
      throw new ConfigError("invalid_config", `${where} needs function_name and schedule`);
    }
    return Object.freeze({
      functionName: str()(t.function_name, `${where}.function_name`),
      schedule: str()(t.schedule, `${where}.schedule`),
      params: Object.freeze(field(t, "params", where, table, {})),
      queueName: field<string | undefined>(t, "queue_name", where, str(), undefined),
      unique: field(t, "unique", where, bool, false),
    });
  });
}

const WATCH_KEYS = [
  "path",
  "include_patterns",
  "ignore_patterns",
  "no_gitignore",
  "pre_restart_cmds",
  "pre_restart_cwd",
  "pre_restart_timeout_seconds",
] as const;

function readWatch(raw: unknown): WatchConfig {
  const t = raw === undefined ? {} : table(raw, "watch");
  rejectUnknownKeys(t, WATCH_KEYS, "watch");
  const cmds = t.pre_restart_cmds ?? [];
  if (!Array.isArray(cmds))
    throw new ConfigError(
      "invalid_config",
      "watch.pre_restart_cmds must be an array of command arrays",
    );
  return Object.freeze({
    path: field(t, "path", "watch", str(), "."),
    includePatterns: Object.freeze(
      field(t, "include_patterns", "watch", strings(), ["*.py", "*.toml"]),
    ),
    ignorePatterns: Object.freeze(
      field(t, "ignore_patterns", "watch", strings(), WATCH_DEFAULT_IGNORES),
    ),
    noGitignore: field(t, "no_gitignore", "watch", bool, false),
    preRestartCmds: Object.freeze(
      cmds.map((c, i) => Object.freeze(strings(true)(c, `watch.pre_restart_cmds[${i}]`))),
    ),
    preRestartCwd: field<string | undefined>(t, "pre_restart_cwd", "watch", str(), undefined),
    preRestartTimeoutSeconds: field<number | undefined>(
      t,
      "pre_restart_timeout_seconds",
      "watch",
      num(0, Infinity, true),
      undefined,
    ),
  });
}

/** Keys RRQ accepts but ignores; accepted here too, so existing files keep loading. */
const IGNORED_KEYS = ["worker_concurrency", "expected_job_ttl"] as const;

const TOP_KEYS = [
  "redis_dsn",
  "default_queue_name",
  "default_dlq_name",
  "default_max_retries",
  "default_job_timeout_seconds",
  "default_lock_timeout_extension_seconds",
  "default_result_ttl_seconds",
  "default_poll_delay_seconds",
  "runner_connect_timeout_ms",
  "runner_shutdown_term_grace_seconds",
  "runner_enable_inflight_cancel_hints",
  "capture_runner_output",
  "default_unique_job_lock_ttl_seconds",
  "default_runner_name",
  "runner_management_mode",
  "runners",
  "runner_routes",
  "routing",
  "worker_health_check_interval_seconds",
  "worker_health_check_ttl_buffer_seconds",
  "base_retry_delay_seconds",
  "max_retry_delay_seconds",
  "worker_shutdown_grace_period_seconds",
  "cron_jobs",
  "watch",
  "correlation_mappings",
  "runner_cancel_grace_seconds",
  "strict_frames",
  "lease_seconds",
  "lease_renew_interval_seconds",
  "max_job_recoveries",
  "redis_connect_timeout_seconds",
  "redis_command_timeout_seconds",
  "job_catalog",
  "plugins",
  ...JOB_CONTROL_KEYS,
  ...FLOW_CONTROL_KEYS,
  ...OBSERVABILITY_KEYS,
  ...LIVE_KEYS,
  ...IGNORED_KEYS,
] as const;

/** Overrides applied after the file (environment variables and CLI flags). */
export interface ConfigOverrides extends ObservabilityOverrides {
  redisDsn?: string;
  /** `RRQ_REDIS_CONNECT_TIMEOUT`: seconds, as text or a number; validated like the file key. */
  redisConnectTimeoutSeconds?: number | string;
  captureRunnerOutput?: boolean;
  runnerManagementMode?: "managed" | "external";
  strictFrames?: boolean;
}

function readRoutes(raw: Record<string, unknown>): Record<string, string> {
  if (raw.runner_routes !== undefined && raw.routing !== undefined) {
    throw new ConfigError("invalid_config", "use either runner_routes or [rrq.routing], not both");
  }
  const routes = raw.runner_routes ?? raw.routing;
  const read =
    routes === undefined
      ? {}
      : stringMap(routes, raw.routing !== undefined ? "routing" : "runner_routes");
  return Object.fromEntries(
    Object.entries(read).map(([queue, runner]) => [queueKey(queue), runner]),
  );
}

/** Why `worker_concurrency` and `expected_job_ttl` do nothing, for {@link ResolvedConfig.warnings}. */
const IGNORED_BECAUSE: Record<(typeof IGNORED_KEYS)[number], string> = {
  worker_concurrency:
    "worker_concurrency is accepted for RRQ compatibility and ignored: a worker runs as many jobs " +
    "at once as its runners take, pool_size × max_in_flight of each [rrq.runners.<name>] table; " +
    "set those instead",
  expected_job_ttl:
    "expected_job_ttl is accepted for RRQ compatibility and ignored (RRQ does not use it either); " +
    "a job's time limit is default_job_timeout_seconds",
};

/** The built-in default of `default_runner_name` (RRQ's). */
const DEFAULT_RUNNER_NAME = "python";

function warningsFor(raw: Record<string, unknown>): string[] {
  return IGNORED_KEYS.filter((key) => raw[key] !== undefined).map((key) => IGNORED_BECAUSE[key]);
}

/**
 * The error for a default runner that is not among the configured runners (the worker raises
 * it when one of its queues has no route): says where the name came from (the file, or RRQ's
 * built-in default "python") and what to do.
 */
export function defaultRunnerMissing(
  config: Pick<ResolvedConfig, "defaultRunnerName" | "defaultRunnerNameExplicit" | "runners">,
): string {
  const names = Object.keys(config.runners);
  const origin = config.defaultRunnerNameExplicit
    ? "set by default_runner_name"
    : `RRQ's built-in default_runner_name = "${DEFAULT_RUNNER_NAME}"; this config does not set it`;
  const configured = names.length ? names.join(", ") : "none";
  const fix = names.length
    ? `set default_runner_name = "${names[0]}" (or another configured runner)`
    : "add a [rrq.runners.<name>] table";
  return (
    `default runner '${config.defaultRunnerName}' (${origin}) is not configured ` +
    `(configured runners: ${configured}); jobs of queues without a [rrq.routing] entry cannot ` +
    `run: ${fix}, or route each queue in [rrq.routing]`
  );
}

/** redis_dsn must parse with the rules the connection uses; a mistake is reported here, early. */
const dsn = (v: unknown, k: string): string => {
  const value = str()(v, k);
  const problem = redisDsnProblem(value);
  if (problem) throw new ConfigError("invalid_config", `${k} ${problem}`);
  return value;
};

/** `RRQ_REDIS_CONNECT_TIMEOUT` as a number, or the raw text so the reader names it. */
function envNumber(value: number | string | undefined): unknown {
  if (typeof value !== "string") return value;
  const n = Number(value.trim());
  return value.trim() !== "" && Number.isFinite(n) ? n : value;
}

/**
 * Validates a parsed `[rrq]` table (or root table) and returns the frozen, fully defaulted
 * configuration. Throws one {@link ConfigError} listing every bad key (not only the first).
 */
export function resolveConfig(
  raw: Record<string, unknown>,
  overrides: ConfigOverrides = {},
): ResolvedConfig {
  const problems = new Problems();
  problems.add(...unknownKeyProblems(raw, TOP_KEYS, ""));
  const f = <T>(key: string, read: (v: unknown, k: string) => T, fallback: T) =>
    problems.attempt(() => field(raw, key, "", read, fallback), fallback);
  const mode =
    overrides.runnerManagementMode ??
    f("runner_management_mode", oneOf("managed", "external"), "managed");
  const runners: Record<string, RunnerConfig> = {};
  for (const [name, t] of Object.entries(f("runners", table, {}))) {
    const runner = readRunner(name, t, mode, problems);
    if (runner) runners[name] = runner;
  }
  const timeout = f("default_job_timeout_seconds", int(1), 300);
  const connectTimeout = f(
    "runner_connect_timeout_ms",
    int(-Infinity, MAX_TIMER_SECONDS * 1000),
    15000,
  );
  const redisTimeout = num(0, MAX_TIMER_SECONDS, true);
  const redisConnectTimeoutSeconds =
    overrides.redisConnectTimeoutSeconds !== undefined
      ? problems.attempt(
          () =>
            redisTimeout(
              envNumber(overrides.redisConnectTimeoutSeconds),
              "RRQ_REDIS_CONNECT_TIMEOUT",
            ),
          DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS,
        )
      : f("redis_connect_timeout_seconds", redisTimeout, DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS);
  const lease = f("lease_seconds", num(1, MAX_TIMER_SECONDS), 10);
  const renew = f("lease_renew_interval_seconds", num(0.05), lease / 3);
  if (renew >= lease && raw.lease_renew_interval_seconds !== undefined) {
    problems.add(
      `lease_renew_interval_seconds (${renew}) must be shorter than lease_seconds (${lease})`,
    );
  }
  const redisDsn =
    overrides.redisDsn !== undefined
      ? problems.attempt(() => dsn(overrides.redisDsn, "RRQ_REDIS_DSN"), overrides.redisDsn)
      : f("redis_dsn", dsn, "redis://localhost:6379/0");
  const defaultQueueName = queueKey(f("default_queue_name", str(), "rrq:queue:default"));
  const config = {
    redisDsn,
    redisConnectTimeoutSeconds,
    defaultQueueName,
    defaultDlqName: f("default_dlq_name", str(), "rrq:dlq:default"),
    defaultMaxRetries: f("default_max_retries", int(0), 5),
    defaultJobTimeoutSeconds: timeout,
    defaultLockTimeoutExtensionSeconds: f("default_lock_timeout_extension_seconds", int(0), 60),
    defaultResultTtlSeconds: f("default_result_ttl_seconds", int(), 86400),
    defaultPollDelaySeconds: f(
      "default_poll_delay_seconds",
      num(-Infinity, MAX_TIMER_SECONDS),
      0.1,
    ),
    runnerConnectTimeoutMs: connectTimeout <= 0 ? 15000 : connectTimeout,
    runnerShutdownTermGraceSeconds: f(
      "runner_shutdown_term_grace_seconds",
      num(0, MAX_TIMER_SECONDS),
      5,
    ),
    runnerEnableInflightCancelHints: f("runner_enable_inflight_cancel_hints", bool, false),
    captureRunnerOutput: overrides.captureRunnerOutput ?? f("capture_runner_output", bool, false),
    defaultUniqueJobLockTtlSeconds: f("default_unique_job_lock_ttl_seconds", int(1), 21600),
    defaultRunnerName: f("default_runner_name", str(), DEFAULT_RUNNER_NAME),
    defaultRunnerNameExplicit: raw.default_runner_name !== undefined,
    runnerManagementMode: mode,
    runners: Object.freeze(runners),
    runnerRoutes: Object.freeze(problems.attempt(() => readRoutes(raw), {})),
    workerHealthCheckIntervalSeconds: f(
      "worker_health_check_interval_seconds",
      num(0, MAX_TIMER_SECONDS, true),
      60,
    ),
    workerHealthCheckTtlBufferSeconds: f("worker_health_check_ttl_buffer_seconds", num(0), 10),
    baseRetryDelaySeconds: f("base_retry_delay_seconds", num(0), 5),
    maxRetryDelaySeconds: f("max_retry_delay_seconds", num(0), 3600),
    workerShutdownGracePeriodSeconds: f(
      "worker_shutdown_grace_period_seconds",
      num(0, MAX_TIMER_SECONDS),
      10,
    ),
    cronJobs: Object.freeze(
      raw.cron_jobs === undefined ? [] : problems.attempt(() => readCronJobs(raw.cron_jobs), []),
    ),
    watch: problems.attempt(() => readWatch(raw.watch), readWatch(undefined)),
    correlationMappings: Object.freeze(f("correlation_mappings", stringMap, {})),
    runnerCancelGraceSeconds: f("runner_cancel_grace_seconds", num(0, MAX_TIMER_SECONDS), 5),
    strictFrames: overrides.strictFrames ?? f("strict_frames", bool, false),
    leaseSeconds: lease,
    leaseRenewIntervalSeconds: renew,
    maxJobRecoveries: f("max_job_recoveries", int(0), 3),
    redisCommandTimeoutSeconds: f(
      "redis_command_timeout_seconds",
      num(0.05, MAX_TIMER_SECONDS),
      Math.max(1, Math.min(5, lease / 2)),
    ),
    jobCatalog: f<string | undefined>("job_catalog", str(true), undefined),
    plugins: Object.freeze(f("plugins", strings(), [])),
    ...readJobControl(raw, defaultQueueName, problems),
    // runner names as written: a runner table with a mistake is reported once, by readRunner
    ...readFlowControl(raw, Object.keys(isTable(raw.runners) ? raw.runners : {}), problems),
    ...readObservability(raw, problems, overrides),
    ...readLive(raw, Object.keys(isTable(raw.runners) ? raw.runners : {}), problems),
  };
  problems.throwIfAny();
  return Object.freeze({ ...config, warnings: Object.freeze(warningsFor(raw)) });
}

/** The `[rrq]` table if the document has one, else the root table (RRQ's rule). */
export function rrqTable(document: Record<string, unknown>): Record<string, unknown> {
  return isTable(document.rrq) ? document.rrq : document;
}
