import type { Command } from "commander";
import { Producer } from "../../producer/producer.js";
import { canonicalJson, formatTimestampMicros } from "../../store/encoding.js";
import { healthKey, jobKey, Prefix, QUEUES_KEY, queueKey } from "../../store/keys.js";
import { count } from "./format.js";
import {
  collect,
  ExitCode,
  intArgument,
  jsonArgument,
  jsonArrayArgument,
  numberArgument,
  progress,
  say,
  withApi,
  type CliContext,
} from "./shared.js";
import { scanKeys } from "../../api/scan.js";

const FUNCTIONS = [
  "process_data",
  "send_email",
  "generate_report",
  "cleanup_files",
  "sync_database",
  "resize_image",
  "calculate_metrics",
  "export_csv",
  "backup_data",
  "validate_input",
];
const ERRORS = [
  "Connection timeout",
  "Invalid input data",
  "Database error",
  "File not found",
  "Permission denied",
];
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
const between = (low: number, high: number) => low + Math.floor(Math.random() * (high - low + 1));
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/** One synthetic job hash in RRQ's `debug generate-jobs` shape (RRQ encodings). */
export function fakeJob(
  i: number,
  queue: string,
  status: string,
  enqueueMicros: number,
): Record<string, string> {
  const ts = (micros: number) => formatTimestampMicros(micros);
  const hash: Record<string, string> = {
    id: `test_job_${Date.now() * 1000 + (i % 1000)}_${i}`,
    function_name: pick(FUNCTIONS),
    job_params: canonicalJson({
      arg: `arg_${i}`,
      count: between(1, 100),
      priority: pick(["high", "medium", "low"]),
      user_id: between(1, 1000),
    }),
    enqueue_time: ts(enqueueMicros),
    status: status.toUpperCase(),
    current_retries: String(between(0, 3)),
    max_retries: "3",
    result: "null",
    queue_name: queue,
  };
  const started = enqueueMicros + between(1, 60) * 1_000_000;
  const finished = started + between(1, 300) * 1_000_000;
  if (hash.status === "COMPLETED" || hash.status === "FAILED" || hash.status === "ACTIVE") {
    hash.start_time = ts(started);
    hash.worker_id = `worker_${between(1, 10)}`;
  }
  if (hash.status === "COMPLETED") {
    hash.completion_time = ts(finished);
    hash.result = canonicalJson({ processed_items: between(1, 100), success: true });
  }
  if (hash.status === "FAILED") {
    hash.completion_time = ts(finished);
    hash.last_error = pick(ERRORS);
  }
  return hash;
}

interface GenerateFlags {
  count: number;
  queue?: string[];
  status?: string[];
  ageHours: number;
  batchSize: number;
}

async function generateJobs(ctx: CliContext, flags: GenerateFlags): Promise<number> {
  return withApi(ctx, async (api) => {
    const queues = (
      flags.queue?.length ? flags.queue : ["test", "urgent", "low_priority", "default"]
    ).map(queueKey);
    const statuses = flags.status?.length
      ? flags.status
      : ["pending", "completed", "failed", "retrying"];
    const nowMicros = Date.now() * 1000;
    const spanMicros = Math.max(1, flags.ageHours) * 3600 * 1_000_000;
    const interrupts = ctx.io.interrupts();
    const bar = progress(ctx, "Generating jobs");
    let made = 0;
    try {
      while (made < flags.count && !interrupts.signal.aborted) {
        const pipeline = api.redis.pipeline();
        const size = Math.min(Math.max(1, flags.batchSize), flags.count - made);
        for (let k = 0; k < size; k++, made++) {
          const queue = pick(queues);
          const enqueued = nowMicros - spanMicros + Math.floor(Math.random() * spanMicros);
          const hash = fakeJob(made, queue, pick(statuses), enqueued);
          pipeline.hset(jobKey(hash.id!), hash);
          if (hash.status === "PENDING") {
            pipeline.zadd(queue, Math.floor(enqueued / 1000), hash.id!);
            pipeline.sadd(QUEUES_KEY, queue);
          }
        }
        await pipeline.exec();
        bar.update(made, flags.count);
      }
    } finally {
      bar.done();
      interrupts.dispose();
    }
    if (made < flags.count) {
      say(
        ctx,
        `Interrupted: generated ${made} of ${flags.count} fake jobs across ${queues.length} queues`,
      );
      return ExitCode.interrupted;
    }
    say(ctx, `Generated ${flags.count} fake jobs across ${queues.length} queues`);
    return ExitCode.ok;
  });
}

async function generateWorkers(
  ctx: CliContext,
  flags: { count: number; duration: number },
): Promise<number> {
  return withApi(ctx, async (api) => {
    const ids = Array.from({ length: flags.count }, (_, i) => `test_worker_${i}`);
    say(ctx, `Simulating ${flags.count} workers for ${flags.duration} seconds...`);
    const interrupts = ctx.io.interrupts();
    const end = Date.now() + flags.duration * 1000;
    try {
      while (Date.now() < end && !interrupts.signal.aborted) {
        const pipeline = api.redis.pipeline();
        for (const id of ids) {
          const payload = {
            active_jobs: between(0, 5),
            concurrency_limit: between(5, 20),
            queues: ["rrq:queue:test", "rrq:queue:default"],
            status: pick(["running", "idle", "polling"]),
            timestamp: Math.floor(Date.now() / 1000),
            worker_id: id,
          };
          pipeline.set(healthKey(id), JSON.stringify(payload), "EX", 60);
        }
        await pipeline.exec();
        await sleep(Math.min(5000, Math.max(0, end - Date.now())), interrupts.signal);
        const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
        ctx.io.out(`\rSimulating workers... ${left}s remaining`);
      }
    } finally {
      interrupts.dispose();
    }
    say(ctx, "\nWorker simulation complete");
    return interrupts.signal.aborted ? ExitCode.interrupted : ExitCode.ok;
  });
}

interface SubmitFlags {
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  queue?: string;
  delay?: number;
}

async function submit(ctx: CliContext, fn: string, flags: SubmitFlags): Promise<number> {
  return withApi(ctx, async (api) => {
    // RRQ ignores --args/--kwargs it cannot parse and enqueues without them; rrqkit's parsers
    // refuse them (exit 2) rather than run a job with params the user did not mean.
    const params: Record<string, unknown> = { ...flags.kwargs };
    if (flags.args && flags.args.length > 0) params.args = flags.args;
    const producer = new Producer(api.settings.producer, api.redis);
    const id = await producer.enqueue(fn, params, {
      queueName: flags.queue ?? api.settings.defaultQueueName,
      ...(flags.delay !== undefined ? { deferBySeconds: flags.delay } : {}),
    });
    say(ctx, `Job submitted: ${id}`);
    say(ctx, `Function: ${fn}`);
    return ExitCode.ok;
  });
}

/**
 * The keys `debug clear` deletes: the pattern as given and, when it does not start with `rrq:`,
 * the same pattern under any `rrq:<kind>:` prefix (RRQ matches only the literal pattern, so its
 * default `test_*` never matches its own `rrq:job:test_job_…` keys).
 */
async function keysFor(pattern: string, api: { redis: import("ioredis").Redis }) {
  const patterns = pattern.startsWith("rrq:") ? [pattern] : [pattern, `rrq:*:${pattern}`];
  const keys = new Set<string>();
  for (const p of patterns)
    for await (const batch of scanKeys(api.redis, p)) for (const k of batch) keys.add(k);
  return [...keys];
}

async function clear(
  ctx: CliContext,
  flags: { pattern: string; confirm?: boolean },
): Promise<number> {
  return withApi(ctx, async (api) => {
    const keys = await keysFor(flags.pattern, api);
    if (keys.length === 0) {
      say(ctx, `No keys found matching pattern: ${flags.pattern}`);
      return ExitCode.ok;
    }
    say(ctx, `Found ${keys.length} keys matching pattern: ${flags.pattern}`);
    if (!flags.confirm) {
      say(ctx, `Delete ${keys.length} keys? [y/N]`);
      if ((await ctx.io.readLine()).trim().toLowerCase() !== "y") {
        say(ctx, "Deletion cancelled");
        return ExitCode.ok;
      }
    }
    const interrupts = ctx.io.interrupts();
    const bar = progress(ctx, "Deleting keys");
    let deleted = 0;
    let handled = 0;
    try {
      while (handled < keys.length && !interrupts.signal.aborted) {
        const batch = keys.slice(handled, handled + 500);
        // Job hashes also leave their queue, in the same MULTI as the delete: a Ctrl-C between
        // batches leaves no job without its hash in a queue.
        const jobs = batch.filter((k) => k.startsWith(Prefix.job));
        const queues =
          jobs.length > 0
            ? await Promise.all(jobs.map((k) => api.redis.hget(k, "queue_name")))
            : [];
        const multi = api.redis.multi();
        jobs.forEach((k, j) => {
          const queue = queues[j];
          if (queue) multi.zrem(queueKey(queue), k.slice(Prefix.job.length));
        });
        multi.unlink(...batch);
        const replies = (await multi.exec()) ?? [];
        deleted += Number(replies.at(-1)?.[1] ?? 0);
        handled += batch.length;
        bar.update(handled, keys.length);
      }
    } finally {
      bar.done();
      interrupts.dispose();
    }
    if (handled < keys.length) {
      say(ctx, `Interrupted: deleted ${deleted} of ${keys.length} keys`);
      return ExitCode.interrupted;
    }
    if (deleted > 0) say(ctx, `Deleted ${deleted} keys`);
    return ExitCode.ok;
  });
}

async function stressTest(
  ctx: CliContext,
  flags: { jobsPerSecond: number; duration: number; queues?: string[] },
): Promise<number> {
  return withApi(ctx, async (api) => {
    const queues = flags.queues?.length ? flags.queues : ["stress_test"];
    const producer = new Producer(api.settings.producer, api.redis);
    say(ctx, `Starting stress test: ${flags.jobsPerSecond} jobs/sec for ${flags.duration}s`);
    const interrupts = ctx.io.interrupts();
    const start = Date.now();
    let total = 0;
    try {
      while (Date.now() - start < flags.duration * 1000 && !interrupts.signal.aborted) {
        const second = Date.now();
        const batch = Math.floor(second / 1000);
        await producer.enqueueMany(
          Array.from({ length: flags.jobsPerSecond }, (_, i) => ({
            functionName: "stress_test_job",
            params: { batch, job_number: total + i },
            options: { queueName: pick(queues) },
          })),
        );
        total += flags.jobsPerSecond;
        await sleep(Math.max(0, 1000 - (Date.now() - second)), interrupts.signal);
        const left = Math.max(0, flags.duration - Math.floor((Date.now() - start) / 1000));
        ctx.io.out(`\rStress test: ${count(total)} jobs submitted, ${left}s remaining`);
      }
    } finally {
      interrupts.dispose();
    }
    say(ctx, `\nStress test complete: ${total} jobs submitted`);
    return interrupts.signal.aborted ? ExitCode.interrupted : ExitCode.ok;
  });
}

/** `rrq debug generate-jobs|generate-workers|submit|clear|stress-test`. */
export function registerDebug(program: Command, ctx: CliContext): void {
  const debug = program.command("debug").description("test data and load generation");
  debug
    .command("generate-jobs")
    .description("write synthetic job hashes (RRQ's test data)")
    .option("--count <n>", "jobs to create", intArgument("--count"), 100)
    .option(
      "--queue <name>",
      "queue (repeatable; default test, urgent, low_priority, default)",
      collect,
    )
    .option(
      "--status <status>",
      "pending, completed, failed, retrying or active (repeatable)",
      collect,
    )
    .option(
      "--age-hours <n>",
      "spread enqueue times over this many hours",
      intArgument("--age-hours"),
      24,
    )
    .option("--batch-size <n>", "jobs per pipeline", intArgument("--batch-size"), 10)
    .action((flags: GenerateFlags) => ctx.run(() => generateJobs(ctx, flags)));
  debug
    .command("generate-workers")
    .description("write fake worker health records for a while")
    .option("--count <n>", "workers", intArgument("--count"), 5)
    .option("--duration <seconds>", "how long", intArgument("--duration"), 60)
    .action((flags: { count: number; duration: number }) =>
      ctx.run(() => generateWorkers(ctx, flags)),
    );
  debug
    .command("submit")
    .argument("<function>")
    .option(
      "--args <json>",
      "JSON array, stored as params.args (deprecated)",
      jsonArrayArgument("--args"),
    )
    .option("--kwargs <json>", "JSON object used as params", jsonArgument("--kwargs"))
    .option("--queue <name>", "queue name")
    .option("--delay <seconds>", "run after this many seconds", numberArgument("--delay"))
    .description("enqueue one job")
    .action((fn: string, flags: SubmitFlags) => ctx.run(() => submit(ctx, fn, flags)));
  debug
    .command("clear")
    .description("delete keys matching a pattern (asks first)")
    .option("--pattern <glob>", "key pattern", "test_*")
    .option("--confirm", "do not ask")
    .action((flags: { pattern: string; confirm?: boolean }) => ctx.run(() => clear(ctx, flags)));
  debug
    .command("stress-test")
    .description("enqueue stress_test_job at a steady rate")
    .option("--jobs-per-second <n>", "rate", intArgument("--jobs-per-second"), 10)
    .option("--duration <seconds>", "how long", intArgument("--duration"), 60)
    .option("--queues <name>", "queue (repeatable; default stress_test)", collect)
    .action((flags: { jobsPerSecond: number; duration: number; queues?: string[] }) =>
      ctx.run(() => stressTest(ctx, flags)),
    );
}
