import { availableParallelism } from "node:os";
import { isLoopbackHost } from "@rrqkit/runner/protocol";
import { ConfigError } from "../errors.js";
import { queueKey } from "../store/keys.js";
import {
  bool,
  field,
  int,
  isTable,
  num,
  oneOf,
  rejectUnknownKeys,
  str,
  stringMap,
  strings,
  table,
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
export interface ResolvedConfig {
  readonly redisDsn: string;
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

function readRunner(name: string, raw: unknown, mode: "managed" | "external"): RunnerConfig {
  const where = `runners.${name}`;
  const t = table(raw, where);
  rejectUnknownKeys(t, RUNNER_KEYS, where);
  const tcpPort = field<number | undefined>(t, "tcp_port", where, int(1, 65535), undefined);
  const poolSize =
    mode === "external" ? 1 : field(t, "pool_size", where, int(1), availableParallelism());
  const transport = field<RunnerTransport>(
    t,
    "transport",
    where,
    oneOf("stdio", "unix", "tcp", "inprocess"),
    tcpPort !== undefined ? "tcp" : "unix",
  );
  const cmd = field<string[]>(t, "cmd", where, strings(true), []);
  const handlers = field<string | undefined>(t, "handlers", where, str(true), undefined);
  if (transport === "inprocess") checkInProcess(where, t, handlers);
  else if (handlers !== undefined) {
    throw new ConfigError(
      "invalid_config",
      `${where}.handlers is only used with transport = "inprocess" (got transport "${transport}")`,
    );
  } else if (mode === "managed" && cmd.length === 0) {
    throw new ConfigError(
      "invalid_config",
      `${where}.cmd is required in managed mode (an array: program and arguments)`,
    );
  }
  if (transport === "tcp" && tcpPort === undefined) {
    throw new ConfigError("invalid_config", `${where}.tcp_port is required when transport = "tcp"`);
  }
  if (tcpPort !== undefined && tcpPort + poolSize - 1 > 65535) {
    throw new ConfigError(
      "invalid_config",
      `${where}.tcp_port ${tcpPort} + pool_size ${poolSize} exceeds port 65535`,
    );
  }
  const tcpHost = field(t, "tcp_host", where, str(), "127.0.0.1");
  const allowedHosts = field(t, "allowed_hosts", where, strings(), []);
  if (mode === "external" && transport === "tcp" && !isLoopbackHost(tcpHost)) {
    if (!allowedHosts.some((h) => h.toLowerCase() === tcpHost.toLowerCase())) {
      throw new ConfigError(
        "invalid_config",
        `${where}.tcp_host '${tcpHost}' is not loopback; list it in allowed_hosts to allow it`,
      );
    }
  }
  if (mode === "external" && transport === "stdio") {
    throw new ConfigError(
      "invalid_config",
      `${where}.transport "stdio" needs managed mode (the orchestrator must start the runner)`,
    );
  }
  return Object.freeze({
    name,
    type: field<"socket">(t, "type", where, oneOf("socket"), "socket"),
    cmd: Object.freeze(cmd),
    poolSize,
    maxInFlight: field(t, "max_in_flight", where, int(1, 64), 1),
    env: Object.freeze(field(t, "env", where, stringMap, {})),
    cwd: field<string | undefined>(t, "cwd", where, str(), undefined),
    transport,
    encoding: field<"json" | "msgpack">(t, "encoding", where, oneOf("json", "msgpack"), "json"),
    tcpHost,
    tcpPort,
    allowedHosts: Object.freeze(allowedHosts),
    responseTimeoutSeconds: field<number | undefined>(
      t,
      "response_timeout_seconds",
      where,
      num(0, MAX_TIMER_SECONDS, true),
      undefined,
    ),
    handlers,
  });
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

function checkInProcess(where: string, t: Record<string, unknown>, handlers: string | undefined) {
  if (handlers === undefined) {
    throw new ConfigError(
      "invalid_config",
      `${where}.handlers is required when transport = "inprocess" (the module exporting the Registry)`,
    );
  }
  const stray = PROCESS_ONLY_KEYS.find((key) => t[key] !== undefined);
  if (stray !== undefined) {
    throw new ConfigError(
      "invalid_config",
      `${where}.${stray} does not apply to transport = "inprocess" (no runner process is started)`,
    );
  }
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
  ...IGNORED_KEYS,
] as const;

/** Overrides applied after the file (environment variables and CLI flags). */
export interface ConfigOverrides {
  redisDsn?: string;
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

/**
 * Validates a parsed `[rrq]` table (or root table) and returns the frozen, fully defaulted
 * configuration. Throws {@link ConfigError} naming the first bad key.
 */
export function resolveConfig(
  raw: Record<string, unknown>,
  overrides: ConfigOverrides = {},
): ResolvedConfig {
  rejectUnknownKeys(raw, TOP_KEYS, "");
  const f = <T>(key: string, read: (v: unknown, k: string) => T, fallback: T) =>
    field(raw, key, "", read, fallback);
  const mode =
    overrides.runnerManagementMode ??
    f("runner_management_mode", oneOf("managed", "external"), "managed");
  const runnersRaw = f("runners", table, {});
  const runners = Object.fromEntries(
    Object.entries(runnersRaw).map(([name, t]) => [name, readRunner(name, t, mode)]),
  );
  const timeout = f("default_job_timeout_seconds", int(1), 300);
  const connectTimeout = f(
    "runner_connect_timeout_ms",
    int(-Infinity, MAX_TIMER_SECONDS * 1000),
    15000,
  );
  const lease = f("lease_seconds", num(1, MAX_TIMER_SECONDS), 10);
  const renew = f("lease_renew_interval_seconds", num(0.05), lease / 3);
  if (renew >= lease) {
    throw new ConfigError(
      "invalid_config",
      `lease_renew_interval_seconds (${renew}) must be shorter than lease_seconds (${lease})`,
    );
  }
  const config: ResolvedConfig = {
    redisDsn: overrides.redisDsn ?? f("redis_dsn", str(), "redis://localhost:6379/0"),
    defaultQueueName: queueKey(f("default_queue_name", str(), "rrq:queue:default")),
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
    defaultRunnerName: f("default_runner_name", str(), "python"),
    runnerManagementMode: mode,
    runners: Object.freeze(runners),
    runnerRoutes: Object.freeze(readRoutes(raw)),
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
    cronJobs: Object.freeze(raw.cron_jobs === undefined ? [] : readCronJobs(raw.cron_jobs)),
    watch: readWatch(raw.watch),
    correlationMappings: Object.freeze(f("correlation_mappings", stringMap, {})),
    runnerCancelGraceSeconds: f("runner_cancel_grace_seconds", num(0, MAX_TIMER_SECONDS), 5),
    strictFrames: overrides.strictFrames ?? f("strict_frames", bool, false),
    leaseSeconds: lease,
    leaseRenewIntervalSeconds: renew,
    maxJobRecoveries: f("max_job_recoveries", int(0), 3),
  };
  return Object.freeze(config);
}

/** The `[rrq]` table if the document has one, else the root table (RRQ's rule). */
export function rrqTable(document: Record<string, unknown>): Record<string, unknown> {
  return isTable(document.rrq) ? document.rrq : document;
}
