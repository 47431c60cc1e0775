import { createWriteStream } from "node:fs";
import { Socket } from "node:net";
import type { Writable } from "node:stream";

/**
 * Exits the process within about 250 ms of its parent dying (RUNNER_PROTOCOL.md §5): Node has no
 * PR_SET_PDEATHSIG, so the parent pid is polled. Disabled by RRQ_RUNNER_PARENT_GUARD=0. Returns
 * a function that removes the guard.
 */
export function installParentGuard(onOrphaned?: () => void, intervalMs = 250): () => void {
  if (process.env.RRQ_RUNNER_PARENT_GUARD === "0") return () => {};
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    process.stderr.write(`[rrqkit-runner] parent process ${parent} is gone; exiting\n`);
    onOrphaned?.();
    process.exit(1);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Protects stdout for the stdio transport: returns a private writable on file descriptor 1 for
 * frames, and sends everything else written through `process.stdout` (console.log included)
 * to stderr. Output written to fd 1 by native code or inherited by child processes is not
 * covered; spawn children with their stdout on stderr.
 */
export function takeStdoutForFrames(): Writable {
  let frames: Writable;
  try {
    frames = new Socket({ fd: 1, readable: false, writable: true });
  } catch {
    frames = createWriteStream("", { fd: 1 }); // stdout is a file, not a pipe or socket
  }
  const stderr = process.stderr;
  process.stdout.write = stderr.write.bind(stderr);
  return frames;
}
