import type { Command } from "commander";
import { jobJson, type DlqBulkResult, type DlqSelection, type RrqApi } from "../../api/index.js";
import { RrqError } from "../../errors.js";
import { bareQueueName, jobKey, queueKey } from "../../store/keys.js";
import { count, formatTime, json, renderTable, truncate, type Column } from "./format.js";
import {
  ExitCode,
  fitWidth,
  intArgument,
  progress,
  say,
  withApi,
  type CliContext,
} from "./shared.js";

interface ListFlags {
  dlqName?: string;
  queue?: string;
  function?: string;
  limit: number;
  offset: number;
  raw?: boolean;
  batchSize: number;
  json?: boolean;
}

async function fullHashes(api: RrqApi, ids: readonly string[]) {
  const pipeline = api.redis.pipeline();
  for (const id of ids) pipeline.hgetall(jobKey(id));
  return ((await pipeline.exec()) ?? []).map(([, hash]) => hash as Record<string, string>);
}

async function dlqList(ctx: CliContext, flags: ListFlags): Promise<number> {
  return withApi(ctx, async (api, config) => {
    const name = flags.dlqName ?? config.defaultDlqName;
    const { jobs, total } = await api.dlq.list({
      dlq: name,
      queue: flags.queue,
      functionName: flags.function,
      offset: flags.offset,
      limit: flags.limit,
      batchSize: flags.batchSize,
    });
    if (flags.json) {
      ctx.io.out(
        json({ dlq: api.dlq.key(name), total, offset: flags.offset, jobs: jobs.map(jobJson) }),
      );
      return ExitCode.ok;
    }
    if (flags.raw) {
      for (const hash of await fullHashes(
        api,
        jobs.map((j) => j.id),
      ))
        ctx.io.out(json(hash));
      return ExitCode.ok;
    }
    if (jobs.length === 0) {
      say(ctx, `No jobs found in DLQ: ${name}`);
      return ExitCode.ok;
    }
    const columns: Column[] = [
      { header: "Job ID", width: 36, flex: true },
      { header: "Function", width: 18, grow: true },
      { header: "Queue", width: 16, grow: true },
      { header: "Error", width: 25, flex: true },
      { header: "Failed At", width: 18 },
      { header: "Retries", width: 7, align: "right" },
    ];
    const rows = jobs.map((job) => [
      job.raw.id ?? "",
      job.functionName ?? "N/A",
      // RRQ cuts the full key to 14 characters ("rrq:queue:e..."); the bare name fits RRQ's
      // column for most queues, and a longer one widens it instead of being cut
      job.queueName ? bareQueueName(job.queueName) : "N/A",
      truncate(job.lastError ?? "Unknown", 23),
      formatTime(job.completionTime),
      job.raw.current_retries ?? job.raw.retries ?? "0",
    ]);
    for (const line of renderTable(columns, rows, fitWidth(ctx))) say(ctx, line);
    const end = Math.min(flags.offset + jobs.length, total);
    say(ctx, `\nShowing ${flags.offset + 1}-${end} of ${total} jobs`);
    if (end < total) say(ctx, `Use --offset ${flags.offset + flags.limit} to see more`);
    return ExitCode.ok;
  });
}

async function dlqStats(
  ctx: CliContext,
  flags: { dlqName?: string; rebuild?: boolean; json?: boolean },
): Promise<number> {
  return withApi(ctx, async (api, config) => {
    const name = flags.dlqName ?? config.defaultDlqName;
    const bar = progress(ctx, "Counting DLQ entries");
    const s = await api.dlq.stats({
      dlq: name,
      rebuild: flags.rebuild,
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.done();
    if (flags.json) {
      ctx.io.out(json(s));
      return ExitCode.ok;
    }
    if (s.entries === 0) {
      say(ctx, `DLQ '${name}' is empty`);
      return ExitCode.ok;
    }
    say(ctx, `DLQ: ${name}`);
    say(ctx, `Total jobs: ${s.jobs}`);
    if (s.oldest !== undefined) say(ctx, `Oldest: ${formatTime(s.oldest)}`);
    if (s.newest !== undefined) say(ctx, `Newest: ${formatTime(s.newest)}`);
    if (s.avgRetries !== undefined) say(ctx, `Avg retries: ${s.avgRetries.toFixed(2)}`);
    if (s.trimmed > 0) say(ctx, `Trimmed by the DLQ caps: ${s.trimmed}`);
    const section = (
      title: string,
      items: ReadonlyArray<[string, number]>,
      limit: number,
      line: (k: string, n: number) => string,
    ) => {
      if (items.length === 0) return;
      say(ctx, `\n${title}:`);
      for (const [key, n] of items.slice(0, limit)) say(ctx, `  - ${line(key, n)}`);
    };
    section("Top queues", s.byQueue, 10, (k, n) => `${k}: ${n}`);
    section("Top functions", s.byFunction, 10, (k, n) => `${k}: ${n}`);
    section("Top errors", s.byError, 5, (k, n) => `(${n}x) ${k}`);
    if (s.entries > s.jobs)
      say(ctx, `\n(${s.entries - s.jobs} more entries point at jobs whose hash has expired)`);
    return ExitCode.ok;
  });
}

async function dlqInspect(ctx: CliContext, id: string, flags: { raw?: boolean }): Promise<number> {
  return withApi(ctx, async (api) => {
    const hash = await api.dlq.inspect(id);
    if (!hash) {
      say(ctx, `Job '${id}' not found`);
      return ExitCode.failure;
    }
    if (!flags.raw) say(ctx, `DLQ Job ${id}`);
    ctx.io.out(json(hash));
    return ExitCode.ok;
  });
}

interface BulkFlags {
  dlqName?: string;
  queue?: string;
  function?: string;
  jobId?: string;
  limit?: number;
  all?: boolean;
  dryRun?: boolean;
  batchSize: number;
  json?: boolean;
}

const selectionOf = (flags: BulkFlags): DlqSelection => ({
  dlq: flags.dlqName,
  queue: flags.queue,
  functionName: flags.function,
  jobId: flags.jobId,
  limit: flags.limit,
  all: flags.all,
});

/** Runs a requeue or purge with progress and Ctrl-C handling; prints RRQ's lines. */
async function bulk(
  ctx: CliContext,
  verb: "requeue" | "purge",
  flags: BulkFlags,
  run: (
    api: RrqApi,
    options: {
      signal: AbortSignal;
      onProgress: (p: { done: number; examined: number; total: number }) => void;
    },
  ) => Promise<DlqBulkResult>,
  done: (result: DlqBulkResult, api: RrqApi) => string,
): Promise<number> {
  return withApi(ctx, async (api) => {
    const interrupts = ctx.io.interrupts();
    const bar = progress(ctx, verb === "requeue" ? "Requeueing" : "Purging");
    let result: DlqBulkResult;
    try {
      result = await run(api, {
        signal: interrupts.signal,
        onProgress: (p) =>
          bar.update(p.examined, p.total, ` entries examined, ${count(p.done)} ${verb}d`),
      });
    } catch (error) {
      if (error instanceof RrqError && error.code === "invalid_argument") {
        say(ctx, error.message);
        return ExitCode.usage;
      }
      throw error;
    } finally {
      bar.done();
      interrupts.dispose();
    }
    if (flags.json) {
      ctx.io.out(json(result));
    } else if (flags.dryRun) {
      say(ctx, `Dry run: would ${verb} ${result.selected.length} job(s).`);
      for (const id of result.selected) say(ctx, `  - ${id}`);
    } else {
      say(ctx, done(result, api));
      if (result.missing > 0)
        say(
          ctx,
          `Dropped ${result.missing} DLQ entr${result.missing === 1 ? "y" : "ies"} whose job had expired`,
        );
      if (result.interrupted) say(ctx, `Interrupted: the remaining jobs are still in the DLQ.`);
    }
    return result.interrupted ? ExitCode.interrupted : ExitCode.ok;
  });
}

/**
 * RRQ's "Requeued N job(s) to <queue>"; without --target-queue the jobs go back to their own
 * queues, so each queue is named with its count when there are several.
 */
function requeuedLine(result: DlqBulkResult, targetQueue: string | undefined): string {
  if (targetQueue) return `Requeued ${result.done} job(s) to ${queueKey(targetQueue)}`;
  const queues = Object.entries(result.queues).sort(([a], [b]) => a.localeCompare(b));
  if (queues.length === 0) return `Requeued ${result.done} job(s)`;
  if (queues.length === 1) return `Requeued ${result.done} job(s) to ${queues[0]![0]}`;
  const each = queues.map(([queue, n]) => `${queue} (${n})`).join(", ");
  return `Requeued ${result.done} job(s) to their own queues: ${each}`;
}

const bulkOptions = (command: Command) =>
  command
    .option("--dlq-name <name>", "DLQ name or key (default: default_dlq_name)")
    .option("--queue <name>", "only jobs from this queue")
    .option("--function <name>", "only jobs of this function")
    .option("--job-id <id>", "only this job")
    .option("--limit <n>", "at most this many jobs (newest first)", intArgument("--limit"))
    .option("--all", "every job (required when no filter is given)")
    .option("--dry-run", "list the jobs without changing anything")
    .option("--batch-size <n>", "jobs per Redis call", intArgument("--batch-size"), 500)
    .option("--json", "print JSON");

/** `rrq dlq list|stats|inspect|requeue|purge`. */
export function registerDlq(program: Command, ctx: CliContext): void {
  const dlq = program.command("dlq").description("inspect and drain dead-letter queues");
  dlq
    .command("list")
    .description("DLQ jobs, newest failure first")
    .option("--dlq-name <name>", "DLQ name or key (default: default_dlq_name)")
    .option("--queue <name>", "only jobs from this queue")
    .option("--function <name>", "only jobs of this function")
    .option("--limit <n>", "rows to show", intArgument("--limit"), 20)
    .option("--offset <n>", "rows to skip", intArgument("--offset"), 0)
    .option("--raw", "print each job hash as JSON")
    .option("--batch-size <n>", "jobs read per round trip", intArgument("--batch-size"), 100)
    .option("--json", "print JSON")
    .action((flags: ListFlags) => ctx.run(() => dlqList(ctx, flags)));
  dlq
    .command("stats")
    .description("DLQ size, age, average retries, top queues, functions and errors")
    .option("--dlq-name <name>", "DLQ name or key (default: default_dlq_name)")
    .option("--rebuild", "recount the summary from the list (drops expired jobs from it)")
    .option("--json", "print JSON")
    .action((flags: { dlqName?: string; rebuild?: boolean; json?: boolean }) =>
      ctx.run(() => dlqStats(ctx, flags)),
    );
  dlq
    .command("inspect")
    .argument("<job-id>")
    .option("--raw", "only the JSON")
    .description("print a DLQ job's hash")
    .action((id: string, flags: { raw?: boolean }) => ctx.run(() => dlqInspect(ctx, id, flags)));
  bulkOptions(
    dlq
      .command("requeue")
      .description("put DLQ jobs back in a queue, attempt counters reset and DLQ expiry removed")
      .option("--target-queue <name>", "queue to put them in (default: each job's own queue)")
      .option("--keep-attempts", "keep current_retries (RRQ's behaviour) instead of resetting it"),
  ).action((flags: BulkFlags & { targetQueue?: string; keepAttempts?: boolean }) =>
    ctx.run(() =>
      bulk(
        ctx,
        "requeue",
        flags,
        (api, o) =>
          api.dlq.requeue(selectionOf(flags), {
            ...o,
            targetQueue: flags.targetQueue,
            keepAttempts: flags.keepAttempts,
            dryRun: flags.dryRun,
            batchSize: flags.batchSize,
          }),
        (r) => requeuedLine(r, flags.targetQueue),
      ),
    ),
  );
  bulkOptions(dlq.command("purge").description("delete DLQ jobs for good")).action(
    (flags: BulkFlags) =>
      ctx.run(() =>
        bulk(
          ctx,
          "purge",
          flags,
          (api, o) =>
            api.dlq.purge(selectionOf(flags), {
              ...o,
              dryRun: flags.dryRun,
              batchSize: flags.batchSize,
            }),
          (r, api) => `Purged ${r.done} job(s) from ${api.dlq.key(flags.dlqName)}`,
        ),
      ),
  );
}
