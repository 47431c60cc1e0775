import type { Command } from "commander";
import {
  jobJson,
  jobTimeline,
  jobView,
  nextLiveMessage,
  type JobView,
  type OutputEntry,
  type RrqApi,
} from "../../api/index.js";
import { RUNNING_UNFENCED_MESSAGE } from "../../control/cancel.js";
import { RrqError } from "../../errors.js";
import { parseTimestamp } from "../../store/encoding.js";
import { liveChannel, outputKey } from "../../store/keys.js";
import { progressFromHash, type ProgressValue } from "../../store/live-store.js";
import { JOB_STATUSES } from "../../store/job.js";
import { flowFields, flowLines } from "./flow-format.js";
import { formatDuration, formatTime, json, renderTable, rfc3339, type Column } from "./format.js";
import {
  choiceArgument,
  ExitCode,
  fitWidth,
  intArgument,
  numberArgument,
  progress,
  say,
  withApi,
  type CliContext,
} from "./shared.js";

/** rrqkit's traceback of the last error: many lines, so `job show` prints it last, indented. */
const TRACEBACK_FIELD = "last_error_traceback";

/** `text` with every line indented by four spaces (a trailing newline dropped). */
function indent(text: string): string {
  return text
    .replace(/\n$/, "")
    .split("\n")
    .map((line) => `    ${line}`)
    .join("\n");
}

/** Runs `action` with job `id`'s hash; when there is none, says so and fails (RRQ's words). */
function withJob(
  ctx: CliContext,
  id: string,
  action: (api: RrqApi, hash: Record<string, string>) => Promise<number>,
): Promise<number> {
  return withApi(ctx, async (api) => {
    const hash = await api.jobs.hash(id);
    if (!hash) {
      say(ctx, `Job '${id}' not found`);
      return ExitCode.failure;
    }
    return action(api, hash);
  });
}

async function jobShow(ctx: CliContext, id: string, flags: { raw?: boolean; json?: boolean }) {
  return withJob(ctx, id, async (api, hash) => {
    if (flags.raw) {
      ctx.io.out(json(hash));
      return ExitCode.ok;
    }
    // why a waiting job does not run (a full concurrency key, its session's turn, an open
    // breaker, a paused queue): only a waiting job (PENDING, or RETRYING after a failed attempt)
    const waits = hash.status === "PENDING" || hash.status === "RETRYING";
    const waiting = waits ? await api.flow.waitReason(hash) : undefined;
    if (flags.json) {
      const flow = { ...flowFields(hash), ...(waiting ? { waiting } : {}) };
      const progress = progressFromHash(hash);
      ctx.io.out(
        json({
          id,
          hash,
          job: jobJson(jobView(id, hash)!),
          ...(Object.keys(flow).length > 0 ? { flow } : {}),
          ...(progress ? { progress } : {}),
        }),
      );
      return ExitCode.ok;
    }
    say(ctx, `Job ${id}`);
    for (const field of Object.keys(hash).sort()) {
      if (field !== TRACEBACK_FIELD) say(ctx, `${field.padEnd(24)} ${hash[field]}`);
    }
    const flow = flowLines(hash);
    if (flow.length > 0) say(ctx, `Flow control:\n${flow.join("\n")}`);
    if (waiting) say(ctx, `Waiting: ${waiting}`);
    for (const line of await liveLines(api, id, hash)) say(ctx, line);
    const traceback = hash[TRACEBACK_FIELD];
    if (traceback) say(ctx, `${TRACEBACK_FIELD}:\n${indent(traceback)}`);
    return ExitCode.ok;
  });
}

/** "42% halfway (3s ago)": a progress value in words. */
export function progressText(p: ProgressValue, now = Date.now()): string {
  const parts: string[] = [];
  if (p.progress !== null) parts.push(`${Math.round(p.progress * 1000) / 10}%`);
  if (p.message) parts.push(p.message);
  const at = Date.parse(p.at);
  if (Number.isFinite(at)) parts.push(`(${formatDuration(Math.max(0, (now - at) / 1000))} ago)`);
  return parts.join(" ");
}

/** `job show`'s live lines: the progress, and how much output the latest attempt has. */
async function liveLines(api: RrqApi, id: string, hash: Record<string, string>): Promise<string[]> {
  const lines: string[] = [];
  const progress = progressFromHash(hash);
  if (progress) lines.push(`Progress: ${progressText(progress)}`);
  const run = Number(hash.runs) || 0;
  if (run >= 1) {
    const entries = await api.redis.xlen(outputKey(id, run));
    if (entries > 0)
      lines.push(`Output: ${entries} entries in attempt ${run} (rrq job tail ${id})`);
  }
  if (hash.output_dropped_bytes)
    lines.push(`Output dropped: ${hash.output_dropped_bytes} bytes (orchestrator buffer full)`);
  return lines;
}

const FINAL_STATUSES = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/**
 * `rrq job watch <id>`: prints the job's status and progress as they change (SUBSCRIBE
 * rrq:live:<id>, re-reading the hash on each announcement and at least once a second), and
 * exits when the job is final: 0 when COMPLETED, 1 otherwise.
 */
async function jobWatch(ctx: CliContext, id: string): Promise<number> {
  return withApi(ctx, async (api) => {
    const subscriber = api.redis.duplicate();
    const interrupts = ctx.io.interrupts();
    const signal = interrupts.signal;
    try {
      await subscriber.subscribe(liveChannel(id));
      let last = "";
      for (;;) {
        const hash = await api.jobs.hash(id);
        if (!hash) {
          say(ctx, `Job '${id}' not found`);
          return ExitCode.failure;
        }
        const status = hash.status ?? "?";
        const progress = progressFromHash(hash);
        const pct =
          progress?.progress != null ? ` ${Math.round(progress.progress * 1000) / 10}%` : "";
        const line = `${status}${pct}${progress?.message ? ` ${progress.message}` : ""}`;
        if (line !== last) {
          say(ctx, `${rfc3339(Date.now())} ${line}`);
          last = line;
        }
        if (FINAL_STATUSES.has(status))
          return status === "COMPLETED" ? ExitCode.ok : ExitCode.failure;
        if (signal.aborted) return ExitCode.interrupted;
        await Promise.race([
          nextLiveMessage(subscriber, 1000),
          new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true })),
        ]);
      }
    } finally {
      interrupts.dispose();
      subscriber.disconnect();
    }
  });
}

/** One output entry as `job tail` prints it (data as written; markers in brackets). */
function printEntry(ctx: CliContext, entry: OutputEntry): void {
  if (entry.kind === "truncated") say(ctx, `[output truncated: ${entry.dropped} bytes dropped]`);
  else if (entry.kind === "closed") ctx.io.err(`[attempt ended: ${entry.status}]\n`);
  else if (entry.kind === "err") ctx.io.err(entry.data);
  else ctx.io.out(entry.data);
}

/**
 * `rrq job tail <id> [-f] [--attempt N]`: prints an attempt's output (default the latest);
 * with -f keeps following it and exits at its closed marker.
 */
async function jobTail(
  ctx: CliContext,
  id: string,
  flags: { follow?: boolean; attempt?: number },
): Promise<number> {
  return withJob(ctx, id, async (api) => {
    if (flags.follow) {
      const interrupts = ctx.io.interrupts();
      const signal = interrupts.signal;
      try {
        for await (const entry of api.output.follow(id, { attempt: flags.attempt, signal }))
          printEntry(ctx, entry);
        return signal.aborted ? ExitCode.interrupted : ExitCode.ok;
      } finally {
        interrupts.dispose();
      }
    }
    let cursor = "0";
    for (;;) {
      const page = await api.output.read(id, { attempt: flags.attempt, cursor, count: 1000 });
      for (const entry of page.entries) printEntry(ctx, entry);
      if (page.entries.length === 0 || page.closed) return ExitCode.ok;
      cursor = page.cursor;
    }
  });
}

/** RRQ's Duration column: completion − start, or running time for an ACTIVE job. */
function duration(job: JobView, now: number): string {
  if (job.startTime !== undefined && job.completionTime !== undefined)
    return formatDuration((job.completionTime - job.startTime) / 1000);
  if (job.startTime !== undefined && job.status?.toUpperCase() === "ACTIVE")
    return formatDuration(Math.floor(now / 1000) - job.startTime / 1000);
  return "N/A";
}

interface ListFlags {
  status?: string;
  queue?: string;
  function?: string;
  limit: number;
  scan?: boolean;
  index?: boolean;
  json?: boolean;
}

async function jobList(ctx: CliContext, flags: ListFlags): Promise<number> {
  return withApi(ctx, async (api) => {
    const bar = progress(ctx, "Scanning job keys");
    const { jobs, source } = await api.jobs.list({
      status: flags.status,
      queue: flags.queue,
      functionName: flags.function,
      limit: flags.limit,
      mode: flags.scan ? "scan" : flags.index ? "index" : "auto",
      onProgress: (n) => n >= 50_000 && bar.update(n),
    });
    bar.done();
    if (flags.json) {
      ctx.io.out(json({ jobs: jobs.map(jobJson), source }));
      return ExitCode.ok;
    }
    if (jobs.length === 0) {
      say(ctx, "No jobs found");
      return ExitCode.ok;
    }
    const now = Date.now();
    const columns: Column[] = [
      { header: "Job ID", width: 36, flex: true },
      { header: "Function", width: 30, grow: true },
      { header: "Queue", width: 24, grow: true },
      { header: "Status", width: 10 },
      { header: "Enqueued", width: 18 },
      { header: "Duration", width: 10, align: "right" },
    ];
    const rows = jobs.map((job) => [
      job.id,
      job.functionName ?? "unknown",
      job.queueName ?? "unknown",
      job.status ?? "UNKNOWN",
      formatTime(job.enqueueTime, now),
      duration(job, now),
    ]);
    for (const line of renderTable(columns, rows, fitWidth(ctx))) say(ctx, line);
    if (source === "index")
      ctx.io.err(
        "(listed from rrqkit's indexes: queues, leases, DLQ and recent jobs; --scan reads every job)\n",
      );
    return ExitCode.ok;
  });
}

async function jobReplay(ctx: CliContext, id: string, flags: { queue?: string }) {
  return withJob(ctx, id, async (api) => {
    const newId = await api.jobs.replay(id, { queue: flags.queue });
    say(ctx, `Job replayed with new ID: ${newId}`);
    return ExitCode.ok;
  });
}

async function jobCancel(ctx: CliContext, id: string) {
  return withApi(ctx, async (api) => {
    const result = await api.jobs.cancel(id);
    if (result.ok) {
      if ("workerId" in result)
        say(ctx, `Job '${id}' cancelled while running on worker ${result.workerId}`);
      else say(ctx, `Job '${id}' cancelled successfully`);
      return ExitCode.ok;
    }
    if (result.reason === "not_found") say(ctx, `Job '${id}' not found`);
    else if (result.reason === "running_unfenced")
      say(
        ctx,
        `Cannot cancel job '${id}': ${RUNNING_UNFENCED_MESSAGE} (RRQ's own orchestrator does ` +
          "not fence its writes, so its result would overwrite the cancel); wait for it to " +
          "finish, or stop that worker",
      );
    else if (result.reason === "not_waiting")
      // RRQ's wording; rrqkit also cancels waiting (PENDING, RETRYING) and running jobs
      say(ctx, `Can only cancel pending jobs. Job status: ${result.status}`);
    else if (result.reason === "no_queue") say(ctx, "Job has no associated queue");
    else say(ctx, "Failed to remove job from queue");
    return ExitCode.failure;
  });
}

async function jobTrace(ctx: CliContext, id: string, flags: { json?: boolean }) {
  return withApi(ctx, async (api) => {
    const hash = await api.jobs.hash(id);
    const events = hash && jobTimeline(hash);
    const traceback = hash?.[TRACEBACK_FIELD] || undefined;
    if (!events) {
      say(ctx, `Job '${id}' not found`);
      return ExitCode.failure;
    }
    if (flags.json) {
      ctx.io.out(
        json({
          id,
          events: events.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
          ...(traceback && { lastErrorTraceback: traceback }),
        }),
      );
      return ExitCode.ok;
    }
    if (events.length === 0) {
      say(ctx, `No trace data found for job ${id}`);
      return ExitCode.ok;
    }
    say(ctx, `Job trace for ${id}`);
    say(ctx, `${"Event".padEnd(12)} ${"Timestamp".padEnd(20)} Details`);
    let previous: number | undefined;
    for (const e of events) {
      const gap = previous === undefined ? "" : ` (+${formatDuration((e.at - previous) / 1000)})`;
      say(ctx, `${e.event.padEnd(12)} ${rfc3339(e.at).padEnd(20)} ${e.details}${gap}`);
      previous = e.at;
    }
    say(ctx, `\nTotal Duration: ${formatDuration((events.at(-1)!.at - events[0]!.at) / 1000)}`);
    // the last error's traceback (only the last one is kept: run rows carry the error and type)
    if (traceback) say(ctx, `\nLast error traceback:\n${indent(traceback)}`);
    return ExitCode.ok;
  });
}

async function jobDelete(ctx: CliContext, id: string, flags: { force?: boolean }) {
  return withApi(ctx, async (api) => {
    const result = await api.jobs.delete(id, flags);
    if (result.ok) {
      say(ctx, `Job '${id}' deleted (was ${result.status || "without status"})`);
      return ExitCode.ok;
    }
    if (result.reason === "not_found") say(ctx, `Job '${id}' not found`);
    else say(ctx, `Job '${id}' is ACTIVE; use --force to delete a running job`);
    return ExitCode.failure;
  });
}

function runAt(flags: { at?: string; in?: number }): number {
  if (flags.at !== undefined && flags.in !== undefined)
    throw new RrqError("invalid_argument", "give either --at or --in");
  if (flags.in !== undefined) return Date.now() + flags.in * 1000;
  const ms = flags.at === undefined ? Date.now() : parseTimestamp(flags.at);
  if (ms === undefined)
    throw new RrqError("invalid_argument", "--at must be RFC 3339 or epoch seconds");
  return ms;
}

async function jobReschedule(ctx: CliContext, id: string, flags: { at?: string; in?: number }) {
  const when = runAt(flags);
  return withApi(ctx, async (api) => {
    const result = await api.jobs.reschedule(id, when);
    if (result.ok) {
      say(ctx, `Job '${id}' rescheduled to ${rfc3339(when)} on ${result.queue}`);
      return ExitCode.ok;
    }
    if (result.reason === "not_found") say(ctx, `Job '${id}' not found`);
    else if (result.reason === "not_waiting")
      say(ctx, `Can only reschedule pending or retrying jobs. Job status: ${result.status}`);
    else say(ctx, "The job is not in its queue");
    return ExitCode.failure;
  });
}

/** `rrq job show|watch|tail|list|replay|cancel|trace|delete|reschedule`. */
export function registerJob(program: Command, ctx: CliContext): void {
  const job = program.command("job").description("inspect and act on jobs");
  job
    .command("show")
    .argument("<job-id>")
    .option("--raw", "print the job hash as JSON")
    .option("--json", "print JSON (hash, parsed fields, flow control and its wait reason)")
    .description("print a job's hash; with flow control, its limits and why a pending job waits")
    .action((id: string, flags: { raw?: boolean; json?: boolean }) =>
      ctx.run(() => jobShow(ctx, id, flags)),
    );
  job
    .command("watch")
    .argument("<job-id>")
    .description("print a job's status and progress as they change, until it is final")
    .action((id: string) => ctx.run(() => jobWatch(ctx, id)));
  job
    .command("tail")
    .argument("<job-id>")
    .option("-f, --follow", "keep printing new output until the attempt ends")
    .option("--attempt <n>", "the attempt to print (default: the latest)", intArgument("--attempt"))
    .description("print the output a job's attempt streamed (live jobs)")
    .action((id: string, flags: { follow?: boolean; attempt?: number }) =>
      ctx.run(() => jobTail(ctx, id, flags)),
    );
  job
    .command("list")
    .description("jobs, newest enqueued first")
    .option(
      "--status <status>",
      "PENDING, ACTIVE, COMPLETED, FAILED, RETRYING or CANCELLED",
      choiceArgument("--status", JOB_STATUSES),
    )
    .option("--queue <name>", "queue name or key")
    .option("--function <name>", "function name")
    .option("--limit <n>", "rows to show", intArgument("--limit"), 20)
    .option("--scan", "read every job hash (RRQ's method; exact, slow on large keyspaces)")
    .option("--index", "read only rrqkit's indexes (fast; the default above 20,000 keys)")
    .option("--json", "print JSON")
    .action((flags: ListFlags) => ctx.run(() => jobList(ctx, flags)));
  job
    .command("replay")
    .argument("<job-id>")
    .option("--queue <name>", "queue for the new job (default: the job's queue)")
    .description("enqueue a new job with the same function and params")
    .action((id: string, flags: { queue?: string }) => ctx.run(() => jobReplay(ctx, id, flags)));
  job
    .command("cancel")
    .argument("<job-id>")
    .description("cancel a job waiting in its queue (PENDING or RETRYING)")
    .action((id: string) => ctx.run(() => jobCancel(ctx, id)));
  job
    .command("trace")
    .argument("<job-id>")
    .option("--json", "print JSON")
    .description("a job's timeline: enqueue, every run with its worker and outcome, retries")
    .action((id: string, flags: { json?: boolean }) => ctx.run(() => jobTrace(ctx, id, flags)));
  job
    .command("delete")
    .argument("<job-id>")
    .option("--force", "also delete a job that is running")
    .description("delete a job and its queue, DLQ and lock entries")
    .action((id: string, flags: { force?: boolean }) => ctx.run(() => jobDelete(ctx, id, flags)));
  job
    .command("reschedule")
    .argument("<job-id>")
    .option("--at <time>", "new run time (RFC 3339 or epoch seconds; default: now)")
    .option("--in <seconds>", "run this many seconds from now", numberArgument("--in"))
    .description("move a waiting job to a new run time")
    .action((id: string, flags: { at?: string; in?: number }) =>
      ctx.run(() => jobReschedule(ctx, id, flags)),
    );
}
