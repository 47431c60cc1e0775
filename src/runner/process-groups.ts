import type { EventBus } from "../telemetry/events.js";

/**
 * The process groups of the runner processes a worker started and that have not exited yet
 * (from `runner:spawn` and `runner:exit`), so that every way out of the daemon can kill them
 * synchronously: a forced exit on a second signal, `process.exit` anywhere, an uncaught
 * exception. Runners run in their own process groups (so a terminal's Ctrl-C reaches only the
 * daemon, which stops them in order); without this, a daemon that exits abruptly leaves them
 * running, and runners without a parent-death guard (RRQ's `rrq-runner`) stay orphaned.
 */
export class RunnerProcessGroups {
  private readonly pids = new Set<number>();
  private readonly unsubscribe: Array<() => void>;

  constructor(events: EventBus) {
    this.unsubscribe = [
      events.on("runner:spawn", (e) => {
        // an in-process runner reports the daemon's own pid: never ours to kill
        if (e.transport !== "inprocess" && e.pid !== process.pid) this.pids.add(e.pid);
      }),
      events.on("runner:exit", (e) => {
        if (e.pid !== null) this.pids.delete(e.pid);
      }),
    ];
  }

  /** Pids (= process-group ids) of the runner processes still running. */
  get alive(): readonly number[] {
    return [...this.pids];
  }

  /** SIGKILLs every tracked group, synchronously (safe in an `exit` handler). */
  killAll(): void {
    for (const pid of this.pids) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    this.pids.clear();
  }

  /** Stops tracking. */
  dispose(): void {
    for (const off of this.unsubscribe) off();
  }
}
