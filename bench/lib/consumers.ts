/**
 * The consumers the bench compares, each run as its own process(es) so CPU and memory are
 * attributable: rrqkit's daemon (`node bin/rrq.js worker run`), RRQ 0.11's Rust orchestrator
 * (the `rrq` binary from its wheel), and a BullMQ Worker process (in-process or sandboxed
 * processor). A consumer also knows how to read its queue depth and its in-flight count.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { Proc } from "./procs.js";
import { paths } from "./paths.js";

export type System = "rrqkit" | "rrq" | "bullmq";

/** A runner as configured for rrqkit (all keys) or RRQ (tcp only, json only). */
export interface RunnerSpec {
  lang: "node" | "python" | "rust" | "rrq-python";
  /** "inprocess": rrqkit only, Node only (the handler module loaded into the daemon). */
  transport: "unix" | "tcp" | "stdio" | "inprocess";
  encoding: "json" | "msgpack";
  poolSize: number;
  maxInFlight: number;
  /** Node only: a runner script in place of the conformance runner (e.g. bench/node/live-runner.mjs). */
  program?: string;
}

export interface ConsumerSpec {
  /** Short, stable id used in the JSON report (e.g. "rrqkit-node-unix-json"). */
  id: string;
  label: string;
  system: System;
  runner?: RunnerSpec;
  /** rrqkit only: another build's bin/rrq.js (A/B runs; default paths.rrqkitCli). */
  cli?: string;
  /** BullMQ only. */
  bullmq?: { mode: "inprocess" | "sandboxed"; concurrency: number };
}

/** What a running consumer exposes to the scenarios. */
export interface RunningConsumer {
  spec: ConsumerSpec;
  /** Redis commands the readiness checks issued (subtracted from command counts). */
  readinessCommands: Map<string, number>;
  /** The orchestrator (or BullMQ worker) processes. */
  pids: number[];
  /** rrqkit/RRQ worker ids (for their active sets). */
  workerIds: string[];
  stop(): Promise<void>;
  output(): string;
}

export interface StartOptions {
  redisUrl: string;
  workDir: string;
  /** Orchestrator processes on the same Redis (scaling scenario). */
  processes?: number;
  /** Sets RRQ_TEST_EXEC_LOG for the runners / the BullMQ processor. */
  execLog?: string;
  /** Base for TCP ports (each process and slot gets its own). */
  portBase: number;
  /** Rust binaries: release for full runs, debug for --quick (cheap to build). */
  rustProfile: "release" | "debug";
  /**
   * Wait until the consumer is ready and its worker ids are known (default). False returns at
   * once after spawning (no KEYS on a deep queue; the caller watches the depth only).
   */
  waitReady?: boolean;
  /** Called with each orchestrator / worker pid as soon as it is spawned. */
  onSpawn?: (pid: number) => void;
}

export const BULL_QUEUE = "bench";
export const RRQ_QUEUE = "rrq:queue:default";

/** Queue depth and jobs in flight, in one round trip (2 commands per probe). */
export async function probe(
  redis: Redis,
  system: System,
  workerIds: readonly string[],
): Promise<{ pending: number; inFlight: number }> {
  const pipeline = redis.pipeline();
  if (system === "bullmq") {
    pipeline.llen(`bull:${BULL_QUEUE}:wait`);
    pipeline.llen(`bull:${BULL_QUEUE}:active`);
  } else {
    pipeline.zcard(RRQ_QUEUE);
    for (const id of workerIds) pipeline.zcard(`rrq:active:jobs:${id}`);
  }
  const replies = (await pipeline.exec()) ?? [];
  const [first, ...rest] = replies.map(([error, value]) => {
    if (error) throw error;
    return Number(value);
  });
  return { pending: first ?? 0, inFlight: rest.reduce((a, b) => a + b, 0) };
}

/** The Redis commands one probe issues (subtracted from commandstats deltas). */
export function probeCommands(system: System, workers: number): Map<string, number> {
  return system === "bullmq" ? new Map([["llen", 2]]) : new Map([["zcard", 1 + workers]]);
}

const toml = (value: unknown): string => JSON.stringify(value);

/** BENCH_CPU_PROF_DIR=dir: V8 CPU profiles of rrqkit's daemon and the Node runners, on exit. */
function profileFlags(): string[] {
  const dir = process.env.BENCH_CPU_PROF_DIR;
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
}

function runnerCommand(runner: RunnerSpec, options: StartOptions): string[] {
  switch (runner.lang) {
    case "node":
      return [process.execPath, ...profileFlags(), runner.program ?? paths.nodeRunner];
    case "python":
      return [paths.pythonRunner];
    case "rust":
      return [paths.rustRunner(options.rustProfile)];
    case "rrq-python":
      return [paths.rrqPythonRunner, "--settings", "rrq_bench_runner.settings"];
  }
}

/** The [rrq] lines of BENCH_RRQKIT_SETTINGS (`;`-separated `key = value`). */
function rrqkitSettings(): string[] {
  return (process.env.BENCH_RRQKIT_SETTINGS ?? "")
    .split(";")
    .map((line) => line.trim())
    .filter(Boolean);
}

function configToml(spec: ConsumerSpec, options: StartOptions, index: number): string {
  const runner = spec.runner!;
  const env: Record<string, string> = {};
  if (options.execLog) env.RRQ_TEST_EXEC_LOG = options.execLog;
  if (runner.lang === "rrq-python") env.PYTHONPATH = paths.benchPy;
  const port = options.portBase + index * 100;
  const lines = [
    "[rrq]",
    `redis_dsn = ${toml(options.redisUrl)}`,
    `default_runner_name = "bench"`,
    "worker_shutdown_grace_period_seconds = 5",
    // BENCH_RRQKIT_SETTINGS="key = value; key = value": extra [rrq] settings for rrqkit (A/B
    // runs of a setting, e.g. "output_max_bytes_per_attempt = 0").
    ...(spec.system === "rrqkit" ? rrqkitSettings() : []),
    "",
    "[rrq.runners.bench]",
    `pool_size = ${runner.poolSize}`,
    `max_in_flight = ${runner.maxInFlight}`,
  ];
  if (runner.transport === "inprocess") {
    // No runner process: the daemon loads the handlers and RRQ_TEST_EXEC_LOG is its own env.
    lines.push(`transport = "inprocess"`, `handlers = ${toml(paths.nodeHandlers)}`);
    return `${lines.join("\n")}\n`;
  }
  lines.push(`cmd = [${runnerCommand(runner, options).map(toml).join(", ")}]`);
  if (spec.system === "rrqkit") {
    lines.push(`transport = ${toml(runner.transport)}`, `encoding = ${toml(runner.encoding)}`);
    if (runner.transport === "tcp") lines.push(`tcp_port = ${port}`);
  } else {
    lines.push(`tcp_port = ${port}`);
  }
  const envEntries = Object.entries(env).map(([k, v]) => `${k} = ${toml(v)}`);
  if (envEntries.length) lines.push(`env = { ${envEntries.join(", ")} }`);
  return `${lines.join("\n")}\n`;
}

async function startOrchestrator(
  spec: ConsumerSpec,
  options: StartOptions,
  index: number,
  redis: Redis,
): Promise<{ proc: Proc; workerId: string; checks: number }> {
  const config = join(options.workDir, `${spec.id}-${index}.toml`);
  writeFileSync(config, configToml(spec, options, index));
  // rrqkit runs as users start it: the `rrq` bin itself (its launcher picks Node's flags;
  // profiling flags are added through RRQ_NODE_OPTIONS).
  const [command, args] =
    spec.system === "rrqkit"
      ? [spec.cli ?? paths.rrqkitCli, ["--config", config, "worker", "run"]]
      : [paths.rrqBinary, ["worker", "run", "--config", config]];
  // cwd is the scratch dir so no stray .env or rrq.toml is picked up.
  // RRQ logs every job at INFO (a multi-KB line with its span stack): run it at WARN, like
  // rrqkit, whose per-job events are DEBUG, so neither pays for per-job logging.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RUST_LOG: process.env.BENCH_RRQ_RUST_LOG ?? "warn",
  };
  if (profileFlags().length) env.RRQ_NODE_OPTIONS = profileFlags().join(" ");
  if (spec.runner?.transport === "inprocess" && options.execLog)
    env.RRQ_TEST_EXEC_LOG = options.execLog;
  const proc = new Proc(command, args, { cwd: options.workDir, env });
  options.onSpawn?.(proc.pid);
  if (options.waitReady === false) return { proc, workerId: "", checks: 0 };
  // rrqkit logs its worker id at start; RRQ's id (rrq_worker_<pid>_<hex>) is found from its
  // health key, written once its runners are connected (KEYS, before the measured window).
  let workerId: string | undefined;
  if (spec.system === "rrqkit") {
    const match = await proc.waitForLine(
      /"worker_id":"(rrq_worker_[^"]+)"/,
      30_000,
      `${spec.id} worker id`,
    );
    workerId = match[1]!;
  }
  const deadline = Date.now() + 30_000;
  let checks = 0;
  for (;;) {
    checks++;
    if (workerId) {
      if ((await redis.exists(`rrq:health:worker:${workerId}`)) === 1) break;
    } else {
      const keys = await redis.keys(`rrq:health:worker:rrq_worker_${proc.pid}_*`);
      if (keys.length) {
        workerId = keys[0]!.slice("rrq:health:worker:".length);
        break;
      }
    }
    if (Date.now() > deadline || proc.child.exitCode !== null) {
      await proc.stop(0);
      throw new Error(`${spec.id} did not become ready:\n${proc.tail()}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return { proc, workerId, checks };
}

/** Starts a consumer and resolves once it is ready to take jobs. */
export async function startConsumer(
  spec: ConsumerSpec,
  options: StartOptions,
  redis: Redis,
): Promise<RunningConsumer> {
  const count = options.processes ?? 1;
  const procs: Proc[] = [];
  const workerIds: string[] = [];
  let checks = 0;
  try {
    if (spec.system === "bullmq") {
      const env = { ...process.env };
      if (options.execLog) env.RRQ_TEST_EXEC_LOG = options.execLog;
      for (let i = 0; i < count; i++) {
        const proc = new Proc(
          process.execPath,
          [
            paths.bullmqWorker,
            options.redisUrl,
            BULL_QUEUE,
            String(spec.bullmq!.concurrency),
            spec.bullmq!.mode,
          ],
          { env },
        );
        procs.push(proc);
        options.onSpawn?.(proc.pid);
        if (options.waitReady !== false)
          await proc.waitForLine(/^ready$/, 30_000, `${spec.id} ready`);
      }
    } else {
      const started = await Promise.all(
        Array.from({ length: count }, (_, i) => startOrchestrator(spec, options, i, redis)),
      );
      for (const s of started) {
        procs.push(s.proc);
        if (s.workerId) workerIds.push(s.workerId);
        checks += s.checks;
      }
    }
  } catch (error) {
    await Promise.all(procs.map((p) => p.stop(0)));
    throw error;
  }
  return {
    spec,
    pids: procs.map((p) => p.pid),
    workerIds,
    readinessCommands: new Map([[spec.system === "rrq" ? "keys" : "exists", checks]]),
    stop: async () => {
      await Promise.all(procs.map((p) => p.stop()));
    },
    output: () => procs.map((p) => p.tail()).join("\n---\n"),
  };
}

/** Whether the binaries a consumer needs exist (the caller builds what is missing). */
export function consumerAvailable(spec: ConsumerSpec, rustProfile: "release" | "debug"): boolean {
  if (spec.system === "rrq" && !existsSync(paths.rrqBinary)) return false;
  if (spec.runner?.lang === "python" && !existsSync(paths.pythonRunner)) return false;
  if (spec.runner?.lang === "rrq-python" && !existsSync(paths.rrqPythonRunner)) return false;
  if (spec.runner?.lang === "rust" && !existsSync(paths.rustRunner(rustProfile))) return false;
  return true;
}
