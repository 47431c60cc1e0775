import { createRequire } from "node:module";
import pino, { type Logger } from "pino";
import type PinoPretty from "pino-pretty";
import type { EventBus } from "./events.js";

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

/** A pino logger writing to stdout in the chosen format. */
export function createLogger(
  format: LogFormat,
  level = process.env.RRQ_LOG_LEVEL ?? "info",
): Logger {
  const options = { level, base: { service: "rrq" }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === "pretty") {
    // pino-pretty (and its colour and date libraries) only load when pretty output is chosen
    const pretty = createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;
    return pino(
      options,
      pretty({ colorize: process.stdout.isTTY, sync: true, ignore: "pid,hostname,service" }),
    );
  }
  return pino(options);
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
    events.on("job:claimed", (e) =>
      logger.debug(
        { job_id: e.jobId, queue: e.queue, function: e.functionName, attempt: e.attempt },
        "job claimed",
      ),
    );
    events.on("job:completed", (e) =>
      logger.debug(
        {
          job_id: e.jobId,
          queue: e.queue,
          runner: e.runner,
          attempt: e.attempt,
          duration_ms: Math.round(e.durationMs),
        },
        "job completed",
      ),
    );
  }
  events.on("job:retry", (e) =>
    logger.info(
      {
        job_id: e.jobId,
        queue: e.queue,
        attempt: e.attempt,
        delay_seconds: e.delaySeconds,
        error: e.error,
        outcome: e.outcome,
      },
      "job will retry",
    ),
  );
  events.on("job:dlq", (e) =>
    logger.warn(
      { job_id: e.jobId, queue: e.queue, attempt: e.attempt, error: e.error, outcome: e.outcome },
      "job moved to the DLQ",
    ),
  );
  events.on("job:released", (e) =>
    logger.info({ job_id: e.jobId, queue: e.queue, reason: e.reason }, "job re-queued"),
  );
  events.on("job:fenced", (e) =>
    logger.warn(
      { job_id: e.jobId, write: e.write },
      "another worker holds this job; result not written",
    ),
  );
  events.on("recovery:done", (e) =>
    logger.info({ recovered: e.recovered, dead_workers: e.deadWorkers }, "recovered orphaned jobs"),
  );
  events.on("worker:status", (e) => logger.debug({ status: e.status }, "worker status"));
  events.on("worker:error", (e) =>
    logger.error({ context: e.context, err: e.error }, e.error.message),
  );
}
