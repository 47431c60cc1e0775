import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Option, type Command } from "commander";
import { CatalogError, JobCatalog, type JobContract } from "@rrqkit/runner/contracts";
import { generateTypes, TYPE_LANGUAGES, type TypeLanguage } from "../../contracts/index.js";
import { ConfigError } from "../../errors.js";
import { renderTable } from "./format.js";
import { compareHandlers, listRunnerHandlers, type CheckReport } from "./jobs-check.js";
import { ExitCode, loadCli, say, type CliContext } from "./shared.js";
import { json } from "./format.js";

/**
 * `rrq jobs`: the job catalog (docs/contracts.md). `list` prints it, `types` writes the types
 * of its jobs for TypeScript, Python or Rust, `check` compares it with the handlers the
 * configured runners register.
 */

interface CatalogFlags {
  catalog?: string;
}

/** The catalog of `--catalog DIR`, else of rrq.toml's `job_catalog`; a bad one exits 2. */
function loadCatalog(ctx: CliContext, flags: CatalogFlags): { catalog: JobCatalog; dir: string } {
  const dir = flags.catalog
    ? resolve(flags.catalog)
    : (loadCli(ctx).config.jobCatalog ??
      ((): never => {
        throw new ConfigError(
          "invalid_config",
          "no job catalog: set job_catalog in rrq.toml's [rrq] table or pass --catalog DIR",
        );
      })());
  try {
    return { catalog: JobCatalog.load(dir), dir };
  } catch (error) {
    if (error instanceof CatalogError)
      throw new ConfigError("invalid_config", error.message, { cause: error });
    throw error;
  }
}

/** `to, subject, cc?` — the params' keys, optional ones marked. */
function paramsSummary(contract: JobContract): string {
  const properties = contract.params.properties;
  if (typeof properties !== "object" || properties === null) return "-";
  const required = Array.isArray(contract.params.required) ? contract.params.required : [];
  const keys = Object.keys(properties).map((k) => (required.includes(k) ? k : `${k}?`));
  return keys.length > 0 ? keys.join(", ") : "-";
}

function list(ctx: CliContext, flags: CatalogFlags & { json?: boolean }): number {
  const { catalog, dir } = loadCatalog(ctx, flags);
  const contracts = catalog.names().map((name) => catalog.get(name)!);
  if (flags.json) {
    ctx.io.out(json({ catalog: dir, jobs: contracts }));
    return ExitCode.ok;
  }
  say(ctx, `Job catalog ${dir}: ${contracts.length} job(s)`);
  if (contracts.length === 0) return ExitCode.ok;
  const rows = contracts.map((c) => [
    c.name,
    paramsSummary(c),
    c.result ? "yes" : "-",
    c.description ?? "",
  ]);
  const columns = [
    { header: "JOB", width: 20, grow: true },
    { header: "PARAMS (? = optional)", width: 30, grow: true },
    { header: "RESULT", width: 7 },
    { header: "DESCRIPTION", width: 30, flex: true },
  ];
  for (const line of renderTable(columns, rows, ctx.io.isTTY ? ctx.io.columns : undefined))
    say(ctx, line);
  return ExitCode.ok;
}

function types(
  ctx: CliContext,
  flags: CatalogFlags & { lang: TypeLanguage; out?: string },
): number {
  const { catalog } = loadCatalog(ctx, flags);
  const text = generateTypes(catalog, flags.lang);
  if (!flags.out) {
    ctx.io.out(text);
    return ExitCode.ok;
  }
  writeFileSync(flags.out, text);
  ctx.io.err(`rrq: wrote the types of ${catalog.names().length} job(s) to ${flags.out}\n`);
  return ExitCode.ok;
}

interface CheckFlags extends CatalogFlags {
  strict?: boolean;
  skipRunner: string[];
  json?: boolean;
}

/** The text report of a check: runners, the coverage table, uncatalogued handlers, a verdict. */
function sayReport(ctx: CliContext, dir: string, report: CheckReport, failed: boolean): void {
  say(ctx, `Job catalog ${dir}: ${report.jobs.length} job(s)`);
  for (const r of report.runners) {
    if (r.error)
      say(ctx, `Runner ${r.runner}: ERROR ${r.error} (--skip-runner ${r.runner} leaves it out)`);
    else {
      const what = [r.runtime, r.version].filter(Boolean).join(" ");
      say(ctx, `Runner ${r.runner}: ${what ? `${what}, ` : ""}${r.handlers!.length} handler(s)`);
    }
  }
  const asked = report.runners.filter((r) => !r.error).map((r) => r.runner);
  const expected = asked.length > 0 ? `any of ${asked.join(", ")}` : "(no runner answered)";
  const rows = report.jobs.map((j) => [
    j.name,
    j.missing ? "MISSING" : "ok",
    expected,
    j.foundIn.length > 0 ? j.foundIn.join(", ") : "-",
  ]);
  if (rows.length > 0) {
    say(ctx, "");
    const columns = [
      { header: "JOB", width: 20, grow: true },
      { header: "STATUS", width: 8 },
      { header: "EXPECTED IN", width: 20, grow: true },
      { header: "FOUND IN", width: 20, grow: true },
    ];
    for (const line of renderTable(columns, rows)) say(ctx, line);
  }
  for (const r of report.runners) {
    const extra = report.uncatalogued.filter((u) => u.runner === r.runner).map((u) => u.handler);
    if (extra.length > 0)
      say(ctx, `uncatalogued (registered by ${r.runner}, not in the catalog): ${extra.join(", ")}`);
  }
  const missing = report.jobs.filter((j) => j.missing).length;
  const errors = report.runners.filter((r) => r.error).length;
  const problems = [
    missing > 0 ? `${missing} catalogued job(s) registered by no runner` : "",
    errors > 0 ? `${errors} runner(s) could not list their handlers` : "",
    failed && report.uncatalogued.length > 0 && missing === 0 && errors === 0
      ? `${report.uncatalogued.length} uncatalogued handler(s) (--strict)`
      : "",
  ].filter(Boolean);
  say(ctx, "");
  say(ctx, failed ? `FAIL: ${problems.join("; ")}` : "OK: every catalogued job has a handler");
}

async function check(ctx: CliContext, flags: CheckFlags): Promise<number> {
  const { config } = loadCli(ctx);
  const { catalog, dir } = loadCatalog(ctx, flags);
  const unknown = flags.skipRunner.filter((name) => config.runners[name] === undefined);
  if (unknown.length > 0)
    throw new ConfigError(
      "invalid_argument",
      `--skip-runner ${unknown.join(", ")}: no such runner (configured: ${Object.keys(config.runners).join(", ") || "none"})`,
    );
  const runners = Object.values(config.runners)
    .filter((r) => !flags.skipRunner.includes(r.name))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const report = compareHandlers(
    catalog,
    await listRunnerHandlers(runners, ctx.env ?? process.env),
  );
  const failed =
    report.jobs.some((j) => j.missing) ||
    report.runners.some((r) => r.error !== undefined) ||
    (Boolean(flags.strict) && report.uncatalogued.length > 0);
  if (flags.json)
    ctx.io.out(json({ ok: !failed, catalog: dir, ...report, skipped: flags.skipRunner }));
  else sayReport(ctx, dir, report, failed);
  return failed ? ExitCode.failure : ExitCode.ok;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `rrq jobs list | types | check`. */
export function registerJobs(program: Command, ctx: CliContext): void {
  const jobs = program
    .command("jobs")
    .description("the job catalog: list it, generate types from it, check runners against it");
  const catalogOption = () =>
    new Option("--catalog <dir>", "catalog directory (default: rrq.toml's job_catalog)");
  jobs
    .command("list")
    .description("list the catalogued jobs")
    .addOption(catalogOption())
    .option("--json", "print the contracts as JSON")
    .action((flags: CatalogFlags & { json?: boolean }) =>
      ctx.run(() => Promise.resolve().then(() => list(ctx, flags))),
    );
  jobs
    .command("types")
    .description("write the params and result types of the catalogued jobs")
    .addOption(
      new Option("--lang <lang>", "language").choices(TYPE_LANGUAGES).makeOptionMandatory(),
    )
    .option("--out <file>", "write to this file (default: stdout)")
    .addOption(catalogOption())
    .action((flags: CatalogFlags & { lang: TypeLanguage; out?: string }) =>
      ctx.run(() => Promise.resolve().then(() => types(ctx, flags))),
    );
  jobs
    .command("check")
    .description(
      "check that every catalogued job is registered by a configured runner (each runner's cmd " +
        "is run with --list-handlers); exits 1 when one is not, or a runner cannot answer",
    )
    .option("--strict", "also fail on handlers that are not in the catalog")
    .option("--skip-runner <name>", "leave a runner out (repeatable)", collect, [])
    .option("--json", "print the report as JSON")
    .addOption(catalogOption())
    .action((flags: CheckFlags) => ctx.run(() => check(ctx, flags)));
}
