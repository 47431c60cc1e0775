import { createRequire } from "node:module";
import pino, { type Logger } from "pino";
import type PinoPretty from "pino-pretty";
import type { EventBus, JobRef } from "./events.js";
import { safeLogOptions } from "./log-safety.js";

/** Log output format: JSON lines, or human-readable lines. */
export type LogFormat = "json" | "pretty";

/**
 * The log format: an explicit choice, else RRQ_LOG_FORMAT or RRQ's RUST_LOG_FORMAT (pretty, text
 * or human → pretty; anything else → json), else pretty on a terminal and JSON otherwise.
 */
export function resolveLogFormat(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  isTty = process.stdout.isTTY,
): LogFormat {
  const choice = explicit ?? env.RRQ_LOG_FORMAT ?? env.RUST_LOG_FORMAT;
  if (choice !== undefined)
    return ["pretty", "text", "human"].includes(choice.toLowerCase()) ? "pretty" : "json";
  return isTty ? "pretty" : "json";
}

/**
 * A pino logger writing to stdout in the chosen format. Errors are logged without the Redis
 * command arguments they carry (job params, results, Lua source) and every line is capped
 * (log-safety.ts). `destination` replaces stdout (tests).
 */
export function createLogger(
  format: LogFormat,
  level = process.env.RRQ_LOG_LEVEL ?? "info",
  destination?: NodeJS.WritableStream,
): Logger {
  const options = {
    level,
    base: { service: "rrq" },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...safeLogOptions(),
  };
  if (format === "pretty") {
    // pino-pretty (and its colour and date libraries) only load when pretty output is chosen
    const pretty = createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;
    return pino(
      options,
      pretty({
        colorize: process.stdout.isTTY,
        sync: true,
        ignore: "pid,hostname,service",
        ...(destination ? { destination } : {}),
      }),
    );
  }
  return destination ? pino(options, destination) : pino(options);
}

function parseJsonObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value = JSON.parse(line) as unknown;
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Logs the orchestrator's events. Runner output is re-emitted line by line with the runner's
 * name (a line that is a JSON object keeps its fields, as RRQ's capture does). Per-job events
 * are logged at debug level so a busy worker does not flood its log; the logger's level is read
 * once, here.
 */
export function attachLogging(events: EventBus, logger: Logger): void {
  events.on("runner:log", ({ runner, index, stream, line }) => {
    const fields = parseJsonObject(line);
    const base = {
      "rrq.runner": runner,
      "rrq.runner_index": index,
      "rrq.stream": stream,
      "rrq.source": "runner",
    };
    const message = typeof fields?.message === "string" ? fields.message : fields ? "" : line;
    if (stream === "stderr" && !fields) logger.info(base, message);
    else logger.info({ ...fields, ...base }, message);
  });
  events.on("runner:spawn", (e) =>
    logger.info(
      { "rrq.runner": e.runner, index: e.index, pid: e.pid, transport: e.transport },
      "runner started",
    ),
  );
  events.on("runner:ready", (e) =>
    logger.info(
      { "rrq.runner": e.runner, index: e.index, pid: e.pid, features: e.features },
      "runner ready",
    ),
  );
  events.on("runner:exit", (e) => {
    const level = e.expected ? "info" : "warn";
    logger[level](
      { "rrq.runner": e.runner, index: e.index, pid: e.pid, code: e.code, signal: e.signal },
      e.expected ? "runner stopped" : "runner exited unexpectedly",
    );
  });
  events.on("runner:respawn", (e) =>
    logger.warn(
      {
        "rrq.runner": e.runner,
        index: e.index,
        delay_ms: e.delayMs,
        attempt: e.attempt,
        reason: e.reason,
      },
      "restarting runner",
    ),
  );
  events.on("runner:recycle", (e) =>
    logger.warn(
      { "rrq.runner": e.runner, index: e.index, reason: e.reason },
      "recycling runner process",
    ),
  );
  // Two events per job: subscribed only when debug lines are written, so that at info level
  // the emitters see no listener and build no payload (see EventBus.has).
  if (logger.isLevelEnabled("debug")) {
    events.on("job:claimed", (e) => logger.debug(jobFields(e), "job claimed"));
    events.on("job:completed", (e) =>
      logger.debug(
        { ...jobFields(e), runner: e.runner, duration_ms: Math.round(e.durationMs) },
        "job completed",
      ),
    );
  }
  events.on("job:retry", (e) => {
    const fields = { ...jobFields(e), error: e.error, error_type: e.errorType ?? null };
    logger.info({ ...fields, delay_seconds: e.delaySeconds, outcome: e.outcome }, "job will retry");
    logTraceback(logger, e);
  });
  events.on("job:dlq", (e) => {
    const fields = { ...jobFields(e), error: e.error, error_type: e.errorType ?? null };
    logger.warn({ ...fields, outcome: e.outcome }, "job moved to the DLQ");
    logTraceback(logger, e);
  });
  events.on("job:released", (e) =>
    logger.info({ ...jobFields(e), reason: e.reason }, "job re-queued"),
  );
  events.on("job:fenced", (e) =>
    logger.warn(
      { ...jobFields(e), write: e.write },
      "another worker holds this job; result not written",
    ),
  );
  events.on("job:written-after-outage", (e) =>
    logger.info(
      { ...jobFields(e), write: e.write, result: e.result, waited_ms: e.waitedMs },
      `job outcome written after redis reconnected (${e.write}: ${e.result})`,
    ),
  );
  events.on("worker:unwritten", (e) =>
    logger.error(
      { jobs: e.jobs.map(jobFields), lease_seconds: e.leaseSeconds },
      `could not write the outcome of ${e.jobs.length} job(s) before exiting (redis unreachable): ` +
        `${e.jobs.map((j) => j.jobId).join(", ")}; their leases expire within ` +
        `${e.leaseSeconds}s of redis being back and any live worker puts them back in their queues`,
    ),
  );
  events.on("redis:down", (e) =>
    logger.warn(
      {
        reason: e.reason,
        retry_in_ms: e.retryInMs,
        down_for_ms: e.downForMs,
        failures: e.failures,
      },
      e.first
        ? `redis unreachable (${e.reason}), retrying in ${seconds(e.retryInMs)}`
        : `redis still unreachable after ${seconds(e.downForMs)} (${e.reason}), ` +
            `retrying in ${seconds(e.retryInMs)}`,
    ),
  );
  events.on("redis:up", (e) =>
    logger.info({ down_for_ms: e.downForMs }, `redis reconnected after ${seconds(e.downForMs)}`),
  );
  events.on("worker:warning", (e) => logger.warn(e.message));
  events.on("recovery:done", (e) =>
    logger.info({ recovered: e.recovered, dead_workers: e.deadWorkers }, "recovered orphaned jobs"),
  );
  events.on("worker:status", (e) => logger.debug({ status: e.status }, "worker status"));
  attachLifecycleLogging(events, logger);
  events.on("worker:error", (e) => {
    const job = e.job ? jobFields(e.job) : {};
    // A lost connection is expected operation, reported by redis:down: no stack trace
    if (isConnectionError(e.error))
      logger.warn({ context: e.context, ...job }, `${e.context}: ${e.error.message}`);
    else logger.error({ context: e.context, ...job, err: e.error }, e.error.message);
  });
}

/**
 * Lifecycle lines: start, quiet/resume and stop at info (an operator acts on them), a cancel of
 * a running job, an expiry and a death handler at info, snoozes and heartbeats at debug (one per
 * snooze or tick would flood a busy worker's log).
 */
function attachLifecycleLogging(events: EventBus, logger: Logger): void {
  events.on("worker:started", (e) =>
    logger.info(
      { worker_id: e.workerId, queues: e.queues },
      `worker started, serving ${e.queues.join(", ")}`,
    ),
  );
  events.on("metrics:started", (e) => {
    const parts = [
      e.url ? `serving ${e.url}` : undefined,
      e.otlpEndpoint ? `exporting OTLP metrics to ${e.otlpEndpoint}` : undefined,
    ].filter(Boolean);
    logger.info(
      { metrics_url: e.url ?? undefined, otlp_metrics_endpoint: e.otlpEndpoint ?? undefined },
      `metrics: ${parts.join("; ")}`,
    );
  });
  events.on("worker:quiet", (e) =>
    logger.info(
      { worker_id: e.workerId, source: e.source },
      e.source === "signal"
        ? "quiet (SIGTSTP): claiming no new jobs, finishing the running ones"
        : "quiet (rrq worker quiet): claiming no new jobs, finishing the running ones",
    ),
  );
  events.on("worker:resumed", (e) =>
    logger.info({ worker_id: e.workerId }, "resumed: claiming jobs again"),
  );
  events.on("worker:stopping", (e) =>
    logger.info({ worker_id: e.workerId, reason: e.reason }, `worker stopping (${e.reason})`),
  );
  if (logger.isLevelEnabled("debug")) {
    events.on("worker:heartbeat", (e) =>
      logger.debug({ worker_id: e.workerId, active: e.active, quiet: e.quiet }, "heartbeat"),
    );
    events.on("job:snoozed", (e) =>
      logger.debug(
        { ...jobFields(e), delay_seconds: e.delaySeconds, snoozes: e.snoozes },
        "job snoozed",
      ),
    );
  }
  events.on("job:cancelled", (e) =>
    logger.info(
      { ...jobFields(e), where: e.where },
      "job cancelled while running; runner asked to stop",
    ),
  );
  events.on("job:expired", (e) =>
    logger.info(jobFields(e), "job expired before it started; not run"),
  );
  events.on("flow:breaker", (e) =>
    e.state === "opened"
      ? logger.warn(
          { scope: e.scope, job_id: e.jobId, error: e.error, cooldown_seconds: e.cooldownSeconds },
          `circuit breaker ${e.scope} opened: its jobs are held for ${e.cooldownSeconds}s, then one probe runs`,
        )
      : logger.info(
          { scope: e.scope, job_id: e.jobId },
          `circuit breaker ${e.scope} closed: its held jobs are back in their queues`,
        ),
  );
  events.on("death:handled", (e) =>
    logger.info(
      { job_id: e.jobId, handler: e.handler, handler_job_id: e.handlerJobId },
      `death handler ${e.handler} enqueued for dead job ${e.jobId}`,
    ),
  );
}

/** The fields every log line about a job carries. */
function jobFields(e: JobRef) {
  return { job_id: e.jobId, function: e.functionName, queue: e.queue, attempt: e.attempt };
}

/**
 * The runner's traceback of a failed attempt, on its own debug line: at info level it would
 * flood the log (up to 8 KiB per failure); the job hash keeps it for `rrq job show`.
 */
function logTraceback(logger: Logger, e: JobRef & { traceback?: string | null }): void {
  if (e.traceback && logger.isLevelEnabled("debug"))
    logger.debug({ ...jobFields(e), traceback: e.traceback }, "job error traceback");
}

/** `2000` → "2s", `250` → "0.3s", `61000` → "61s". */
function seconds(ms: number): string {
  return ms >= 10_000 ? `${Math.round(ms / 1000)}s` : `${Math.round(ms / 100) / 10}s`;
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EPIPE",
  "EAI_AGAIN",
]);

/** Errors of a connection going away (not bugs): refused, reset, closed, silent (timed out). */
function isConnectionError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return (
    (code !== undefined && CONNECTION_CODES.has(code)) ||
    /^Connection is closed|Stream isn't writeable|^Command timed out/.test(error.message)
  );
}
