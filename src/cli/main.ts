import { Command, InvalidArgumentError, Option } from "commander";
import type { ConfigOverrides, ResolvedConfig } from "../config/config.js";
import { loadConfig, type ConfigSource } from "../config/load.js";
import { RrqError } from "../errors.js";
import { Worker } from "../orchestrator/worker.js";
import { optionsFromSnakeCase } from "../producer/options.js";
import { Producer, producerConfigFrom } from "../producer/producer.js";
import { jobKey, Prefix } from "../store/keys.js";
import { connectRedis } from "../store/redis.js";
import { EventBus } from "../telemetry/events.js";
import { attachLogging, createLogger, resolveLogFormat } from "../telemetry/logger.js";
import { jobTelemetryFromEnv } from "../telemetry/otel.js";

/** Exit codes: 0 success, 1 runtime failure or "not found", 2 bad usage or configuration. */
export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const;

interface GlobalOptions {
  config?: string;
}

function load(
  options: GlobalOptions,
  overrides: ConfigOverrides = {},
): { config: ResolvedConfig; source: ConfigSource } {
  return loadConfig({ path: options.config, overrides, loadDotEnv: true });
}

function announce(source: ConfigSource): void {
  process.stdout.write(`Loading RRQ settings from ${source.kind} (${source.path}).\n`);
}

function jsonArgument(label: string) {
  return (value: string): Record<string, unknown> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      throw new InvalidArgumentError(`${label} must be JSON`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new InvalidArgumentError(`${label} must be a JSON object`);
    return parsed as Record<string, unknown>;
  };
}

function numberArgument(label: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || Number.isNaN(n))
      throw new InvalidArgumentError(`${label} must be a number`);
    return n;
  };
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

async function workerRun(
  global: GlobalOptions,
  options: {
    queue?: string[];
    burst?: boolean;
    runnerMode?: "managed" | "external";
    logFormat?: string;
  },
): Promise<number> {
  const { config, source } = load(
    global,
    options.runnerMode ? { runnerManagementMode: options.runnerMode } : {},
  );
  announce(source);
  const events = new EventBus();
  const logger = createLogger(resolveLogFormat(options.logFormat));
  attachLogging(events, logger);
  const telemetry = await jobTelemetryFromEnv();
  const worker = new Worker({
    config,
    queues: options.queue,
    burst: options.burst,
    events,
    telemetry,
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(ExitCode.failure);
    }
    logger.info(
      { signal, grace_seconds: config.workerShutdownGracePeriodSeconds },
      "shutting down: finishing running jobs",
    );
    worker.requestShutdown();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  logger.info(
    { worker_id: worker.workerId, queues: worker.queues, burst: options.burst ?? false },
    "worker starting",
  );
  await worker.run();
  await telemetry.shutdown();
  logger.info({ worker_id: worker.workerId }, "worker stopped");
  return ExitCode.ok;
}

interface EnqueueFlags {
  params?: Record<string, unknown>;
  queue?: string;
  jobId?: string;
  uniqueKey?: string;
  uniqueTtl?: number;
  maxRetries?: number;
  timeout?: number;
  resultTtl?: number;
  deferBy?: number;
  deferUntil?: string;
  traceContext?: Record<string, unknown>;
  rateLimitKey?: string;
  rateLimitSeconds?: number;
  debounceKey?: string;
  debounceSeconds?: number;
  wait?: number;
  json?: boolean;
}

async function enqueue(
  global: GlobalOptions,
  functionName: string,
  flags: EnqueueFlags,
): Promise<number> {
  const { config } = load(global);
  const producer = new Producer(producerConfigFrom(config));
  try {
    const options = optionsFromSnakeCase({
      queue_name: flags.queue,
      job_id: flags.jobId,
      unique_key: flags.uniqueKey,
      unique_ttl_seconds: flags.uniqueTtl,
      max_retries: flags.maxRetries,
      job_timeout_seconds: flags.timeout,
      result_ttl_seconds: flags.resultTtl,
      defer_by_seconds: flags.deferBy,
      defer_until: flags.deferUntil,
      trace_context: flags.traceContext,
      rate_limit_key: flags.rateLimitKey,
      rate_limit_seconds: flags.rateLimitSeconds,
      debounce_key: flags.debounceKey,
      debounce_seconds: flags.debounceSeconds,
    });
    const jobId = options.rateLimitKey
      ? await producer.enqueueWithRateLimit(
          functionName,
          flags.params ?? {},
          options as Parameters<Producer["enqueueWithRateLimit"]>[2],
        )
      : await producer.enqueue(functionName, flags.params ?? {}, options);
    const result =
      flags.wait !== undefined && jobId
        ? await producer.waitForCompletion(jobId, { timeoutSeconds: flags.wait })
        : undefined;
    if (flags.json) {
      process.stdout.write(
        `${JSON.stringify({ job_id: jobId, ...(result !== undefined ? { result } : {}) })}\n`,
      );
    } else if (jobId === null) {
      process.stdout.write("Rate limited: job not enqueued\n");
    } else {
      process.stdout.write(`${jobId}\n`);
      if (result !== undefined)
        process.stdout.write(
          result
            ? `${result.status} ${JSON.stringify(result.result)}${result.lastError ? ` (${result.lastError})` : ""}\n`
            : "Timed out waiting for the job\n",
        );
    }
    return flags.wait !== undefined && (!result || result.status !== "COMPLETED")
      ? ExitCode.failure
      : ExitCode.ok;
  } finally {
    await producer.close();
  }
}

async function jobShow(
  global: GlobalOptions,
  jobId: string,
  flags: { raw?: boolean },
): Promise<number> {
  const { config } = load(global);
  const redis = connectRedis(config.redisDsn);
  try {
    const hash = await redis.hgetall(jobKey(jobId));
    if (Object.keys(hash).length === 0) {
      process.stdout.write(`Job '${jobId}' not found\n`);
      return ExitCode.failure;
    }
    if (flags.raw) {
      process.stdout.write(`${JSON.stringify(hash, null, 2)}\n`);
      return ExitCode.ok;
    }
    const fields = Object.keys(hash).sort();
    const width = Math.max(...fields.map((f) => f.length));
    process.stdout.write(`Job ${jobId}\n`);
    for (const field of fields) process.stdout.write(`  ${field.padEnd(width)}  ${hash[field]}\n`);
    return ExitCode.ok;
  } finally {
    redis.disconnect();
  }
}

async function check(global: GlobalOptions): Promise<number> {
  const { config } = load(global);
  const redis = connectRedis(config.redisDsn);
  try {
    const workers: Array<{ id: string; ttl: number; payload: Record<string, unknown> }> = [];
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${Prefix.health}*`, "COUNT", 100);
      cursor = next;
      for (const key of keys) {
        const [raw, ttl] = await Promise.all([redis.get(key), redis.ttl(key)]);
        if (raw === null || ttl <= 0) continue;
        let payload: Record<string, unknown> = {};
        try {
          payload = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          // an unreadable record still counts as a live key
        }
        workers.push({ id: key.slice(Prefix.health.length), ttl, payload });
      }
    } while (cursor !== "0");
    if (workers.length === 0) {
      process.stdout.write("Worker Health Check: FAIL (No active workers found)\n");
      return ExitCode.failure;
    }
    process.stdout.write(`Worker Health Check: Found ${workers.length} active worker(s):\n`);
    for (const w of workers) {
      const field = (name: string) => {
        const value = w.payload[name];
        return typeof value === "string" || typeof value === "number" ? String(value) : "?";
      };
      process.stdout.write(
        `  Worker ID: ${w.id}\n    Status: ${field("status")}\n    Active Jobs: ${field("active_jobs")}\n    Last Heartbeat: ${field("timestamp")}\n    TTL: ${w.ttl} seconds\n`,
      );
    }
    return ExitCode.ok;
  } finally {
    redis.disconnect();
  }
}

/** The `rrq` command-line program. */
export function buildProgram(run: (action: () => Promise<number>) => void): Command {
  const program = new Command("rrq")
    .description("rrqkit: an RRQ-compatible job orchestrator")
    .option("--config <path>", "rrq.toml path (else RRQ_CONFIG, else ./rrq.toml)")
    .showHelpAfterError();
  const global = () => program.opts<GlobalOptions>();

  const worker = program.command("worker").description("run the orchestrator");
  worker
    .command("run")
    .description("claim and run jobs until SIGTERM/SIGINT")
    .option("--queue <name>", "queue to serve (repeatable; default: default_queue_name)", collect)
    .option("--burst", "exit once no job is ready and none is running")
    .addOption(
      new Option(
        "--runner-mode <mode>",
        "start runners (managed) or connect to running ones (external)",
      ).choices(["managed", "external"]),
    )
    .addOption(
      new Option(
        "--log-format <format>",
        "log output (default: pretty on a terminal, else json)",
      ).choices(["json", "pretty"]),
    )
    .action((options: Parameters<typeof workerRun>[1]) => run(() => workerRun(global(), options)));

  program
    .command("enqueue")
    .description("enqueue a job and print its id")
    .argument("<function>", "handler name, optionally runner#handler")
    .option("--params <json>", "params as a JSON object", jsonArgument("--params"))
    .option("--queue <name>", "queue name")
    .option("--job-id <id>", "job id (default: a new UUID)")
    .option("--unique-key <key>", "idempotency key: a repeat returns the first job's id")
    .option("--unique-ttl <seconds>", "idempotency key TTL", numberArgument("--unique-ttl"))
    .option("--max-retries <n>", "total attempts allowed", numberArgument("--max-retries"))
    .option("--timeout <seconds>", "job timeout", numberArgument("--timeout"))
    .option("--result-ttl <seconds>", "how long the result is kept", numberArgument("--result-ttl"))
    .option("--defer-by <seconds>", "run after this many seconds", numberArgument("--defer-by"))
    .option("--defer-until <rfc3339>", "run at this time")
    .option(
      "--trace-context <json>",
      "W3C trace context carrier as a JSON object",
      jsonArgument("--trace-context"),
    )
    .option("--rate-limit-key <key>", "drop the job if one ran in this window")
    .option(
      "--rate-limit-seconds <seconds>",
      "rate-limit window",
      numberArgument("--rate-limit-seconds"),
    )
    .option("--debounce-key <key>", "coalesce calls within the window into one job")
    .option("--debounce-seconds <seconds>", "debounce window", numberArgument("--debounce-seconds"))
    .option(
      "--wait <seconds>",
      "wait for the job to finish and print its status",
      numberArgument("--wait"),
    )
    .option("--json", "print JSON")
    .action((fn: string, flags: EnqueueFlags) => run(() => enqueue(global(), fn, flags)));

  const job = program.command("job").description("inspect jobs");
  job
    .command("show")
    .argument("<job-id>")
    .option("--raw", "print the job hash as JSON")
    .description("print a job's hash")
    .action((id: string, flags: { raw?: boolean }) => run(() => jobShow(global(), id, flags)));

  program
    .command("check")
    .alias("health")
    .description("list live workers; exits 1 when there is none")
    .action(() => run(() => check(global())));
  return program;
}

/** Runs an action and exits with its code; errors print one clear line. */
function runAndExit(action: () => Promise<number>): void {
  action().then(
    (code) => process.exit(code),
    (error: unknown) => {
      if (error instanceof RrqError) {
        process.stderr.write(`rrq: ${error.message}\n`);
        process.exit(
          error.code === "invalid_config" ||
            error.code === "config_not_found" ||
            error.code === "invalid_argument"
            ? ExitCode.usage
            : ExitCode.failure,
        );
      }
      process.stderr.write(
        `rrq: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(ExitCode.failure);
    },
  );
}

buildProgram(runAndExit).parse();
