import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";

/** One handler start, as runners append it to RRQ_TEST_EXEC_LOG (conformance/handlers.md). */
export interface Exec {
  job_id: string;
  request_id: string;
  attempt: number;
  function_name: string;
  pid: number;
  /** Epoch ms of the start; when a runner leaves it out, the time the line was read. */
  ts_ms: number;
  /** True when ts_ms was filled in by the reader (the Python and Rust runners omit it). */
  approx_ts?: boolean;
}

/** The parent pid of a live process (Linux /proc), or undefined. */
export function parentPid(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^PPid:\s+(\d+)/m.exec(status);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** True while a process exists. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Tails a JSON-lines file that several processes append to (one write per line). `poll()` reads
 * what was added since the last call. For exec logs it also records each runner pid's parent
 * (the orchestrator daemon that launched it) while the runner is still alive.
 */
export class JsonLinesTail<T> {
  readonly entries: T[] = [];
  private offset = 0;
  private rest = "";

  constructor(readonly path: string) {}

  poll(): T[] {
    if (!existsSync(this.path)) return [];
    const size = statSync(this.path).size;
    if (size <= this.offset) return [];
    const fd = openSync(this.path, "r");
    const buffer = Buffer.allocUnsafe(size - this.offset);
    try {
      readSync(fd, buffer, 0, buffer.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const text = this.rest + buffer.toString("utf8");
    const lines = text.split("\n");
    this.rest = lines.pop() ?? "";
    const added: T[] = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        added.push(JSON.parse(line) as T);
      } catch {
        // a torn line would be a runner bug; it is reported by the count mismatch, not here
      }
    }
    this.entries.push(...added);
    return added;
  }
}

/** The exec log of a scenario, indexed by job and with runner pid → daemon pid. */
export class ExecLog extends JsonLinesTail<Exec> {
  readonly byJob = new Map<string, Exec[]>();
  readonly parentOf = new Map<number, number>();

  override poll(): Exec[] {
    const added = super.poll();
    const readAt = Date.now();
    for (const e of added) {
      if (typeof e.ts_ms !== "number") {
        e.ts_ms = readAt;
        e.approx_ts = true;
      }
      let list = this.byJob.get(e.job_id);
      if (!list) this.byJob.set(e.job_id, (list = []));
      list.push(e);
      if (!this.parentOf.has(e.pid)) {
        const parent = parentPid(e.pid);
        if (parent !== undefined) this.parentOf.set(e.pid, parent);
      }
    }
    return added;
  }

  /** Executions of a job, in start order (the order of the appended lines). */
  of(jobId: string): Exec[] {
    return this.byJob.get(jobId) ?? [];
  }

  /** The most recent execution start of a job. */
  last(jobId: string): Exec | undefined {
    const list = this.of(jobId);
    return list[list.length - 1];
  }
}
