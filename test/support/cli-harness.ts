import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { exitCodeFor, registerCommands, type CliIo } from "../../src/cli/commands/index.js";

/** What one in-process CLI run printed and returned. */
export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Options of {@link runCli}. */
export interface RunCliOptions {
  /** Answer to a prompt (debug clear). */
  stdin?: string;
  /** Aborts the command's interrupt signal (a simulated Ctrl-C). */
  interrupt?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs `rrq <args>` in this process (the same command modules as bin/rrq.js) with captured,
 * non-terminal output, and resolves with the exit code.
 */
export async function runCli(
  configPath: string,
  args: string[],
  options: RunCliOptions = {},
): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (text) => void out.push(text),
    err: (text) => void err.push(text),
    isTTY: false,
    errIsTTY: false,
    columns: undefined,
    readLine: () => Promise.resolve(options.stdin ?? ""),
    interrupts: () => ({
      signal: options.interrupt ?? new AbortController().signal,
      dispose: () => {},
    }),
  };
  let pending: Promise<number> | undefined;
  const program = new Command("rrq").option("--config <path>").exitOverride();
  program.configureOutput({ writeOut: (t) => io.out(t), writeErr: (t) => io.err(t) });
  registerCommands(program, {
    io,
    run: (action) => {
      pending = action().catch((error: unknown) => exitCodeFor(error, io));
    },
    global: () => program.opts<{ config?: string }>(),
    env: options.env,
  });
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  try {
    await program.parseAsync(["--config", configPath, ...args], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return { code: 2, out: out.join(""), err: err.join("") };
    throw error;
  }
  const code = pending ? await pending : 0;
  return { code, out: out.join(""), err: err.join("") };
}

/**
 * Writes an rrq.toml for `redisUrl` with the Node runner; returns its path. `runnerExtra` goes
 * into the runner table (RRQ's binary needs a `tcp_port` there to accept the file).
 */
export function writeConfig(redisUrl: string, extra = "", runnerExtra = ""): string {
  const dir = mkdtempSync(join(tmpdir(), "rrq-cli-"));
  const path = join(dir, "rrq.toml");
  const runner = fileURLToPath(
    new URL("../../runners/node/dist/examples/conformance-runner.js", import.meta.url),
  );
  writeFileSync(
    path,
    `[rrq]
redis_dsn = "${redisUrl}"
default_runner_name = "node"
${extra}
[rrq.runners.node]
cmd = ["${process.execPath}", "${runner}"]
pool_size = 1
max_in_flight = 4
${runnerExtra}
`,
  );
  return path;
}

/** RRQ 0.11.1's own `rrq` binary from the Python venv (the test oracle), when installed. */
export function rrqBinary(): string | undefined {
  const lib = fileURLToPath(new URL("../../.venv/lib/", import.meta.url));
  if (!existsSync(lib)) return undefined;
  for (const python of readdirSync(lib)) {
    const bin = join(lib, python, "site-packages", "rrq", "bin", "rrq");
    if (existsSync(bin)) return bin;
  }
  return undefined;
}

/** Runs RRQ's binary (`rrq <args> --config <path>`); stdout only (its logs go to stdout as JSON). */
export function runRrq(binary: string, configPath: string, args: string[]): CliResult {
  const result = spawnSync(binary, [...args, "--config", configPath], {
    encoding: "utf8",
    env: { ...process.env, RUST_LOG: "off" },
    timeout: 20_000,
  });
  const out = result.stdout
    .split("\n")
    .filter((line) => !line.startsWith('{"timestamp"'))
    .join("\n");
  return { code: result.status ?? -1, out, err: result.stderr };
}
