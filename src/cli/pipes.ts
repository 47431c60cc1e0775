/**
 * Closed pipes. Node ignores SIGPIPE, so a write to a pipe whose reader has gone (`rrq dlq list
 * | head -3`) fails with EPIPE, which is emitted as an 'error' event on process.stdout; with no
 * listener Node crashes with "Unhandled 'error' event" and a stack. Unix tools instead stop
 * quietly when their reader leaves.
 */

/** Exit status when stdout's reader has gone: the reader had enough, which is not a failure. */
export const CLOSED_PIPE_EXIT_CODE = 0;

const closedPipe = (error: NodeJS.ErrnoException) => error.code === "EPIPE";

/**
 * - stdout closed: exit at once with {@link CLOSED_PIPE_EXIT_CODE} and print nothing (as
 *   ripgrep does; `set -o pipefail` scripts keep working). Work in Redis is batch-atomic, so
 *   stopping between two writes leaves it consistent.
 * - stderr closed: only progress and diagnostics go there, so later writes are dropped and the
 *   command carries on (a requeue is not cut short because its progress reader went away).
 * Any other write error on either stream is reported in one line (exit 1), not as a stack.
 */
export function handleClosedPipes(
  stdout: NodeJS.WriteStream = process.stdout,
  stderr: NodeJS.WriteStream = process.stderr,
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (closedPipe(error)) return exit(CLOSED_PIPE_EXIT_CODE);
    if (!stderr.destroyed) stderr.write(`rrq: cannot write to stdout: ${error.message}\n`);
    exit(1);
  });
  stderr.on("error", (error: NodeJS.ErrnoException) => {
    if (!closedPipe(error)) exit(1);
  });
}
