import { accessSync, constants, existsSync, readdirSync, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import type { EncodingName, TransportKind } from "@rrqkit/runner/protocol";
import type { Profile } from "./cases.js";
import type { CommandSpec } from "./runner-session.js";

/** Everything the harness needs to test one binding (or a runner given on the command line). */
export interface Binding {
  /** Name in reports and known-failure ids: node, python, rust, rrq, custom1, … */
  name: string;
  /** The conformance runner (handlers.md); undefined when the binding has none. */
  runner?: CommandSpec;
  /** The producer adapter (PRODUCER_ADAPTER.md); undefined when the binding has none. */
  producer?: CommandSpec;
  transports: TransportKind[];
  encodings: EncodingName[];
  /** `core` runners (RRQ's own) only get cases that need nothing beyond RRQ 0.11. */
  profile: Profile;
  /** Launch with RRQ_RUNNER_HELLO=1 and require hello frames. */
  hello: boolean;
  /** The runner answers ping frames (and lists `ping` in its hello). */
  ping: boolean;
  /**
   * Live jobs (RUNNER_PROTOCOL.md §8.6, §13): the hello lists `progress` and `output` and the
   * tags of RRQ_RUNNER_TAGS; the handlers `report_progress` and `write_output` exist.
   */
  live: boolean;
  /** Why the binding cannot run (a command that is not built); its cases are skipped. */
  missing?: string;
  /** The known-failures list for this binding (none: a custom runner given without one). */
  knownFailures?: string;
}

/** An orchestrator the end-to-end cases can run: rrqkit's own, or RRQ's released binary. */
export interface OrchestratorSpec {
  name: "rrqkit" | "rrq";
  command: CommandSpec;
  missing?: string;
}

const ALL_TRANSPORTS: TransportKind[] = ["tcp", "unix", "stdio"];
const ALL_ENCODINGS: EncodingName[] = ["json", "msgpack"];

/**
 * The rrqkit extensions a runner given on the command line may declare (`--supports`), beyond
 * the TCP + JSON core of RRQ 0.11 that every runner has.
 */
export const EXTENSIONS = ["unix", "stdio", "msgpack", "hello", "ping", "live"] as const;

/** One rrqkit extension (see {@link EXTENSIONS}). */
export type Extension = (typeof EXTENSIONS)[number];

function venv(root: string): string {
  return process.env.RRQKIT_VENV ?? join(root, ".venv");
}

/** RRQ's site-packages directory inside the test virtualenv, if the rrq wheel is installed. */
function rrqPackageDir(root: string): string | undefined {
  const lib = join(venv(root), "lib");
  if (!existsSync(lib)) return undefined;
  for (const python of readdirSync(lib)) {
    const dir = join(lib, python, "site-packages", "rrq");
    if (existsSync(join(dir, "bin", "rrq"))) return dir;
  }
  return undefined;
}

function requireFile(path: string, hint: string): string | undefined {
  return existsSync(path) ? undefined : `${path} does not exist (${hint})`;
}

function rustExample(root: string, name: string): string {
  const target = process.env.RRQKIT_RUST_TARGET_DIR ?? join(root, "runners", "rust", "target");
  const debug = join(target, "debug", "examples", name);
  const release = join(target, "release", "examples", name);
  return existsSync(debug) || !existsSync(release) ? debug : release;
}

/** The built-in bindings: node, python, rust (rrqkit), and rrq (RRQ 0.11.1's Python package). */
export function builtinBindings(root: string): Record<string, Binding> {
  const node = process.execPath;
  const nodeRunner = join(root, "runners", "node", "dist", "examples", "conformance-runner.js");
  const nodeProducer = join(root, "dist", "src", "conformance", "producer-adapter.js");
  const pyRunner = join(venv(root), "bin", "rrqkit-conformance-runner");
  const pyProducer = join(venv(root), "bin", "rrqkit-producer-adapter");
  const rustRunner = rustExample(root, "conformance_runner");
  const rustProducer = rustExample(root, "producer_adapter");
  const interop = join(root, "conformance", "interop");
  const rrqRunner = join(venv(root), "bin", "rrq-runner");
  const known = (name: string) => join(root, "conformance", "known-failures", `${name}.txt`);
  const full = {
    transports: ALL_TRANSPORTS,
    encodings: ALL_ENCODINGS,
    profile: "rrqkit" as const,
    hello: true,
    ping: true,
    live: true,
  };
  return {
    node: {
      name: "node",
      ...full,
      runner: { argv: [node, nodeRunner] },
      producer: { argv: [node, nodeProducer] },
      missing:
        requireFile(nodeRunner, "npm run build") ?? requireFile(nodeProducer, "npm run build"),
      knownFailures: known("node"),
    },
    python: {
      name: "python",
      ...full,
      runner: { argv: [pyRunner] },
      producer: { argv: [pyProducer] },
      missing: requireFile(pyRunner, "runners/python/ci.sh --install-only"),
      knownFailures: known("python"),
    },
    rust: {
      name: "rust",
      ...full,
      runner: { argv: [rustRunner] },
      producer: existsSync(rustProducer) ? { argv: [rustProducer] } : undefined,
      missing: requireFile(rustRunner, "runners/rust/ci.sh builds the examples"),
      knownFailures: known("rust"),
    },
    rrq: {
      name: "rrq",
      transports: ["tcp"],
      encodings: ["json"],
      profile: "core",
      hello: false,
      ping: false,
      live: false,
      runner: {
        argv: [rrqRunner, "--settings", "rrq_conformance_handlers.settings"],
        env: { PYTHONPATH: interop },
      },
      producer: {
        argv: [join(venv(root), "bin", "python"), join(interop, "rrq_producer_adapter.py")],
      },
      missing:
        requireFile(rrqRunner, "pip install rrq==0.11.1 into the test virtualenv") ??
        (rrqPackageDir(root) ? undefined : "RRQ's orchestrator binary is not in the rrq package"),
      knownFailures: known("rrq"),
    },
  };
}

/** The orchestrators: rrqkit's CLI, and RRQ's binary from the rrq wheel. */
export function orchestrators(root: string): Record<"rrqkit" | "rrq", OrchestratorSpec> {
  const cli = join(root, "bin", "rrq.js");
  const rrqDir = rrqPackageDir(root);
  return {
    rrqkit: {
      name: "rrqkit",
      command: { argv: [process.execPath, cli] },
      missing: requireFile(join(root, "dist", "src", "cli", "main.js"), "npm run build"),
    },
    rrq: {
      name: "rrq",
      command: { argv: [rrqDir ? join(rrqDir, "bin", "rrq") : "rrq"] },
      missing: rrqDir ? undefined : "RRQ's rrq wheel is not installed in the test virtualenv",
    },
  };
}

/**
 * Splits a command line on whitespace (toml-test style); quotes group words. A relative program
 * path (`./my-runner`, `target/release/x`) is made absolute, because the harness and the
 * orchestrator start commands from their own working directories.
 */
export function splitCommand(text: string): string[] {
  const words = (text.match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) =>
    /^(["']).*\1$/.test(w) ? w.slice(1, -1) : w,
  );
  const program = words[0];
  if (program?.includes("/") && !isAbsolute(program)) words[0] = resolve(program);
  return words;
}

/**
 * A binding for a runner (and optionally a producer adapter) given on the command line. A `core`
 * runner speaks RRQ 0.11 only: TCP and JSON, no hello; an `rrqkit` runner every extension.
 * `supports`, when given, names the extensions exactly (a runner between the two profiles).
 */
export function customBinding(
  name: string,
  runner: string | undefined,
  producer: string | undefined,
  knownFailures: string | undefined,
  profile: Profile,
  supports?: readonly Extension[],
): Binding {
  const has = new Set<Extension>(supports ?? (profile === "core" ? [] : EXTENSIONS));
  return {
    name,
    transports: ALL_TRANSPORTS.filter((t) => t === "tcp" || has.has(t as Extension)),
    encodings: ALL_ENCODINGS.filter((e) => e === "json" || has.has(e as Extension)),
    profile: has.size ? "rrqkit" : "core",
    hello: has.has("hello"),
    ping: has.has("ping"),
    live: has.has("live"),
    runner: runner ? { argv: splitCommand(runner) } : undefined,
    producer: producer ? { argv: splitCommand(producer) } : undefined,
    knownFailures,
  };
}

/** Where a program name resolves: itself when it has a slash, else the first match on PATH. */
function locate(program: string): string | undefined {
  if (program.includes("/")) return program;
  for (const dir of (process.env.PATH ?? "").split(delimiter).filter(Boolean)) {
    const path = join(dir, program);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/**
 * Why a command cannot be started (`ENOENT: no such file …`, `EACCES: not executable`), or
 * undefined when its program exists and may be executed. Checked before a run, because a
 * process that cannot be spawned fails every case with no useful reason.
 */
export function commandProblem(argv: readonly string[]): string | undefined {
  const program = argv[0];
  if (!program) return "the command is empty";
  const path = locate(program);
  if (!path) return `${program}: ENOENT (not found on PATH)`;
  try {
    if (!statSync(path).isFile()) return `${path}: EACCES (not a regular file)`;
    accessSync(path, constants.X_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "not executable" : "";
    return `${path}: ${code}${why ? ` (${why})` : ""}`;
  }
  return undefined;
}

/**
 * Launchers that build and run in one step (`go run`, `cargo run`, …) exit with their own status,
 * not the runner's (`go run` turns every failure into 1), and stand between the orchestrator and
 * the runner, so the runner's parent-death guard watches the wrong process. A warning for them.
 */
export function wrapperWarning(argv: readonly string[]): string | undefined {
  const [program, sub] = argv.map((a) => a.split("/").pop());
  const wrappers: Record<string, string[]> = {
    go: ["run"],
    cargo: ["run"],
    dotnet: ["run"],
    gradle: ["run"],
    mvn: ["exec:java"],
    mix: ["run"],
    swift: ["run"],
    stack: ["run", "exec"],
    cabal: ["run"],
  };
  if (!program || !sub || !wrappers[program]?.includes(sub)) return undefined;
  return (
    `'${program} ${sub}' reports its own exit status and sits between the harness and the ` +
    "runner (the parent-death guard then watches the wrong process): build first and give " +
    "the binary to --runner-cmd"
  );
}
