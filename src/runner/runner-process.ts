import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { execa, type ResultPromise } from "execa";
import {
  codecFor,
  connectFrames,
  FrameConnection,
  launchArgs,
  type EncodingName,
  type TransportSpec,
} from "@rrqkit/runner/protocol";
import { RunnerError } from "../errors.js";
import type { EventBus } from "../telemetry/events.js";
import { RunnerConnection, type RunnerConnectionOptions } from "./runner-connection.js";

/** How one runner process is started and reached. */
export interface RunnerEndpointPlan {
  runner: string;
  index: number;
  /** Managed: the command to start; external: undefined. */
  command: readonly string[] | undefined;
  env: Readonly<Record<string, string>>;
  cwd: string | undefined;
  transport: TransportSpec;
  encoding: EncodingName;
  connectTimeoutMs: number;
  connection: RunnerConnectionOptions;
  /** `[rrq.runner_tags]` of this runner, passed to a managed runner as RRQ_RUNNER_TAGS. */
  tags?: readonly string[];
}

/**
 * The environment variable carrying capability tags to a managed runner: the configured tags
 * merged with any RRQ_RUNNER_TAGS of the runner's own `env` (comma-separated).
 */
export function runnerTagsEnv(
  plan: Pick<RunnerEndpointPlan, "env" | "tags">,
): Record<string, string> {
  const own = plan.env.RRQ_RUNNER_TAGS;
  if (!plan.tags?.length) return {};
  const merged = new Set([...(own ? own.split(",").map((t) => t.trim()) : []), ...plan.tags]);
  merged.delete("");
  return { RRQ_RUNNER_TAGS: [...merged].sort().join(",") };
}

/** How an endpoint ended. */
export interface EndpointExit {
  code: number | null;
  signal: string | null;
}

/** A started runner (managed process or external connection) with its persistent connection. */
export interface RunnerEndpoint {
  readonly pid: number | null;
  readonly connection: RunnerConnection;
  /** Settles when the process exits (managed) or the connection closes (external). */
  readonly exited: Promise<EndpointExit>;
  /** Stops it: SIGTERM to the process group, `graceMs`, then SIGKILL (managed); close (external). */
  stop(graceMs: number): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends a signal to a whole process group, ignoring a group that is already gone. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function relayLines(
  stream: Readable | null,
  plan: RunnerEndpointPlan,
  which: "stdout" | "stderr",
  events: EventBus,
  capture: (which: "stdout" | "stderr", line: string) => void,
): void {
  if (!stream) return;
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  lines.on("line", (line) => {
    events.emit("runner:log", { runner: plan.runner, index: plan.index, stream: which, line });
    capture(which, line);
  });
}

/**
 * Connects to a listening runner, retrying refused connects with backoff (10 ms doubling to
 * 200 ms) until `deadline`; gives up early when `exited` settles.
 */
async function connectWithRetry(
  spec: Exclude<TransportSpec, { kind: "stdio" }>,
  encoding: EncodingName,
  deadline: number,
  exitedEarly: () => EndpointExit | undefined,
): Promise<FrameConnection> {
  let delay = 10;
  for (;;) {
    try {
      return await connectFrames(spec, codecFor(encoding));
    } catch (error) {
      const exit = exitedEarly();
      if (exit)
        throw new RunnerError(
          "runner_spawn_failed",
          `runner exited before socket ready (code ${exit.code}, signal ${exit.signal})`,
        );
      const code = (error as NodeJS.ErrnoException).code;
      const retryable = code === "ECONNREFUSED" || code === "ENOENT" || code === "ECONNRESET";
      if (!retryable || Date.now() >= deadline) {
        throw new RunnerError(
          "runner_spawn_failed",
          `cannot connect to runner: ${(error as Error).message}`,
          { cause: error },
        );
      }
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
      delay = Math.min(delay * 2, 200);
    }
  }
}

/**
 * Starts a managed runner process in its own process group, appends the transport flags, and
 * waits until it is ready: a connect succeeds (tcp, unix) or its hello arrives (stdio).
 */
export async function startManagedRunner(
  plan: RunnerEndpointPlan,
  events: EventBus,
): Promise<RunnerEndpoint> {
  const [file, ...baseArgs] = plan.command!;
  const args = [...baseArgs, ...launchArgs(plan.transport, plan.encoding)];
  const stdio = plan.transport.kind === "stdio";
  const child: ResultPromise = execa(file!, args, {
    env: {
      ...plan.env,
      ...runnerTagsEnv(plan),
      RRQ_RUNNER_HELLO: "1",
      RRQ_RUNNER_NAME: plan.runner,
      RRQ_RUNNER_INDEX: String(plan.index),
    },
    extendEnv: true,
    cwd: plan.cwd,
    detached: true,
    stdin: stdio ? "pipe" : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    buffer: false,
    reject: false,
    cleanup: false,
    encoding: "buffer",
  });
  let exit: EndpointExit | undefined;
  const exited = new Promise<EndpointExit>((resolve) => {
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
    child.once("error", () => resolve(exit ?? { code: null, signal: null }));
  });
  const pid = child.pid;
  if (pid === undefined) {
    await exited;
    throw new RunnerError(
      "runner_spawn_failed",
      `cannot start runner '${plan.runner}': ${file} (${args.join(" ")})`,
    );
  }
  events.emit("runner:spawn", {
    runner: plan.runner,
    index: plan.index,
    pid,
    transport: plan.transport.kind,
    command: [file!, ...args],
  });
  // lines also go to the request in flight when [rrq.runner_capture] asks (live/capture.ts)
  let connection: RunnerConnection | undefined;
  const capture = (which: "stdout" | "stderr", line: string) =>
    void connection?.captureLine(which, line);
  relayLines(child.stderr, plan, "stderr", events, capture);
  const deadline = Date.now() + plan.connectTimeoutMs;
  const stop = async (graceMs: number) => {
    if (exit && !groupAlive(pid)) return;
    signalGroup(pid, graceMs > 0 ? "SIGTERM" : "SIGKILL");
    const until = Date.now() + graceMs;
    while (groupAlive(pid) && Date.now() < until) await sleep(10);
    signalGroup(pid, "SIGKILL");
    await Promise.race([exited, sleep(2000)]);
  };
  try {
    if (plan.transport.kind === "stdio") {
      connection = new RunnerConnection(
        new FrameConnection(child.stdout!, child.stdin!, codecFor(plan.encoding)),
        plan.connection,
      );
      const hello = await Promise.race([
        connection.waitForHello(plan.connectTimeoutMs),
        exited.then(() => undefined),
      ]);
      if (!hello) {
        const why = exit
          ? `exited (code ${exit.code}, signal ${exit.signal})`
          : `sent no hello within ${plan.connectTimeoutMs} ms`;
        throw new RunnerError(
          "runner_spawn_failed",
          `stdio runner '${plan.runner}' ${why} before it was ready`,
        );
      }
    } else {
      relayLines(child.stdout, plan, "stdout", events, capture);
      const frames = await connectWithRetry(plan.transport, plan.encoding, deadline, () => exit);
      connection = new RunnerConnection(frames, plan.connection);
    }
    connection.enableCapture();
    return { pid, connection, exited, stop };
  } catch (error) {
    await stop(0);
    throw error;
  }
}

/** Connects to an already running runner (external mode); "stopping" only closes the connection. */
export async function connectExternalRunner(plan: RunnerEndpointPlan): Promise<RunnerEndpoint> {
  if (plan.transport.kind === "stdio")
    throw new RunnerError("runner_spawn_failed", "external runners cannot use stdio");
  const frames = await connectWithRetry(
    plan.transport,
    plan.encoding,
    Date.now() + plan.connectTimeoutMs,
    () => undefined,
  );
  const connection = new RunnerConnection(frames, plan.connection);
  const exited = new Promise<EndpointExit>((resolve) =>
    connection.onClose(() => resolve({ code: null, signal: null })),
  );
  return {
    pid: null,
    connection,
    exited,
    stop: async () => {
      connection.close();
      await exited;
    },
  };
}
