import { existsSync, lstatSync, unlinkSync } from "node:fs";
import type { Server } from "node:net";
import { parseArgs } from "node:util";
import { codecFor, type EncodingName } from "../protocol/encoding.js";
import { FrameConnection } from "../protocol/frame-connection.js";
import { listenFrames, parseTcpSocket, type TransportSpec } from "../protocol/transports.js";
import type { Registry } from "./registry.js";
import { installParentGuard, takeStdoutForFrames } from "./guards.js";
import { RunnerRuntime, type RunnerRuntimeOptions } from "./runtime.js";
import { telemetryFromEnv } from "./telemetry.js";

/** Command-line usage of a runner built with {@link runFromArgs}. */
export const USAGE =
  "usage: <runner> (--tcp-socket HOST:PORT | --unix-socket PATH | --stdio) [--encoding json|msgpack]";

/** A bad command line; the message says what is wrong. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The transport and encoding a runner was launched with. */
export interface LaunchOptions {
  transport: TransportSpec;
  encoding: EncodingName;
}

/** Parses the launch flags of RUNNER_PROTOCOL.md §5. Throws {@link UsageError}. */
export function parseLaunchArgs(argv: string[]): LaunchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        "tcp-socket": { type: "string" },
        "unix-socket": { type: "string" },
        stdio: { type: "boolean" },
        encoding: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${USAGE}`);
  }
  const chosen = [values["tcp-socket"], values["unix-socket"], values.stdio].filter(Boolean);
  if (chosen.length !== 1) throw new UsageError(`exactly one transport flag is required\n${USAGE}`);
  const encoding = values.encoding ?? "json";
  if (encoding !== "json" && encoding !== "msgpack") {
    throw new UsageError(`--encoding must be json or msgpack, got '${encoding}'\n${USAGE}`);
  }
  let transport: TransportSpec;
  if (values.stdio) transport = { kind: "stdio" };
  else if (values["unix-socket"]) transport = { kind: "unix", path: values["unix-socket"] };
  else {
    const allowRemote = process.env.RRQ_RUNNER_ALLOW_REMOTE === "1";
    try {
      transport = { kind: "tcp", ...parseTcpSocket(values["tcp-socket"]!, allowRemote) };
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  return { transport, encoding };
}

function removeStaleSocket(path: string): void {
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
}

/**
 * Runs a runner process: parses the launch flags, installs the parent-death guard, serves the
 * chosen transport until SIGTERM/SIGINT (or stdin EOF for stdio), then exits 0. Exits 2 on a bad
 * command line or an invalid capability tag (`options.tags` or `RRQ_RUNNER_TAGS`). Spans are
 * exported when the OTLP environment names an endpoint. Never returns normally.
 */
export async function runFromArgs(
  registry: Registry,
  options: RunnerRuntimeOptions & { argv?: string[] } = {},
): Promise<never> {
  let launch: LaunchOptions;
  try {
    launch = parseLaunchArgs(options.argv ?? process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
  const telemetry = options.telemetry ?? (await telemetryFromEnv());
  let runtime: RunnerRuntime;
  try {
    runtime = new RunnerRuntime(registry, { ...options, telemetry });
  } catch (error) {
    // A bad tag (in code or RRQ_RUNNER_TAGS) is a launch mistake: say so, as for bad flags.
    if (!(error instanceof RangeError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  const codec = codecFor(launch.encoding);
  let server: Server | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    server?.close();
    runtime.closeAll();
    if (launch.transport.kind === "unix") removeStaleSocket(launch.transport.path);
    await telemetry.shutdown().catch(() => {});
    process.exit(code);
  };
  installParentGuard();
  process.on("SIGTERM", () => void stop(0));
  process.on("SIGINT", () => void stop(0));
  if (launch.transport.kind === "stdio") {
    const connection = new FrameConnection(process.stdin, takeStdoutForFrames(), codec);
    runtime.serve(connection);
    // EOF on stdin is the end of input (0), even inside a frame; any other decoding error ends
    // the only connection: status 1 (RUNNER_PROTOCOL.md §5), as the Python and Rust runtimes exit.
    const status = () => {
      const reason = connection.closeReason;
      return reason?.kind === "decode" && reason.error.code !== "frame_truncated" ? 1 : 0;
    };
    process.stdin.on("close", () => void stop(status()));
    process.stdin.on("end", () => void stop(status()));
  } else {
    if (launch.transport.kind === "unix") removeStaleSocket(launch.transport.path);
    server = await listenFrames(launch.transport, codec, (c) => runtime.serve(c));
  }
  return new Promise<never>(() => {});
}
