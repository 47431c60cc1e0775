import { spawn } from "node:child_process";
import { constants } from "node:os";
import type { Command } from "commander";
import { ExitCode, type CliContext } from "./shared.js";

interface PythonRunnerFlags {
  settings: string;
  tcpSocket: string;
}

/** The program `rrq runner python` starts, looked up on PATH (RRQ's Python runner). */
export const PYTHON_RUNNER = "rrq-runner";

/**
 * `rrq runner python`: runs `rrq-runner --settings <X> --tcp-socket <Y>` from PATH, as RRQ's
 * command does, with the terminal passed through. SIGINT and SIGTERM are forwarded so the runner
 * shuts down itself; the exit code is the runner's (128 + signal number when it was killed).
 */
function runPython(ctx: CliContext, flags: PythonRunnerFlags): Promise<number> {
  return new Promise((done) => {
    const child = spawn(
      PYTHON_RUNNER,
      ["--settings", flags.settings, "--tcp-socket", flags.tcpSocket],
      {
        stdio: "inherit",
        env: ctx.env ?? process.env,
      },
    );
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    const finish = (code: number) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      done(code);
    };
    child.once("error", (error: NodeJS.ErrnoException) => {
      ctx.io.err(
        error.code === "ENOENT"
          ? `rrq: ${PYTHON_RUNNER} not found on PATH (it comes with RRQ's Python package: pip install rrq)\n`
          : `rrq: cannot start ${PYTHON_RUNNER}: ${error.message}\n`,
      );
      finish(ExitCode.failure);
    });
    child.once("exit", (code, signal) =>
      finish(code ?? 128 + (signal ? constants.signals[signal] : 0)),
    );
  });
}

/** `rrq runner python` (RRQ 0.11's only runner subcommand). */
export function registerRunner(program: Command, ctx: CliContext): void {
  const runner = program.command("runner").description("start a runner process");
  runner
    .command("python")
    .description(`run RRQ's Python runner (${PYTHON_RUNNER} from PATH)`)
    .requiredOption("--settings <module.attr>", "Python runner settings object")
    .requiredOption("--tcp-socket <host:port>", "address to listen on")
    .action((flags: PythonRunnerFlags) => ctx.run(() => runPython(ctx, flags)));
}
