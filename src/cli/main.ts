import { Command, CommanderError } from "commander";
import {
  ExitCode,
  exitCodeFor,
  processIo,
  registerCommands,
  type CliIo,
  type GlobalOptions,
} from "./commands/index.js";
import { shortUsageErrors } from "./commands/usage-errors.js";
import { handleClosedPipes } from "./pipes.js";

export { ExitCode };

/**
 * The `rrq` command-line program: RRQ 0.11's commands and options, plus rrqkit's additions.
 * Command groups live in ./commands (one module each); `io` is the terminal unless a test
 * captures it.
 */
export async function buildProgram(
  run: (action: () => Promise<number>) => void,
  io: CliIo = processIo(),
  argv: readonly string[] = process.argv.slice(2),
): Promise<Command> {
  const program = new Command("rrq")
    .description("rrqkit: an RRQ-compatible job orchestrator")
    .option("--config <path>", "rrq.toml path (else RRQ_CONFIG, else ./rrq.toml)")
    // subcommands inherit this: a usage error throws instead of exiting 1, so it can exit 2
    .exitOverride();
  registerCommands(program, { io, run, global: () => program.opts<GlobalOptions>() });
  // `rrq conformance` pulls in the whole harness; load it only when it can be needed (the
  // command itself, or help), so that `rrq queue list` and friends start quickly.
  if (argv.length === 0 || argv.some((a) => ["conformance", "help", "--help", "-h"].includes(a))) {
    const { registerConformanceCommand } = await import("../conformance/command.js");
    registerConformanceCommand(program, run);
    shortUsageErrors(program);
  }
  return program;
}

/**
 * Exits with `code` once stdout and stderr have written everything queued: on a pipe Node
 * writes asynchronously, and exiting at once would drop the rest (`rrq job tail <id> | wc -c`).
 */
function exitWhenFlushed(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  // an empty write's callback runs after the writes queued before it
  process.stdout.write("", done);
  process.stderr.write("", done);
}

/** Runs an action and exits with its code. */
function runAndExit(action: () => Promise<number>): void {
  action().then(exitWhenFlushed, (error: unknown) =>
    exitWhenFlushed(exitCodeFor(error, processIo())),
  );
}

handleClosedPipes();
try {
  (await buildProgram(runAndExit)).parse();
} catch (error) {
  // commander has printed the problem (or the help, or the version: those exit 0)
  if (!(error instanceof CommanderError)) throw error;
  process.exit(error.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
}
