/**
 * Child processes of the bench and their cost: CPU seconds from /proc/<pid>/stat (utime +
 * stime) and resident memory from /proc/<pid>/status, for a root process and, separately, all
 * of its descendants (runner processes, BullMQ's sandbox children).
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS = 100; // getconf CLK_TCK on Linux

function readStat(pid: number): { ppid: number; ticks: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

function readRssKb(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
    return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
  } catch {
    return undefined;
  }
}

/** Every live descendant of `root` (children, grandchildren, ...). */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) parent.set(Number(entry), stat.ppid);
  }
  const found: number[] = [];
  const frontier = [root];
  while (frontier.length) {
    const p = frontier.pop()!;
    for (const [pid, ppid] of parent) {
      if (ppid === p) {
        found.push(pid);
        frontier.push(pid);
      }
    }
  }
  return found;
}

/** CPU seconds used so far by each pid (missing pids count 0). */
export function cpuSeconds(pids: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) out.set(pid, (readStat(pid)?.ticks ?? 0) / CLOCK_TICKS);
  return out;
}

/** CPU and peak memory of root processes (the orchestrators) and their descendants. */
export interface ProcessCost {
  /** CPU seconds of the root processes between begin() and end(). */
  mainCpuSeconds: number;
  /** CPU seconds of their descendants in the same window (new descendants count whole). */
  childCpuSeconds: number;
  /** Highest sampled sum of the roots' RSS, MB. */
  mainPeakRssMb: number;
  /** Highest sampled sum of the descendants' RSS, MB. */
  childPeakRssMb: number;
  /** Σ VmHWM of the roots at end() (their lifetime peak), MB. */
  mainHwmMb: number;
}

/** Samples RSS every `intervalMs` while running; CPU is read at begin() and end(). */
export class CostMeter {
  private timer: NodeJS.Timeout | undefined;
  private children: number[] = [];
  private cpuAtBegin = new Map<number, number>();
  private mainPeak = 0;
  private childPeak = 0;
  private lastScan = 0;

  constructor(
    private readonly roots: readonly number[],
    private readonly intervalMs = 100,
  ) {}

  /** Starts RSS sampling (call as soon as the processes exist). */
  startSampling(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  /** Marks the start of the measured window (CPU baseline). */
  begin(): void {
    this.children = this.roots.flatMap(descendants);
    this.cpuAtBegin = cpuSeconds([...this.roots, ...this.children]);
  }

  /** Ends the window and the sampling; returns the costs. */
  end(): ProcessCost {
    clearInterval(this.timer);
    this.sample();
    const children = [...new Set([...this.children, ...this.roots.flatMap(descendants)])];
    const now = cpuSeconds([...this.roots, ...children]);
    const delta = (pid: number) => (now.get(pid) ?? 0) - (this.cpuAtBegin.get(pid) ?? 0);
    let hwm = 0;
    for (const pid of this.roots) hwm += readRssKb(pid)?.hwm ?? 0;
    return {
      mainCpuSeconds: this.roots.reduce((s, pid) => s + delta(pid), 0),
      childCpuSeconds: children.reduce((s, pid) => s + Math.max(0, delta(pid)), 0),
      mainPeakRssMb: this.mainPeak / 1024,
      childPeakRssMb: this.childPeak / 1024,
      mainHwmMb: hwm / 1024,
    };
  }

  private sample(): void {
    const now = Date.now();
    if (now - this.lastScan > 1000) {
      this.children = [...new Set([...this.children, ...this.roots.flatMap(descendants)])];
      this.lastScan = now;
    }
    let main = 0;
    for (const pid of this.roots) main += readRssKb(pid)?.rss ?? 0;
    let child = 0;
    for (const pid of this.children) child += readRssKb(pid)?.rss ?? 0;
    this.mainPeak = Math.max(this.mainPeak, main);
    this.childPeak = Math.max(this.childPeak, child);
  }
}

/** A spawned helper whose output is kept (last 200 lines) and can be waited on. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  private readonly listeners: Array<(line: string) => void> = [];
  readonly exited: Promise<{ code: number | null; signal: string | null }>;

  constructor(command: string, args: readonly string[], options: SpawnOptions = {}) {
    this.child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
    this.exited = new Promise((resolve) =>
      this.child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let buffered = "";
      stream?.setEncoding("utf8");
      stream?.on("data", (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          this.lines.push(line);
          if (this.lines.length > 200) this.lines.shift();
          for (const listener of this.listeners) listener(line);
        }
      });
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first match of `pattern` in an output line (past or future). */
  waitForLine(pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
    for (const line of this.lines) {
      const m = pattern.exec(line);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${what}; output:\n${this.tail()}`)),
        timeoutMs,
      );
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${what}: process exited (${code ?? signal}); output:\n${this.tail()}`));
      });
      this.listeners.push((line) => {
        const m = pattern.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it exited. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** The last lines of output, for error messages. */
  tail(n = 30): string {
    return this.lines
      .slice(-n)
      .map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l))
      .join("\n");
  }
}

/** Runs a helper to completion and returns its last stdout line parsed as JSON. */
export async function runJson<T>(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Promise<T> {
  const proc = new Proc(command, args, options);
  const { code, signal } = await proc.exited;
  if (code !== 0)
    throw new Error(`${command} ${args.join(" ")} failed (${code ?? signal}):\n${proc.tail()}`);
  const last = [...proc.lines].reverse().find((l) => l.trim().startsWith("{"));
  if (!last) throw new Error(`${command} printed no JSON:\n${proc.tail()}`);
  return JSON.parse(last) as T;
}
