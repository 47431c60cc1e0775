import { existsSync, lstatSync, unlinkSync } from "node:fs";
import type { Server } from "node:net";
import { parseArgs } from "node:util";
import { CatalogError, JobCatalog } from "../contracts/index.js";
import { codecFor, type EncodingName } from "../protocol/encoding.js";
import { FrameConnection } from "../protocol/frame-connection.js";
import { listenFrames, parseTcpSocket, type TransportSpec } from "../protocol/transports.js";
import type { AnyRegistry } from "./registry.js";
import { installParentGuard, takeStdoutForFrames } from "./guards.js";
import { RunnerRuntime, type RunnerRuntimeOptions } from "./runtime.js";
import { telemetryFromEnv } from "./telemetry.js";
import { RUNTIME_VERSION } from "./version.js";

/** Command-line usage of a runner built with {@link runFromArgs}. */
export const USAGE =
  "usage: <runner> (--tcp-socket HOST:PORT | --unix-socket PATH | --stdio) [--encoding json|msgpack]" +
  " | <runner> --list-handlers";

/** Environment variable naming a job catalog directory the runner checks params against. */
export const JOB_CATALOG_ENV = "RRQ_JOB_CATALOG";

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

/**
 * The `--list-handlers` line (RUNNER_PROTOCOL.md §5): what `rrq jobs check` compares with the
 * catalog. Names sorted, so the line is the same whatever the registration order.
 */
export function handlerListLine(registry: AnyRegistry): string {
  const handlers = registry.names().sort();
  return JSON.stringify({ runtime: "node", version: RUNTIME_VERSION, handlers });
}

/** The catalog `RRQ_JOB_CATALOG` names, if set. Throws {@link CatalogError} when it is bad. */
export function catalogFromEnv(env: NodeJS.ProcessEnv = process.env): JobCatalog | undefined {
  const dir = env[JOB_CATALOG_ENV];
  return dir === undefined || dir === "" ? undefined : JobCatalog.load(dir);
}

/** The runtime options with the env catalog filled in; a bad catalog ends the process (1). */
function withCatalog(options: RunnerRuntimeOptions): RunnerRuntimeOptions {
  if (options.catalog !== undefined) return options;
  try {
    const catalog = catalogFromEnv();
    return catalog === undefined ? options : { ...options, catalog };
  } catch (error) {
    if (!(error instanceof CatalogError)) throw error;
    process.stderr.write(`${JOB_CATALOG_ENV}: ${error.message}\n`);
    process.exit(1);
  }
}

function removeStaleSocket(path: string): void {
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
}

/**
 * Runs a runner process: parses the launch flags, installs the parent-death guard, serves the
 * chosen transport until SIGTERM/SIGINT (or stdin EOF for stdio), then exits 0. Exits 2 on a bad
 * command line or an invalid capability tag (`options.tags` or `RRQ_RUNNER_TAGS`). Spans are
 * exported when the OTLP environment names an endpoint. Params are checked against
 * `options.catalog`, else the catalog `RRQ_JOB_CATALOG` names. `--list-handlers` prints the
 * registered names as one JSON line and exits 0 without listening. Never returns normally.
 */
export async function runFromArgs(
  registry: AnyRegistry,
  options: RunnerRuntimeOptions & { argv?: string[] } = {},
): Promise<never> {
  const argv = options.argv ?? process.argv.slice(2);
  if (argv.includes("--list-handlers")) {
    process.stdout.write(`${handlerListLine(registry)}\n`, () => process.exit(0));
    return new Promise<never>(() => {});
  }
  let launch: LaunchOptions;
  try {
    launch = parseLaunchArgs(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
  const runtimeOptions = withCatalog(options);
  const telemetry = options.telemetry ?? (await telemetryFromEnv());
  let runtime: RunnerRuntime;
  try {
    runtime = new RunnerRuntime(registry, { ...runtimeOptions, telemetry });
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
