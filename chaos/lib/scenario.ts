import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Producer } from "../../src/producer/producer.js";
import type { EnqueueOptions } from "../../src/producer/options.js";
import { Daemon, baseSettings, renderConfig, type TomlValue } from "./daemon.js";
import { ExecLog, JsonLinesTail } from "./exec-log.js";
import {
  checkInvariants,
  recoveryTimes,
  scanKeys,
  statuses,
  waitTerminal,
  type CheckResult,
  type Fault,
  type TrackedJob,
  type Violation,
  type ViolationKind,
} from "./invariants.js";
import { ChaosRedis, sleep } from "./redis.js";
import { Rng } from "./rng.js";

/** How big a run is. */
export interface RunMode {
  quick: boolean;
  seed: number;
  /** Print progress lines. */
  verbose: boolean;
}

/** A fault-injection scenario. */
export interface Scenario {
  name: string;
  description: string;
  /** Redis with AOF (`--appendfsync always`), for scenarios that restart it. */
  aof?: boolean;
  run(ctx: ScenarioContext): Promise<void>;
  /** Extra checks once every job is terminal (push to ctx.extraViolations). */
  verify?(ctx: ScenarioContext): Promise<void>;
}

/** A violation the suite knows about: reported, but not a failure of the run (see known-failures.ts). */
export interface KnownFailure {
  scenario: string;
  kind: ViolationKind;
  finding: string;
  reason: string;
  /** Only violations whose detail matches (default: every violation of that kind). */
  match?: RegExp;
}

/** What one scenario run produced. */
export interface ScenarioReport {
  name: string;
  seed: number;
  jobs: number;
  faults: number;
  faultKinds: Record<string, number>;
  lost: number;
  stale_terminal_writes: number;
  duplicate_terminal_writes: number;
  stuck: number;
  over_executed: number;
  max_recovery_ms: number;
  unrecovered_faults: number;
  completed: number;
  failed: number;
  executions: number;
  duration_ms: number;
  violations: Violation[];
  known: Array<Violation & { finding: string }>;
  notes: string[];
  passed: boolean;
}

/** A fault logged by a fixture runner. */
export interface FixtureFault {
  kind: string;
  variant: string;
  job_id: string | null;
  request_id: string | null;
  pid: number;
  ts_ms: number;
}

/**
 * Everything a scenario needs: a private Redis, daemons built from a base config, a producer,
 * the runners' exec log, the fault record, and the tracked jobs the checker verifies.
 */
export class ScenarioContext {
  readonly dir: string;
  readonly execLogPath: string;
  readonly faultLogPath: string;
  readonly execLog: ExecLog;
  readonly fixtureFaults: JsonLinesTail<FixtureFault>;
  readonly jobs = new Map<string, TrackedJob>();
  readonly faults: Fault[] = [];
  readonly daemons: Daemon[] = [];
  readonly notes: string[] = [];
  readonly extraViolations: Violation[] = [];
  readonly rng: Rng;
  private daemonCount = 0;
  producer!: Producer;
  redis!: ChaosRedis;

  constructor(
    readonly scenario: Scenario,
    readonly mode: RunMode,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `rrq-chaos-${scenario.name}-`));
    this.execLogPath = join(this.dir, "exec.log");
    this.faultLogPath = join(this.dir, "faults.log");
    this.execLog = new ExecLog(this.execLogPath);
    this.fixtureFaults = new JsonLinesTail<FixtureFault>(this.faultLogPath);
    this.rng = new Rng(mode.seed);
  }

  get quick(): boolean {
    return this.mode.quick;
  }

  /** Quick or full size. */
  size(quick: number, full: number): number {
    return this.mode.quick ? quick : full;
  }

  log(message: string): void {
    if (this.mode.verbose) process.stdout.write(`  [${this.scenario.name}] ${message}\n`);
  }

  async setup(): Promise<void> {
    this.redis = await ChaosRedis.start({ aof: this.scenario.aof });
    this.producer = new Producer({ redisDsn: this.redis.url });
  }

  /** The base settings plus overrides, for {@link startDaemon}. */
  settings(extra: Record<string, TomlValue> = {}): Record<string, TomlValue> {
    return { ...baseSettings(this.redis.url), ...extra };
  }

  /** A runner table with the exec log and fault log wired in. */
  runner(cmd: string[], extra: Record<string, TomlValue> = {}): Record<string, TomlValue> {
    const { env, ...rest } = extra;
    return {
      cmd,
      pool_size: 2,
      max_in_flight: 8,
      ...rest,
      env: {
        RRQ_TEST_EXEC_LOG: this.execLogPath,
        CHAOS_FAULT_LOG: this.faultLogPath,
        CHAOS_SEED: String(this.mode.seed),
        ...((env as Record<string, string> | undefined) ?? {}),
      },
    };
  }

  /** Starts an orchestrator daemon and waits until it serves. */
  async startDaemon(
    settings: Record<string, TomlValue>,
    runners: Record<string, Record<string, TomlValue>>,
    options: { wait?: boolean; queues?: string[] } = {},
  ): Promise<Daemon> {
    const daemon = new Daemon(
      `daemon-${++this.daemonCount}`,
      this.dir,
      renderConfig(settings, runners),
      options.queues,
    ).start();
    this.daemons.push(daemon);
    if (options.wait ?? true) await daemon.waitReady(this.redis.client);
    return daemon;
  }

  /** Enqueues jobs (bulk) and tracks them. */
  async enqueue(
    items: Array<{
      fn: string;
      params?: Record<string, unknown>;
      options?: EnqueueOptions;
      identity?: boolean;
      expect?: "COMPLETED" | "FAILED";
      tag?: string;
    }>,
  ): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < items.length; i += 200) {
      const chunk = items.slice(i, i + 200).map((item) => ({
        ...item,
        options: { jobId: randomUUID(), ...item.options },
      }));
      for (const item of chunk) {
        this.jobs.set(item.options.jobId, {
          id: item.options.jobId,
          kind: item.fn,
          maxRetries: item.options.maxRetries ?? 5,
          identity: item.identity ?? false,
          expect: item.expect,
          tag: item.tag,
        });
      }
      const got = await this.producer.enqueueMany(
        chunk.map((c) => ({ functionName: c.fn, params: c.params ?? {}, options: c.options })),
      );
      ids.push(...got);
    }
    return ids;
  }

  /** Records an injected fault. */
  fault(kind: string, affected: string[], detail?: string, at = Date.now()): Fault {
    const fault = { kind, at, affected, detail };
    this.faults.push(fault);
    this.log(`fault ${kind}${detail ? ` (${detail})` : ""}: ${affected.length} jobs affected`);
    return fault;
  }

  /** Ids of ACTIVE tracked jobs held by a daemon (its worker id embeds its pid). */
  async activeJobsOf(daemon: Daemon | undefined): Promise<string[]> {
    const ids = [...this.jobs.keys()];
    const out: string[] = [];
    for (let i = 0; i < ids.length; i += 1000) {
      const batch = ids.slice(i, i + 1000);
      const pipeline = this.redis.client.pipeline();
      for (const id of batch) pipeline.hmget(`rrq:job:${id}`, "status", "worker_id");
      const replies = (await pipeline.exec()) ?? [];
      batch.forEach((id, j) => {
        const [status, worker] = (replies[j]?.[1] ?? []) as [string | null, string | null];
        if (status === "ACTIVE" && (!daemon || worker?.startsWith(daemon.workerPrefix)))
          out.push(id);
      });
    }
    return out;
  }

  /** Non-terminal tracked jobs. */
  async openJobs(): Promise<string[]> {
    const ids = [...this.jobs.keys()];
    const now = await statuses(this.redis.client, ids);
    return ids.filter((_, i) => !["COMPLETED", "FAILED", "CANCELLED"].includes(now[i] ?? ""));
  }

  /** Runs `inject` every `everyMs` (with jitter) while tracked jobs are open, up to `count` times. */
  async injectWhileRunning(
    count: number,
    everyMs: [number, number],
    inject: (n: number) => Promise<boolean | void>,
  ): Promise<number> {
    let done = 0;
    while (done < count) {
      await sleep(this.rng.int(everyMs[0], everyMs[1]));
      this.execLog.poll();
      if ((await this.openJobs()).length === 0) break;
      if ((await inject(done)) !== false) done++;
    }
    return done;
  }

  /** Daemons that exited without being killed by the scenario. */
  crashedDaemons(): Daemon[] {
    return this.daemons.filter((d) => !d.alive && !d.killedOnPurpose);
  }

  /** Waits for every tracked job to finish, checks invariants, stops everything. */
  async finish(settleMs: number, started: number): Promise<ScenarioReport> {
    const open = await waitTerminal(
      this.redis.client,
      [...this.jobs.keys()],
      settleMs,
      () => void this.execLog.poll(),
      this.mode.quick ? 20_000 : 60_000,
    );
    if (open.length > 0) this.log(`${open.length} jobs still open after ${settleMs} ms`);
    await this.scenario.verify?.(this);
    // Fixture-reported faults (garbage frames, silent requests, exit at start-up).
    this.fixtureFaults.poll();
    for (const f of this.fixtureFaults.entries) {
      this.faults.push({
        kind: `${f.kind}:${f.variant}`,
        at: f.ts_ms,
        affected: f.job_id && this.jobs.has(f.job_id) ? [f.job_id] : [],
        detail: `pid ${f.pid}`,
      });
    }
    const killedAt = new Map<number, number>();
    for (const d of this.daemons)
      if (d.pid && d.killedAt !== undefined) killedAt.set(d.pid, d.killedAt);
    const check: CheckResult = await checkInvariants(
      this.redis.client,
      [...this.jobs.values()],
      this.execLog,
      killedAt,
    );
    const recoveries = await recoveryTimes(this.redis.client, this.faults, this.execLog);
    if (check.lateDispatches > 0)
      this.notes.push(
        `${check.lateDispatches} completed jobs were dispatched again by a worker that had lost them (resumed after SIGSTOP); those writes were fenced off`,
      );
    const violations = [...check.violations, ...this.extraViolations];
    for (const daemon of this.crashedDaemons()) {
      violations.push({
        kind: "orchestrator_crash",
        detail: `${daemon.name} (pid ${daemon.pid}) exited by itself with ${JSON.stringify(daemon.exit)}; log tail:\n${daemon.tail(15)}`,
      });
    }
    // SIGTERM: the grace period, the runners' stop, then at most 30 s for pending writes.
    for (const daemon of this.daemons.filter((d) => d.alive)) {
      const exit = await daemon.shutdown(40_000);
      if (!exit.graceful)
        violations.push({
          kind: "orchestrator_hang",
          detail: `${daemon.name} (pid ${daemon.pid}) ignored SIGTERM for 40 s; log tail:\n${daemon.tail(15)}`,
        });
      else if (exit.code !== 0)
        violations.push({
          kind: "orchestrator_crash",
          detail: `${daemon.name} exited ${exit.code} on SIGTERM; log tail:\n${daemon.tail(15)}`,
        });
    }
    const residueKeys = await scanKeys(this.redis.client, "rrq:lock:job:*");
    if (residueKeys.length > 0)
      this.notes.push(`${residueKeys.length} job locks left after shutdown`);
    const faultKinds: Record<string, number> = {};
    for (const f of this.faults) {
      const kind = f.kind.split(":")[0]!;
      faultKinds[kind] = (faultKinds[kind] ?? 0) + 1;
    }
    const measured = recoveries.filter((r) => r.ms !== null);
    const worst = measured.reduce((m, r) => Math.max(m, r.ms!), 0);
    const slow = measured.sort((a, b) => b.ms! - a.ms!)[0];
    if (slow && slow.ms! > 0)
      this.notes.push(
        `slowest recovery ${Math.round(slow.ms!)} ms after ${slow.fault.kind}${slow.fault.detail ? ` (${slow.fault.detail})` : ""} (job ${slow.slowest})`,
      );
    return {
      name: this.scenario.name,
      seed: this.mode.seed,
      jobs: check.jobs,
      faults: this.faults.length,
      faultKinds,
      lost: check.lost,
      stale_terminal_writes: check.staleTerminalWrites,
      duplicate_terminal_writes: check.duplicateTerminalWrites,
      stuck: check.stuck,
      over_executed: check.overExecuted,
      max_recovery_ms: Math.round(worst),
      unrecovered_faults: recoveries.length - measured.length,
      completed: check.completed,
      failed: check.failed,
      executions: check.executions,
      duration_ms: Date.now() - started,
      violations,
      known: [],
      notes: this.notes,
      passed: false,
    };
  }

  /** Writes every tracked job's final hash and events to jobs.jsonl (for --keep). */
  async dumpJobs(): Promise<void> {
    const lines: string[] = [];
    for (const id of this.jobs.keys()) {
      const hash = await this.redis.client.hgetall(`rrq:job:${id}`);
      const events = await this.redis.client.xrange(`rrq:events:job:${id}`, "-", "+");
      lines.push(
        JSON.stringify({ id, tracked: { ...this.jobs.get(id), check: undefined }, hash, events }),
      );
    }
    writeFileSync(join(this.dir, "jobs.jsonl"), `${lines.join("\n")}\n`);
  }

  async cleanup(keep: boolean): Promise<void> {
    if (keep && this.redis) await this.dumpJobs().catch(() => undefined);
    for (const daemon of this.daemons) if (daemon.alive) daemon.signal("SIGKILL");
    await this.producer?.close().catch(() => undefined);
    await this.redis?.stop().catch(() => undefined);
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
