import { createInterface } from "node:readline";
import { InvalidArgumentError } from "commander";
import { RrqApi } from "../../api/index.js";
import type { ConfigOverrides, ResolvedConfig } from "../../config/config.js";
import { RrqError } from "../../errors.js";
import { loadConfig, type ConfigSource } from "../../config/load.js";
import { count } from "./format.js";
import { capText, MAX_LOG_LINE } from "../../telemetry/log-safety.js";

/**
 * Exit codes: 0 success; 1 a runtime failure, something not found, or a check that failed (no
 * healthy worker); 2 bad usage or configuration; 130 interrupted by Ctrl-C (what was done is
 * consistent and reported).
 */
export const ExitCode = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

/** Error codes that mean the user's input or configuration is wrong (exit 2). */
const USAGE_ERRORS: ReadonlySet<string> = new Set([
  "invalid_config",
  "config_not_found",
  "invalid_argument",
  "invalid_params",
  "conflicting_options",
]);

/** Exit code for an error that escaped a command; prints one clear line on stderr. */
export function exitCodeFor(error: unknown, io: CliIo): number {
  // message and stack only (a Redis error's command arguments, job params and results, stay
  // out), cut to the log line cap
  if (error instanceof RrqError) {
    io.err(`rrq: ${capText(error.message, MAX_LOG_LINE)}\n`);
    return USAGE_ERRORS.has(error.code) ? ExitCode.usage : ExitCode.failure;
  }
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  io.err(`rrq: ${capText(text, MAX_LOG_LINE)}\n`);
  return ExitCode.failure;
}

/** Where commands write and read; the real terminal, or a capture in tests. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** stdout is a terminal: tables are fitted to `columns`. */
  readonly isTTY: boolean;
  /** stderr is a terminal: progress redraws one line. */
  readonly errIsTTY: boolean;
  readonly columns: number | undefined;
  /** One line from stdin (prompts). */
  readLine(): Promise<string>;
  /** Ctrl-C handling for long work: the signal aborts on the first SIGINT/SIGTERM. */
  interrupts(): { signal: AbortSignal; dispose(): void };
}

/** Options every command accepts. */
export interface GlobalOptions {
  config?: string;
}

/** What command modules get from the program. */
export interface CliContext {
  readonly io: CliIo;
  /** Runs an action and exits (or, in tests, records) with its code. */
  readonly run: (action: () => Promise<number>) => void;
  /** The root program's options (`--config`). */
  readonly global: () => GlobalOptions;
  readonly env?: NodeJS.ProcessEnv;
}

/** The process's terminal. */
export function processIo(): CliIo {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    isTTY: Boolean(process.stdout.isTTY),
    errIsTTY: Boolean(process.stderr.isTTY),
    columns: process.stdout.isTTY ? process.stdout.columns : undefined,
    readLine: () =>
      new Promise((resolve) => {
        const rl = createInterface({ input: process.stdin });
        rl.once("line", (line) => {
          rl.close();
          resolve(line);
        });
        rl.once("close", () => resolve(""));
      }),
    interrupts: () => {
      const controller = new AbortController();
      const onSignal = () => {
        if (controller.signal.aborted) process.exit(ExitCode.interrupted);
        process.stderr.write(
          "\nInterrupted: finishing the current batch (Ctrl-C again to quit now)\n",
        );
        controller.abort();
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      return {
        signal: controller.signal,
        dispose: () => {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
        },
      };
    },
  };
}

/** Loads rrq.toml (--config → RRQ_CONFIG → ./rrq.toml) with .env. */
export function loadCli(
  ctx: CliContext,
  overrides: ConfigOverrides = {},
): { config: ResolvedConfig; source: ConfigSource } {
  return loadConfig({ path: ctx.global().config, overrides, loadDotEnv: true, env: ctx.env });
}

/** Opens the data API for one command and closes it afterwards. */
export async function withApi<T>(
  ctx: CliContext,
  action: (api: RrqApi, config: ResolvedConfig) => Promise<T>,
): Promise<T> {
  const { config } = loadCli(ctx);
  const api = RrqApi.fromConfig(config);
  try {
    return await action(api, config);
  } finally {
    await api.close();
  }
}

/** Writes a line to stdout. */
export const say = (ctx: CliContext, line = "") => ctx.io.out(`${line}\n`);

/** Table width to fit, when stdout is a terminal. */
export const fitWidth = (ctx: CliContext): number | undefined =>
  ctx.io.isTTY ? ctx.io.columns : undefined;

/**
 * Progress on stderr for long work: one redrawn line on a terminal, else a line at most every
 * 2 s. `done()` ends the line.
 */
export function progress(ctx: CliContext, label: string) {
  let last = 0;
  let shown = false;
  return {
    update(done: number, total?: number, unit = "") {
      const now = Date.now();
      const finished = total !== undefined && done >= total;
      if (!finished && now - last < (ctx.io.errIsTTY ? 100 : 2000)) return;
      last = now;
      const pct = total ? ` (${Math.floor((done / total) * 100)}%)` : "";
      const text = `${label}: ${count(done)}${total !== undefined ? `/${count(total)}` : ""}${unit}${pct}`;
      ctx.io.err(ctx.io.errIsTTY ? `\r${text}\x1b[K` : `${text}\n`);
      shown = true;
    },
    done() {
      if (shown && ctx.io.errIsTTY) ctx.io.err("\n");
    },
  };
}

/** The rejected value, quoted and cut short, for a parser's message. */
const shown = (value: string) =>
  JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);

/** Commander parser for a number option (finite: "Infinity" is refused too). */
export function numberArgument(label: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n))
      throw new InvalidArgumentError(`${label} must be a number, not ${shown(value)}`);
    return n;
  };
}

/** Commander parser for a non-negative integer option. */
export function intArgument(label: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n))
      throw new InvalidArgumentError(
        `${label} must be a non-negative integer, not ${shown(value)}`,
      );
    return n;
  };
}

/**
 * Parses a JSON option value; the error names the option and what JSON.parse found wrong (V8's
 * message, which quotes at most a few characters around the problem, never the whole value).
 */
export function parseJsonOption(label: string, value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    const problem = error instanceof SyntaxError ? error.message : String(error);
    throw new InvalidArgumentError(`${label} is not valid JSON: ${problem}`);
  }
}

const jsonType = (value: unknown) =>
  value === null
    ? "null"
    : Array.isArray(value)
      ? "an array"
      : typeof value === "object"
        ? "an object"
        : `a ${typeof value}`;

/** Commander parser for a JSON-object option. */
export function jsonArgument(label: string) {
  return (value: string): Record<string, unknown> => {
    const parsed = parseJsonOption(label, value);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new InvalidArgumentError(`${label} must be a JSON object, not ${jsonType(parsed)}`);
    return parsed as Record<string, unknown>;
  };
}

/** Commander parser for a JSON-array option. */
export function jsonArrayArgument(label: string) {
  return (value: string): unknown[] => {
    const parsed = parseJsonOption(label, value);
    if (!Array.isArray(parsed))
      throw new InvalidArgumentError(`${label} must be a JSON array, not ${jsonType(parsed)}`);
    return parsed;
  };
}

/** Commander parser for an option taking one of `choices`, case-insensitively (upper-cased). */
export function choiceArgument(label: string, choices: readonly string[]) {
  return (value: string): string => {
    const upper = value.trim().toUpperCase();
    if (!choices.includes(upper))
      throw new InvalidArgumentError(
        `${label} must be one of ${choices.join(", ")}, not ${shown(value)}`,
      );
    return upper;
  };
}

/** Collects a repeatable option. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
