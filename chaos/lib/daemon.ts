import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { scanKeys } from "./invariants.js";
import { RRQ_BIN } from "./paths.js";
import { sleep } from "./redis.js";

/** A TOML value as the chaos configs use them. */
export type TomlValue = string | number | boolean | TomlValue[] | { [key: string]: TomlValue };

function tomlValue(value: TomlValue): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(", ")}]`;
  const entries = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)} = ${tomlValue(v)}`);
  return `{ ${entries.join(", ")} }`;
}

/** Renders `[rrq]` settings and `[rrq.runners.<name>]` tables. */
export function renderConfig(
  settings: Record<string, TomlValue>,
  runners: Record<string, Record<string, TomlValue>>,
): string {
  const lines = ["[rrq]"];
  for (const [k, v] of Object.entries(settings)) lines.push(`${k} = ${tomlValue(v)}`);
  for (const [name, table] of Object.entries(runners)) {
    lines.push("", `[rrq.runners.${name}]`);
    for (const [k, v] of Object.entries(table)) lines.push(`${k} = ${tomlValue(v)}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Settings every scenario starts from: short leases, fast retries, short grace periods. */
export function baseSettings(redisUrl: string): Record<string, TomlValue> {
  return {
    redis_dsn: redisUrl,
    default_runner_name: "work",
    lease_seconds: 2,
    lease_renew_interval_seconds: 0.5,
    max_job_recoveries: 5,
    runner_cancel_grace_seconds: 1,
    worker_shutdown_grace_period_seconds: 2,
    runner_shutdown_term_grace_seconds: 0.5,
    base_retry_delay_seconds: 0.05,
    max_retry_delay_seconds: 0.5,
    default_max_retries: 5,
    default_job_timeout_seconds: 30,
    runner_connect_timeout_ms: 5000,
    default_poll_delay_seconds: 0.1,
  };
}

/**
 * One orchestrator daemon (`node bin/rrq.js --config X worker run`) as a separate process, so it
 * can be SIGKILLed or SIGSTOPped. Its JSON log goes to a file. Its worker id is
 * `rrq_worker_<pid>_<hex>` (RRQ's format), so Redis tells which jobs it holds.
 */
export class Daemon {
  readonly logFile: string;
  readonly configFile: string;
  private child: ChildProcess | undefined;
  private exitInfo: { code: number | null; signal: string | null } | undefined;
  private exitPromise: Promise<void> = Promise.resolve();
  /** Set when we killed it on purpose (an exit then is not a crash). */
  killedOnPurpose = false;
  /** When it was SIGKILLed (epoch ms): its runners, orphaned, may still start requests after. */
  killedAt: number | undefined;
  stopped = false;
  readonly startedAt = Date.now();

  constructor(
    readonly name: string,
    dir: string,
    config: string,
    private readonly queues: readonly string[] = [],
    /** Extra environment of the daemon process (e.g. libfaketime's, see clock-skew.ts). */
    private readonly env: Readonly<Record<string, string>> = {},
  ) {
    this.configFile = join(dir, `${name}.toml`);
    this.logFile = join(dir, `${name}.log`);
    writeFileSync(this.configFile, config);
  }

  /** Starts the process (returns at once; see {@link waitReady}). */
  start(): this {
    const out = openSync(this.logFile, "a");
    const child = spawn(
      process.execPath,
      [
        RRQ_BIN,
        "--config",
        this.configFile,
        "worker",
        "run",
        "--log-format",
        "json",
        ...this.queues.flatMap((q) => ["--queue", q]),
      ],
      { stdio: ["ignore", out, out], env: { ...process.env, ...this.env } },
    );
    closeSync(out);
    this.child = child;
    this.exitPromise = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        resolve();
      }),
    );
    return this;
  }

  get pid(): number {
    return this.child!.pid!;
  }

  /** Worker ids of this process start with this. */
  get workerPrefix(): string {
    return `rrq_worker_${this.pid}_`;
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  get exit(): { code: number | null; signal: string | null } | undefined {
    return this.exitInfo;
  }

  /** Resolves once the daemon's health key exists (its runners are up and it polls). */
  async waitReady(redis: Redis, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Every SCAN page: with thousands of job keys the health key is rarely on the first one.
      const keys = await scanKeys(redis, `rrq:health:worker:${this.workerPrefix}*`);
      if (keys.length > 0) return;
      if (!this.alive)
        throw new Error(`daemon ${this.name} exited before it was ready:\n${this.tail(20)}`);
      if (Date.now() > deadline)
        throw new Error(`daemon ${this.name} not ready after ${timeoutMs} ms:\n${this.tail(20)}`);
      await sleep(50);
    }
  }

  /** Sends a signal (SIGKILL/SIGSTOP/SIGCONT/SIGTERM) to the daemon process only. */
  signal(signal: NodeJS.Signals): void {
    if (signal === "SIGKILL" || signal === "SIGTERM") this.killedOnPurpose = true;
    if (signal === "SIGKILL") this.killedAt ??= Date.now();
    if (signal === "SIGSTOP") this.stopped = true;
    if (signal === "SIGCONT") this.stopped = false;
    try {
      this.child?.kill(signal);
    } catch {
      // already gone
    }
  }

  /** Waits for the process to exit; resolves false after `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.exitPromise.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** SIGTERM (graceful shutdown), then SIGKILL after `timeoutMs`; returns the exit. */
  async shutdown(timeoutMs = 20_000): Promise<{ graceful: boolean; code: number | null }> {
    if (!this.alive) return { graceful: false, code: this.exitInfo?.code ?? null };
    if (this.stopped) this.signal("SIGCONT");
    this.signal("SIGTERM");
    if (await this.waitExit(timeoutMs)) return { graceful: true, code: this.exitInfo!.code };
    this.signal("SIGKILL");
    await this.waitExit(5000);
    return { graceful: false, code: null };
  }

  /** The last lines of the daemon's log. */
  tail(lines: number): string {
    try {
      return readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  /** Log lines matching a pattern. */
  grep(pattern: RegExp, max = 20): string[] {
    try {
      return readFileSync(this.logFile, "utf8")
        .split("\n")
        .filter((l) => pattern.test(l))
        .slice(0, max);
    } catch {
      return [];
    }
  }
}
