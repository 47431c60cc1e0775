import type { Command } from "commander";
import { json, renderTable, type Column } from "./format.js";
import { ExitCode, fitWidth, intArgument, say, withApi, type CliContext } from "./shared.js";

/** `rrq stats`: processed/failed totals and per-day history (rrqkit's counters). */
async function stats(ctx: CliContext, flags: { days: number; json?: boolean }): Promise<number> {
  return withApi(ctx, async (api) => {
    const [totals, history] = await Promise.all([
      api.stats.totals(),
      api.stats.history(flags.days),
    ]);
    if (flags.json) {
      ctx.io.out(json({ totals, history }));
      return ExitCode.ok;
    }
    say(
      ctx,
      `Processed: ${totals.processed} (completed ${totals.completed}, retried ${totals.retried}, failed ${totals.failed}); cancelled: ${totals.cancelled}; expired: ${totals.expired}`,
    );
    const columns: Column[] = [
      { header: "Date (UTC)", width: 12 },
      { header: "Processed", width: 10, align: "right" },
      { header: "Completed", width: 10, align: "right" },
      { header: "Retried", width: 10, align: "right" },
      { header: "Failed", width: 10, align: "right" },
    ];
    const rows = history.map((d) =>
      [d.date, d.processed, d.completed, d.retried, d.failed].map(String),
    );
    say(ctx);
    for (const line of renderTable(columns, rows, fitWidth(ctx))) say(ctx, line);
    return ExitCode.ok;
  });
}

/** `rrq stats`. */
export function registerStats(program: Command, ctx: CliContext): void {
  program
    .command("stats")
    .description("jobs processed and failed: totals and per day (counted by rrqkit workers)")
    .option("--days <n>", "days of history", intArgument("--days"), 7)
    .option("--json", "print JSON")
    .action((flags: { days: number; json?: boolean }) => ctx.run(() => stats(ctx, flags)));
}
