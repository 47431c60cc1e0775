import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { NODE_RUNNER } from "./worker-harness.js";

/**
 * The real `rrq` daemon and CLI as subprocesses (`node bin/rrq.js ...`), for end-to-end tests
 * that must not share the test's process: its memory, its Redis connections, its signals.
 */

/** The CLI entry point (an sh script that is also a Node module; see bin/rrq.js). */
export const RRQ_BIN = fileURLToPath(new URL("../../bin/rrq.js", import.meta.url));

/** Options of {@link writeDaemonConfig}. */
export interface DaemonConfigOptions {
  /** More lines for the `[rrq]` table. */
  extra?: string;
  /** The Node runner's environment (e.g. RRQ_TEST_EXEC_LOG). */
  runnerEnv?: Record<string, string>;
  /** Lines after the runner table (e.g. a `[rrq.runner_tags]` table). */
  tables?: string;
}

/** Writes `<dir>/<name>.toml`: `redisUrl`, the Node conformance runner as "node"; returns its path. */
export function writeDaemonConfig(
  dir: string,
  name: string,
  redisUrl: string,
  options: DaemonConfigOptions = {},
): string {
  const path = join(dir, `${name}.toml`);
  const env = Object.entries(options.runnerEnv ?? {})
    .map(([key, value]) => `${key} = ${JSON.stringify(value)}`)
    .join(", ");
  writeFileSync(
    path,
    `[rrq]
redis_dsn = "${redisUrl}"
default_runner_name = "node"
worker_shutdown_grace_period_seconds = 2
runner_shutdown_term_grace_seconds = 1
${options.extra ?? ""}
[rrq.runners.node]
cmd = [${JSON.stringify(process.execPath)}, ${JSON.stringify(NODE_RUNNER)}]
pool_size = 1
max_in_flight = 4
env = { ${env} }
${options.tables ?? ""}
`,
  );
  return path;
}

/**
 * Runs `node bin/rrq.js --config <path> <args>` as a subprocess with piped stdout and stderr;
 * never rejects (check `exitCode`).
 */
export function rrq(
  configPath: string,
  args: string[],
): ResultPromise<{ reject: false; stripFinalNewline: false }> {
  return execa(process.execPath, [RRQ_BIN, "--config", configPath, ...args], {
    reject: false,
    stripFinalNewline: false,
  });
}

/** A running `rrq worker run` subprocess. */
export interface Daemon {
  /** The daemon's pid: Node's, once the sh lines have exec'd it. */
  pid: number;
  /** The worker id it logged at start. */
  workerId: string;
  /** Everything it printed so far (JSON log lines). */
  output(): string;
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | undefined>;
}

/**
 * Starts `rrq --config <path> worker run --log-format json` as the installed command runs it:
 * bin/rrq.js executed, whose sh lines exec Node (same pid) with the daemon's flags (a 4 MiB
 * semi-space, which its memory budget counts on). Resolves once it logged "worker started"
 * (its runner is ready), with the worker id from that line.
 */
export async function startDaemon(configPath: string, timeoutMs = 20_000): Promise<Daemon> {
  const child = execa(RRQ_BIN, ["--config", configPath, "worker", "run", "--log-format", "json"], {
    reject: false,
    all: true,
    buffer: false,
    env: { RRQ_NODE_OPTIONS: "" },
  });
  let output = "";
  const workerId = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`daemon did not start within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.all.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"worker_id":"([^"]+)"[^\n]*"msg":"worker started/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void child.then((result) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${String(result.exitCode)}) before starting:\n${output}`));
    });
  });
  return {
    pid: child.pid!,
    workerId,
    output: () => output,
    stop: async () => {
      child.kill("SIGTERM");
      return (await child).exitCode;
    },
  };
}

/**
 * The peak resident set size (VmHWM) of process `pid` in bytes, after checking that `pid` is a
 * Node process running bin/rrq.js (a shell wrapper's memory would say nothing of the daemon's).
 */
export function peakRssBytes(pid: number): number {
  const exe = readlinkSync(`/proc/${pid}/exe`);
  if (!/\/node[^/]*$/.test(exe)) throw new Error(`pid ${pid} runs ${exe}, not node`);
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  if (!argv.includes(RRQ_BIN)) throw new Error(`pid ${pid} is not bin/rrq.js: ${argv.join(" ")}`);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** A `redis-cli monitor` subprocess: every command the server runs, one line each. */
export interface RedisMonitorProcess {
  /** The lines so far (`<time> [<db> <client>] "<command>" "<arg>" ...`). */
  lines(): string[];
  stop(): Promise<void>;
}

/**
 * Starts `redis-cli -p <port> monitor` and resolves once it is monitoring. (A subprocess rather
 * than ioredis's monitor(), which mixes up its command queue while the test client is busy.)
 */
export async function monitorRedis(port: number): Promise<RedisMonitorProcess> {
  const child = execa("redis-cli", ["-p", String(port), "monitor"], {
    reject: false,
    buffer: false,
  });
  let text = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.startsWith("OK\n")) resolve();
    });
    void child.then((result) => reject(new Error(`redis-cli monitor exited: ${result.stderr}`)));
  });
  return {
    lines: () => text.split("\n").slice(1),
    stop: async () => {
      child.kill("SIGTERM");
      await child;
    },
  };
}
