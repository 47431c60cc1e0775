/**
 * A stand-in parent for process-level cases (`given.via_parent`): starts the runner command with
 * this process's stdio, writes the runner's pid to `RRQC_PID_FILE`, and exits with the runner.
 * The harness SIGKILLs it to check the runner's parent-death guard (RUNNER_PROTOCOL.md §5).
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";

const [program, ...args] = process.argv.slice(2);
if (!program || !process.env.RRQC_PID_FILE) {
  process.stderr.write("usage: RRQC_PID_FILE=<path> parent-shim <program> [args…]\n");
  process.exit(2);
}
const child = spawn(program, args, { stdio: "inherit" });
child.on("spawn", () => writeFileSync(process.env.RRQC_PID_FILE!, String(child.pid)));
child.on("error", (error) => {
  process.stderr.write(`parent-shim: ${error.message}\n`);
  process.exit(127);
});
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
