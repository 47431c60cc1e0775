import type { Command } from "commander";
import { checkedQueueKey, jobJson } from "../../api/index.js";
import { bareQueueName, queueKey } from "../../store/keys.js";
import { BREAKER_COLUMNS, breakerRows, pausedCell, pausedText, sinceText } from "./flow-format.js";
import { formatDuration, formatTime, json, renderTable, type Column } from "./format.js";
import {
  collect,
  ExitCode,
  fitWidth,
  intArgument,
  say,
  withApi,
  type CliContext,
} from "./shared.js";

async function queueList(
  ctx: CliContext,
  flags: { showEmpty?: boolean; scan?: boolean; json?: boolean },
): Promise<number> {
  return withApi(ctx, async (api) => {
    const [rows, breakers] = await Promise.all([
      api.queues.list({ includeEmpty: flags.showEmpty, scan: flags.scan }),
      api.flow.breakers(),
    ]);
    const total = rows.reduce((n, r) => n + r.pending, 0);
    const parked = rows.reduce((n, r) => n + r.parked, 0);
    if (flags.json) {
      ctx.io.out(json({ queues: rows, totalPending: total, totalParked: parked, breakers }));
      return ExitCode.ok;
    }
    const troubled = breakers.filter((b) => b.state !== "closed");
    if (rows.length === 0) {
      say(ctx, "No active queues found");
    } else {
      // the flow-control columns appear only when something is paused or parked, so that
      // without flow control the table stays RRQ's
      const flow = rows.some((r) => r.paused !== null || r.parked > 0);
      const columns: Column[] = [
        { header: "Queue", width: 30, grow: true },
        { header: "Pending", width: 10, align: "right" },
        // RRQ prints the raw scores (epoch ms) under "Oldest(ms)"/"Newest(ms)"; --json has them
        { header: "Oldest", width: 20, align: "right" },
        { header: "Newest", width: 20, align: "right" },
        ...(flow
          ? [
              { header: "Parked", width: 8, align: "right" as const },
              { header: "Paused", width: 14 },
            ]
          : []),
      ];
      const now = Date.now();
      const lines = renderTable(
        columns,
        rows.map((r) => [
          r.name,
          String(r.pending),
          formatTime(r.oldestScore, now),
          formatTime(r.newestScore, now),
          ...(flow ? [String(r.parked), pausedCell(r.paused, now)] : []),
        ]),
        fitWidth(ctx),
      );
      for (const line of lines) say(ctx, line);
      say(ctx, `\nTotal: ${total} pending jobs`);
      if (parked > 0)
        say(ctx, `Parked: ${parked} jobs held by flow control (not counted as pending)`);
      for (const r of rows) {
        if (!r.paused) continue;
        const reason = r.paused.reason ? `, reason: ${r.paused.reason}` : "";
        say(ctx, `Paused: ${r.name} ${sinceText(r.paused, now)}${reason}`);
      }
    }
    if (troubled.length > 0) {
      say(ctx, "\nCircuit breakers not closed:");
      for (const line of renderTable(BREAKER_COLUMNS, breakerRows(troubled), fitWidth(ctx)))
        say(ctx, line);
    }
    return ExitCode.ok;
  });
}

async function queuePause(
  ctx: CliContext,
  name: string,
  flags: { reason?: string; json?: boolean },
): Promise<number> {
  const queue = checkedQueueKey(name); // a bad name is a usage error before any connection
  return withApi(ctx, async (api) => {
    const known = (await api.queues.presence(queue)).known;
    const result = await api.flow.pauseQueue(queue, flags.reason);
    if (flags.json) {
      ctx.io.out(json({ ...result, known }));
      return ExitCode.ok;
    }
    if (result.wasPaused) {
      say(ctx, `Queue '${queue}' was already ${pausedText(result.paused)}; left as it was`);
      return ExitCode.ok;
    }
    const reason = result.paused.reason ? ` (reason: ${result.paused.reason})` : "";
    say(ctx, `Queue '${queue}' paused${reason}`);
    say(ctx, "Workers claim no new job from it; running jobs finish.");
    if (!known)
      say(
        ctx,
        `Note: no queue '${queue}' is known yet (nothing registered, configured or running); ` +
          "it stays paused for when jobs arrive.",
      );
    say(ctx, `Undo with: rrq queue resume ${bareQueueName(queue)}`);
    return ExitCode.ok;
  });
}

async function queueResume(
  ctx: CliContext,
  name: string,
  flags: { json?: boolean },
): Promise<number> {
  const queue = checkedQueueKey(name);
  return withApi(ctx, async (api) => {
    const result = await api.flow.resumeQueue(queue);
    if (flags.json) {
      ctx.io.out(
        json({
          queue,
          resumed: result.wasPaused !== undefined,
          wasPaused: result.wasPaused ?? null,
        }),
      );
      return ExitCode.ok;
    }
    if (!result.wasPaused) {
      say(ctx, `Queue '${queue}' was not paused`);
      return ExitCode.ok;
    }
    say(
      ctx,
      `Queue '${queue}' resumed; it had been paused ${sinceText(result.wasPaused)}. Workers woken.`,
    );
    return ExitCode.ok;
  });
}

async function queueStats(
  ctx: CliContext,
  flags: { queue?: string[]; maxScan?: number; counters?: boolean; json?: boolean },
): Promise<number> {
  return withApi(ctx, async (api) => {
    const { rows, source } = await api.queues.stats({
      queues: flags.queue,
      maxScan: flags.maxScan,
      mode: flags.counters ? "counters" : "auto",
    });
    if (flags.json) {
      ctx.io.out(json({ queues: rows, source }));
      return ExitCode.ok;
    }
    const names = flags.queue?.length ? flags.queue : await api.queues.names();
    if (names.length === 0) {
      say(ctx, "No queues found");
      return ExitCode.ok;
    }
    const columns: Column[] = [
      { header: "Queue", width: 25, grow: true },
      { header: "Total", width: 8, align: "right" },
      { header: "Pending", width: 8, align: "right" },
      { header: "Active", width: 8, align: "right" },
      { header: "Completed", width: 9, align: "right" },
      { header: "Failed", width: 8, align: "right" },
      { header: "DLQ", width: 10, align: "right" },
      { header: "Avg Wait", width: 12, align: "right" },
    ];
    const table = rows.map((r) =>
      [r.name, r.total, r.pending, r.active, r.completed, r.failed, r.dlq]
        .map(String)
        .concat(formatDuration(r.avgWaitSeconds)),
    );
    for (const line of renderTable(columns, table, fitWidth(ctx))) say(ctx, line);
    if (source.kind === "scan" && source.maxScan > 0) {
      say(
        ctx,
        `\nNote: Active/Completed/Failed counts based on scanning up to ${source.maxScan} jobs.`,
      );
      say(ctx, "Use --max-scan 0 for complete scan (may be slow for large datasets).");
    } else if (source.kind === "counters") {
      say(
        ctx,
        "\nNote: Active counts rrqkit leases; Completed/Failed count jobs rrqkit workers finished.",
      );
      say(ctx, "Use --max-scan N to count job hashes by status as RRQ does (0 = every job).");
    }
    return ExitCode.ok;
  });
}

async function queueInspect(
  ctx: CliContext,
  name: string,
  flags: { limit: number; offset: number; json?: boolean },
): Promise<number> {
  return withApi(ctx, async (api) => {
    const key = queueKey(name);
    const { total, entries } = await api.queues.page(key, flags);
    const presence = total === 0 ? await api.queues.presence(key) : undefined;
    if (flags.json) {
      ctx.io.out(
        json({
          queue: key,
          total,
          ...(presence ? { known: presence.known, running: presence.running } : {}),
          offset: flags.offset,
          entries: entries.map((e) => ({
            id: e.id,
            score: e.score,
            scheduledAt: new Date(e.score).toISOString(),
            job: e.job ? jobJson(e.job) : null,
          })),
        }),
      );
      return presence && !presence.known ? ExitCode.failure : ExitCode.ok;
    }
    if (presence) {
      // Redis drops an empty ZSET, so RRQ says "not found" for an idle queue too; rrqkit says
      // so only for a queue nothing knows (not registered, not configured, nothing running)
      if (!presence.known) {
        say(ctx, `Queue '${key}' not found`);
        return ExitCode.failure;
      }
      say(ctx, `Queue '${key}' is empty (${presence.running} running)`);
      return ExitCode.ok;
    }
    if (entries.length === 0) {
      say(ctx, `No jobs found in queue ${key}`);
      return ExitCode.ok;
    }
    const columns: Column[] = [
      { header: "#", width: 4 },
      { header: "Job ID", width: 36, flex: true },
      { header: "Function", width: 20, grow: true },
      { header: "Status", width: 10 },
      { header: "Scheduled", width: 20 },
      { header: "Retries", width: 7, align: "right" },
    ];
    const rows = entries.map((e, i) => [
      String(flags.offset + i + 1),
      e.id,
      e.job ? (e.job.functionName ?? "<unknown>") : "<missing>",
      e.job ? (e.job.status ?? "UNKNOWN") : "MISSING",
      formatTime(e.score),
      e.job ? String(e.job.raw.current_retries ?? e.job.raw.retries ?? "0") : "N/A",
    ]);
    for (const line of renderTable(columns, rows, fitWidth(ctx))) say(ctx, line);
    return ExitCode.ok;
  });
}

/** `rrq queue list|stats|inspect|pause|resume`. */
export function registerQueue(program: Command, ctx: CliContext): void {
  const queue = program.command("queue").description("inspect, pause and resume queues");
  queue
    .command("list")
    .description(
      "queues with their pending counts and oldest/newest run-at scores; parked jobs, " +
        "paused queues and open circuit breakers when flow control holds any",
    )
    .option("--show-empty", "also list known queues that are empty")
    .option("--scan", "also discover queues by scanning the keyspace (RRQ's method)")
    .option("--json", "print JSON")
    .action((flags: { showEmpty?: boolean; scan?: boolean; json?: boolean }) =>
      ctx.run(() => queueList(ctx, flags)),
    );
  queue
    .command("stats")
    .description("per-queue counts by status, DLQ entries and average wait")
    .option("--queue <name>", "only this queue (repeatable)", collect)
    .option(
      "--max-scan <n>",
      "count job hashes by status over the first N jobs as RRQ does (0 = all); default: every job up to 10,000 keys, else rrqkit's counters",
      intArgument("--max-scan"),
    )
    .option("--counters", "use rrqkit's counters even on a small database")
    .option("--json", "print JSON")
    .action((flags: { queue?: string[]; maxScan?: number; counters?: boolean; json?: boolean }) =>
      ctx.run(() => queueStats(ctx, flags)),
    );
  queue
    .command("inspect")
    .description("the jobs in a queue, by run-at time")
    .argument("<queue>", "queue name or key")
    .option("--limit <n>", "rows to show", intArgument("--limit"), 20)
    .option("--offset <n>", "rows to skip", intArgument("--offset"), 0)
    .option("--json", "print JSON")
    .action((name: string, flags: { limit: number; offset: number; json?: boolean }) =>
      ctx.run(() => queueInspect(ctx, name, flags)),
    );
  queue
    .command("pause")
    .description(
      "stop workers claiming from a queue (running jobs finish; a queue not seen yet may be paused)",
    )
    .argument("<queue>", "queue name or key")
    .option("--reason <text>", "why (shown by queue list, check and the dashboard)")
    .option("--json", "print JSON")
    .action((name: string, flags: { reason?: string; json?: boolean }) =>
      ctx.run(() => queuePause(ctx, name, flags)),
    );
  queue
    .command("resume")
    .description("let workers claim from a paused queue again (wakes them at once)")
    .argument("<queue>", "queue name or key")
    .option("--json", "print JSON")
    .action((name: string, flags: { json?: boolean }) =>
      ctx.run(() => queueResume(ctx, name, flags)),
    );
}
