import { InvalidArgumentError, type Command } from "commander";
import { optionsFromSnakeCase } from "../../producer/options.js";
import { Producer, producerConfigFrom } from "../../producer/producer.js";
import { RrqError } from "../../errors.js";
import {
  collect,
  ExitCode,
  jsonArgument,
  loadCli,
  numberArgument,
  say,
  type CliContext,
} from "./shared.js";

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
  concurrencyKey?: string;
  concurrencyLimit?: number;
  startRate?: { limit: number; period_seconds: number };
  limit?: string;
  orderingKey?: string;
  requires?: string[];
  wait?: number;
  json?: boolean;
}

/** The command-line option behind each producer option the producer's errors name. */
const FLAG_OF: Readonly<Record<string, string>> = {
  params: "--params",
  queue_name: "--queue",
  job_id: "--job-id",
  unique_key: "--unique-key",
  unique_ttl_seconds: "--unique-ttl",
  max_retries: "--max-retries",
  job_timeout_seconds: "--timeout",
  result_ttl_seconds: "--result-ttl",
  defer_by_seconds: "--defer-by",
  defer_until: "--defer-until",
  trace_context: "--trace-context",
  rate_limit_key: "--rate-limit-key",
  rate_limit_seconds: "--rate-limit-seconds",
  debounce_key: "--debounce-key",
  debounce_seconds: "--debounce-seconds",
  concurrency_key: "--concurrency-key",
  concurrency_limit: "--concurrency-limit",
  start_rate: "--start-rate",
  ordering_key: "--ordering-key",
  requires: "--requires",
};

/** `--start-rate <limit>/<seconds>` ("50/1": 50 starts per second) as the start_rate option. */
function startRateArgument(value: string): { limit: number; period_seconds: number } {
  const match = /^\s*([^/\s]+)\s*\/\s*([^/\s]+)\s*$/.exec(value);
  const limit = Number(match?.[1]);
  const period = Number(match?.[2]);
  if (!match || !Number.isFinite(limit) || !Number.isFinite(period))
    throw new InvalidArgumentError(
      `--start-rate must be <limit>/<seconds> (e.g. 50/1), not ${JSON.stringify(value)}`,
    );
  return { limit, period_seconds: period };
}

/** A producer's bad-input error, reworded to name the option the user typed. */
function inTermsOfFlags(error: unknown): unknown {
  if (!(error instanceof RrqError)) return error;
  if (error.code !== "invalid_argument" && error.code !== "conflicting_options") return error;
  // every option field named in the message becomes the flag the user typed
  const message = error.message.replace(
    /\b[a-z]+(?:_[a-z]+)+\b/g,
    (field) => FLAG_OF[field] ?? field,
  );
  return message === error.message ? error : new RrqError(error.code, message);
}

async function enqueue(
  ctx: CliContext,
  functionName: string,
  flags: EnqueueFlags,
): Promise<number> {
  const { config } = loadCli(ctx);
  const producer = new Producer(producerConfigFrom(config));
  try {
    return await enqueueWith(ctx, producer, functionName, flags);
  } catch (error) {
    throw inTermsOfFlags(error);
  } finally {
    await producer.close();
  }
}

async function enqueueWith(
  ctx: CliContext,
  producer: Producer,
  functionName: string,
  flags: EnqueueFlags,
): Promise<number> {
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
    concurrency_key: flags.concurrencyKey,
    concurrency_limit: flags.concurrencyLimit,
    start_rate: flags.startRate,
    limit: flags.limit,
    ordering_key: flags.orderingKey,
    requires: flags.requires,
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
    say(ctx, JSON.stringify({ job_id: jobId, ...(result !== undefined ? { result } : {}) }));
  } else if (jobId === null) {
    say(ctx, "Rate limited: job not enqueued");
  } else {
    say(ctx, jobId);
    if (result !== undefined)
      say(
        ctx,
        result
          ? `${result.status} ${JSON.stringify(result.result)}${result.lastError ? ` (${result.lastError})` : ""}`
          : "Timed out waiting for the job",
      );
  }
  return flags.wait !== undefined && (!result || result.status !== "COMPLETED")
    ? ExitCode.failure
    : ExitCode.ok;
}

/** `rrq enqueue` (rrqkit's producer from the command line). */
export function registerEnqueue(program: Command, ctx: CliContext): void {
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
    .option("--concurrency-key <key>", "jobs with this key share a concurrency cap and start rate")
    .option(
      "--concurrency-limit <n>",
      "at most n jobs of the key (or limit) run at once",
      numberArgument("--concurrency-limit"),
    )
    .option(
      "--start-rate <limit/seconds>",
      "at most <limit> starts per <seconds> for the key (or limit), spread evenly",
      startRateArgument,
    )
    .option("--limit <name>", "a [rrq.limits.<name>] table of rrq.toml")
    .option("--ordering-key <key>", "session: jobs of the key run one at a time in enqueue order")
    .option(
      "--requires <tag>",
      "a capability tag the runner must offer (repeat for several): the job waits for one",
      collect,
    )
    .option(
      "--wait <seconds>",
      "wait for the job to finish and print its status",
      numberArgument("--wait"),
    )
    .option("--json", "print JSON")
    .action((fn: string, flags: EnqueueFlags) => ctx.run(() => enqueue(ctx, fn, flags)));
}
