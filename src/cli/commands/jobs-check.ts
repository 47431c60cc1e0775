import { statSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import type { JobCatalog } from "@rrqkit/runner/contracts";
import type { RunnerConfig } from "../../config/config.js";

/**
 * What `rrq jobs check` compares: the handler names each configured runner registers (asked
 * with `--list-handlers`, RUNNER_PROTOCOL.md §5) against the catalogued jobs.
 */

/** How long one runner may take to print its handlers. */
export const LIST_HANDLERS_TIMEOUT_MS = 30_000;

/** One runner's answer: its handlers, or why it could not be asked. */
export interface RunnerHandlers {
  runner: string;
  runtime?: string;
  version?: string;
  handlers?: string[];
  error?: string;
}

/** One catalogued job and the runners that register it. */
export interface JobCoverage {
  name: string;
  foundIn: string[];
  missing: boolean;
}

/** The outcome of a check. */
export interface CheckReport {
  jobs: JobCoverage[];
  runners: RunnerHandlers[];
  /** Handlers a runner registers that are not in the catalog (a warning; `--strict` fails). */
  uncatalogued: { runner: string; handler: string }[];
}

/** The `--list-handlers` line among a runner's stdout (the last line that parses as one). */
export function parseHandlersLine(stdout: string): Omit<RunnerHandlers, "runner"> | undefined {
  const lines = stdout.split("\n").filter((l) => l.trim().startsWith("{"));
  for (const line of lines.reverse()) {
    try {
      const value = JSON.parse(line) as Record<string, unknown>;
      const handlers = value.handlers;
      if (!Array.isArray(handlers) || !handlers.every((h) => typeof h === "string")) continue;
      return {
        handlers: [...handlers].sort(),
        ...(typeof value.runtime === "string" ? { runtime: value.runtime } : {}),
        ...(typeof value.version === "string" ? { version: value.version } : {}),
      };
    } catch {
      // not the line we look for (a log line that starts with "{")
    }
  }
  return undefined;
}

/** The last few lines of a process's stderr, for an error message. */
function tail(text: string): string {
  const lines = text.trim().split("\n").filter(Boolean);
  return lines.length === 0 ? "" : `: ${lines.slice(-3).join(" | ")}`;
}

/** Runs the runner's `cmd` with `--list-handlers` (its env and cwd, as the worker would). */
async function askProcess(runner: RunnerConfig, env: NodeJS.ProcessEnv): Promise<RunnerHandlers> {
  const [file, ...args] = runner.cmd;
  const name = runner.name;
  if (!file) return { runner: name, error: "has no cmd to run" };
  const shown = [...runner.cmd, "--list-handlers"].join(" ");
  const result = await execa(file, [...args, "--list-handlers"], {
    env: { ...env, ...runner.env },
    extendEnv: false,
    cwd: runner.cwd,
    timeout: LIST_HANDLERS_TIMEOUT_MS,
    reject: false,
    stdin: "ignore",
  });
  if (result.timedOut)
    return {
      runner: name,
      error: `\`${shown}\` did not answer within ${LIST_HANDLERS_TIMEOUT_MS / 1000} s`,
    };
  if (result.exitCode !== 0) {
    const why = result.exitCode === undefined ? result.shortMessage : `exited ${result.exitCode}`;
    return { runner: name, error: `\`${shown}\` ${why}${tail(String(result.stderr))}` };
  }
  const parsed = parseHandlersLine(String(result.stdout));
  if (!parsed)
    return { runner: name, error: `\`${shown}\` printed no handlers line ({"handlers": [...]})` };
  return { runner: name, ...parsed };
}

/** An in-process runner: imports its handler module and reads the Registry's names. */
async function askModule(runner: RunnerConfig): Promise<RunnerHandlers> {
  const path = resolve(runner.cwd ?? process.cwd(), runner.handlers!);
  try {
    const url = pathToFileURL(path);
    url.searchParams.set("mtime", String(statSync(path).mtimeMs));
    const module = (await import(url.href)) as Record<string, unknown>;
    const registry = [module.default, module.registry].find(
      (r): r is { names(): string[] } =>
        typeof r === "object" &&
        r !== null &&
        typeof (r as { names?: unknown }).names === "function",
    );
    if (!registry) return { runner: runner.name, error: `${path} exports no Registry` };
    return { runner: runner.name, runtime: "node", handlers: registry.names().sort() };
  } catch (error) {
    return { runner: runner.name, error: `cannot load ${path}: ${(error as Error).message}` };
  }
}

/** Asks every runner (in parallel) for its handlers. */
export function listRunnerHandlers(
  runners: readonly RunnerConfig[],
  env: NodeJS.ProcessEnv,
): Promise<RunnerHandlers[]> {
  return Promise.all(
    runners.map((r) => (r.transport === "inprocess" ? askModule(r) : askProcess(r, env))),
  );
}

/** Every catalogued job must be registered by at least one runner; extra handlers are noted. */
export function compareHandlers(catalog: JobCatalog, runners: RunnerHandlers[]): CheckReport {
  const jobs = catalog.names().map((name) => {
    const foundIn = runners.filter((r) => r.handlers?.includes(name)).map((r) => r.runner);
    return { name, foundIn, missing: foundIn.length === 0 };
  });
  const uncatalogued = runners.flatMap((r) =>
    (r.handlers ?? [])
      .filter((h) => !catalog.has(h))
      .map((handler) => ({ runner: r.runner, handler })),
  );
  return { jobs, runners, uncatalogued };
}
