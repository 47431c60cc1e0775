import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createConnection, type Socket } from "node:net";
import {
  codecFor,
  FrameConnection,
  launchArgs,
  type EncodingName,
  type Frame,
  type TransportKind,
  type TransportSpec,
} from "@rrqkit/runner/protocol";
import { frameValidator, FrameSchemaError } from "../protocol/validate.js";
import { localEndpoint } from "../runner/ports.js";

/** A command line plus environment, as a binding or `--runner-cmd` gives it. */
export interface CommandSpec {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
}

/** A rule the implementation broke, found while frames were flowing. */
export interface Violation {
  rule: string;
  message: string;
}

/** A frame received by the harness, in arrival order across all connections. */
export interface Received {
  frame: Frame;
  seq: number;
}

let arrival = 0;

/** A request sent on a connection, as far as its live frames are concerned (§13). */
interface LiveTrack {
  jobId: string;
  progress: boolean;
  output: boolean;
  answered: boolean;
  nextSeq: number;
  truncated: boolean;
}

const LIVE_RULES = {
  owner:
    "live frames belong to an in-flight request of their connection (RUNNER_PROTOCOL.md §13.4)",
  enabled:
    "no progress or output frame unless the request's live enables it (RUNNER_PROTOCOL.md §13.1)",
  order: "live frames precede the request's response (RUNNER_PROTOCOL.md §13.4)",
  seq: "output frames count seq 0, 1, 2, … per request (RUNNER_PROTOCOL.md §13.3)",
  truncation:
    "one truncation frame (data empty), the request's last output frame (RUNNER_PROTOCOL.md §13.3)",
} as const;

/**
 * One frame connection to a runner, seen from the orchestrator's side. Every frame received is
 * validated against schemas/ and checked for direction and hello placement; problems become
 * {@link Violation}s rather than exceptions, so a case can report all of them.
 */
export class HarnessConnection {
  readonly received: Received[] = [];
  readonly violations: Violation[] = [];
  hello: Frame | undefined;
  closed = false;
  /** Requests sent on this connection by request_id, to judge their live frames. */
  private readonly live = new Map<string, LiveTrack>();
  private waiters: Array<() => void> = [];
  private readonly validate = frameValidator();

  constructor(
    readonly frames: FrameConnection,
    readonly transport: TransportKind,
    private readonly expectHello: boolean,
    private readonly socket?: Socket,
  ) {
    frames.on({
      frame: (frame) => this.onFrame(frame),
      close: (reason) => {
        this.closed = true;
        if (reason.kind === "decode") {
          const rule =
            transport === "stdio"
              ? "stdout carries frames only (RUNNER_PROTOCOL.md §5)"
              : "frames are well formed (RUNNER_PROTOCOL.md §2, §11)";
          this.violations.push({
            rule,
            message: `the runner sent bytes that do not decode as a frame: ${reason.error.message}`,
          });
        }
        this.wake();
      },
    });
  }

  private onFrame(frame: Frame): void {
    try {
      this.validate(frame);
    } catch (error) {
      if (!(error instanceof FrameSchemaError)) throw error;
      this.violations.push({
        rule: "every frame matches schemas/v2",
        message: `${frame.type} frame: ${error.errors.join("; ")}`,
      });
    }
    const first = this.received.length === 0 && this.hello === undefined;
    if (frame.type === "hello") {
      if (!this.expectHello)
        this.violations.push({
          rule: "no hello unless RRQ_RUNNER_HELLO=1 (RUNNER_PROTOCOL.md §8.2)",
          message: "the runner sent a hello frame without being asked",
        });
      else if (!first)
        this.violations.push({
          rule: "hello is the first frame of a connection (RUNNER_PROTOCOL.md §8.2)",
          message: "a hello frame arrived after other frames",
        });
      this.hello ??= frame;
    } else if (
      frame.type !== "response" &&
      frame.type !== "pong" &&
      frame.type !== "progress" &&
      frame.type !== "output"
    ) {
      this.violations.push({
        rule: "a runner sends only response, hello, pong, progress and output frames (RUNNER_PROTOCOL.md §3)",
        message: `the runner sent a '${frame.type}' frame`,
      });
    } else if (first && this.expectHello) {
      this.violations.push({
        rule: "hello is the first frame of a connection (RUNNER_PROTOCOL.md §8.2)",
        message: `the first frame was '${frame.type}', not hello`,
      });
    }
    if (frame.type === "progress" || frame.type === "output") this.checkLive(frame);
    else if (frame.type === "response") {
      const track = this.live.get(String(frame.payload.request_id));
      if (track) track.answered = true;
    }
    if (frame.type !== "hello") this.received.push({ frame, seq: ++arrival });
    this.wake();
  }

  /**
   * Notes a request sent on this connection, so that its live frames can be judged: only what
   * its `live` enables, before its response, output seq without gaps (§13).
   */
  noteRequest(payload: Record<string, unknown>): void {
    const live = (payload.live ?? {}) as Record<string, unknown>;
    this.live.set(String(payload.request_id), {
      jobId: String(payload.job_id),
      progress: live.progress === true,
      output: live.output === true,
      answered: false,
      nextSeq: 0,
      truncated: false,
    });
  }

  /** Forgets what earlier cases sent (the one stdio connection outlives cases). */
  forgetRequests(): void {
    this.live.clear();
  }

  private checkLive(frame: Frame & { type: "progress" | "output" }): void {
    const p = frame.payload;
    const fail = (rule: string, message: string) => this.violations.push({ rule, message });
    const track = this.live.get(String(p.request_id));
    const what = `a ${frame.type} frame for request_id ${JSON.stringify(p.request_id)}`;
    if (!track) return void fail(LIVE_RULES.owner, `${what}, which was not sent on it`);
    if (p.job_id !== track.jobId)
      fail(LIVE_RULES.owner, `${what} has job_id ${JSON.stringify(p.job_id)}, not its request's`);
    if (!(frame.type === "progress" ? track.progress : track.output))
      fail(LIVE_RULES.enabled, `${what}, whose live.${frame.type} is not true`);
    if (track.answered) fail(LIVE_RULES.order, `${what} arrived after its response`);
    if (frame.type !== "output") return;
    const o = frame.payload;
    if (o.seq !== track.nextSeq)
      fail(LIVE_RULES.seq, `${what} has seq ${o.seq}, expected ${track.nextSeq}`);
    track.nextSeq = o.seq + 1;
    if (track.truncated) fail(LIVE_RULES.truncation, `${what} came after the truncation frame`);
    if (o.truncated === true) {
      track.truncated = true;
      if (o.data !== "") fail(LIVE_RULES.truncation, `${what}: the truncation frame holds data`);
    } else if ((o.dropped_bytes ?? 0) !== 0)
      fail(LIVE_RULES.truncation, `${what}: dropped_bytes ${o.dropped_bytes} without truncated`);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves on the next frame or close, or after `ms`. */
  changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Waits until `check` returns a value, a frame-driven wait bounded by `timeoutMs`. */
  async until<T>(check: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined) return value;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await this.changed(left);
    }
  }

  /** Sends a frame. */
  send(frame: Frame): void {
    this.frames.send(frame);
  }

  /** Sends raw bytes (several frames coalesced, split writes, or invalid vectors). */
  sendRaw(bytes: Buffer): void {
    this.frames.sendRaw(bytes);
  }

  /** Encodes a frame in this connection's encoding (length prefix included). */
  encode(frame: Frame): Buffer {
    return this.frames.codec.encodeFrame(frame);
  }

  close(): void {
    this.frames.close();
  }

  /** Ends the harness→runner direction of a socket while still reading (half-close). */
  halfClose(): void {
    this.socket?.end();
  }
}

/** Opens a socket that the harness can half-close (connectFrames hides its socket). */
function openSocket(spec: Exclude<TransportSpec, { kind: "stdio" }>): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      spec.kind === "tcp"
        ? createConnection({ host: spec.host, port: spec.port })
        : createConnection({ path: spec.path });
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** The runner process is gone (or never started) when the harness needs it. */
export class RunnerGone extends Error {
  override readonly name = "RunnerGone";
}

/** How to launch a runner for a session. */
export interface SessionOptions {
  transport: TransportKind;
  encoding: EncodingName;
  /** Launch with RRQ_RUNNER_HELLO=1 and require a hello first on every connection. */
  hello: boolean;
  /** Extra environment (OTLP endpoint and the like). */
  env?: Record<string, string>;
  /** TCP only: the host put in `--tcp-socket` instead of 127.0.0.1 (non-loopback refusal). */
  listenHost?: string;
  /** Start the runner under a stand-in parent the case can kill (parent-death guard). */
  viaParent?: boolean;
}

/** The stand-in parent of `viaParent` sessions (compiled beside this file). */
const PARENT_SHIM = join(dirname(fileURLToPath(import.meta.url)), "parent-shim.js");

/**
 * A runner process launched exactly as an orchestrator launches it: the command line plus the
 * transport flag (and `--encoding msgpack`), in its own process group.
 */
export class RunnerSession {
  private stderrTail = "";
  private stdioConnection: HarnessConnection | undefined;
  /** Why the process could not be started (spawn ENOENT, EACCES), if it could not. */
  private spawnError: Error | undefined;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly child: ChildProcess,
    readonly spec: TransportSpec,
    readonly options: SessionOptions,
    private readonly dir: string | undefined,
    /** With `viaParent`: the file the stand-in parent writes the runner's pid to. */
    private readonly pidFile?: string,
  ) {
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-2000);
    });
    // Over sockets stdout is free-form output; drain it so a chatty handler never blocks.
    if (spec.kind !== "stdio") child.stdout?.resume();
    this.exit = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      // A process that never started emits no "exit": end the session on the spawn error.
      child.once("error", (error) => {
        if (child.pid !== undefined) return;
        this.spawnError = error;
        resolve({ code: null, signal: null });
      });
    });
  }

  /** Starts the runner. Does not wait for readiness (see {@link connect}). */
  static async launch(command: CommandSpec, options: SessionOptions): Promise<RunnerSession> {
    const endpoint = await localEndpoint(options.transport, "rrqc-");
    let spec = endpoint.spec;
    if (spec.kind === "tcp" && options.listenHost) spec = { ...spec, host: options.listenHost };
    const env: NodeJS.ProcessEnv = { ...process.env, ...command.env, ...options.env };
    delete env.RRQ_RUNNER_HELLO;
    delete env.RRQ_RUNNER_ALLOW_REMOTE; // the refusal case needs the default
    if (options.viaParent) delete env.RRQ_RUNNER_PARENT_GUARD; // the guard is under test
    if (options.hello) env.RRQ_RUNNER_HELLO = "1";
    let argv = [...command.argv, ...launchArgs(spec, options.encoding)];
    let pidFile: string | undefined;
    if (options.viaParent) {
      pidFile = join(mkdtempSync(join(tmpdir(), "rrqc-parent-")), "runner.pid");
      env.RRQC_PID_FILE = pidFile;
      argv = [process.execPath, PARENT_SHIM, ...argv];
    }
    const [program, ...args] = argv;
    const child = spawn(program!, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env,
      cwd: command.cwd,
      detached: true,
    });
    child.on("error", () => {}); // reported through exit / connect failures (see whyGone)
    return new RunnerSession(child, spec, options, endpoint.dir, pidFile);
  }

  /** The last lines the runner wrote to stderr (for failure reports). */
  get stderr(): string {
    return this.stderrTail;
  }

  get alive(): boolean {
    return !this.spawnError && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Why the runner is gone, for failure messages: the spawn error, or the exit status and the
   * end of its stderr (or that it wrote none).
   */
  get whyGone(): string {
    const command = this.child.spawnargs.join(" ");
    if (this.spawnError) return `cannot start '${command}': ${this.spawnError.message}`;
    const { exitCode: code, signalCode: signal } = this.child;
    const status = signal ? `signal ${signal}` : `status ${code}`;
    const stderr = this.stderrTail.trim();
    return `exit ${status}; ${stderr ? `stderr: ${stderr}` : "no output on stderr"}`;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * A connection ready for requests: a new one per call for tcp and unix (connect retried until
   * the runner listens), the single stdin/stdout pair for stdio. With hello on, waits for it.
   */
  async connect(timeoutMs = 20_000): Promise<HarnessConnection> {
    const codec = codecFor(this.options.encoding);
    let connection: HarnessConnection;
    if (this.spec.kind === "stdio") {
      if (this.stdioConnection) return this.stdioConnection;
      const frames = new FrameConnection(this.child.stdout!, this.child.stdin!, codec);
      connection = new HarnessConnection(frames, "stdio", this.options.hello);
      this.stdioConnection = connection;
    } else {
      const deadline = Date.now() + timeoutMs;
      let socket: Socket | undefined;
      while (!socket) {
        try {
          socket = await openSocket(this.spec);
        } catch (error) {
          if (!this.alive)
            throw new RunnerGone(`the runner exited before listening: ${this.whyGone}`);
          if (Date.now() > deadline)
            throw new Error(`cannot connect to the runner: ${(error as Error).message}`);
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      const frames = new FrameConnection(socket, socket, codec);
      connection = new HarnessConnection(frames, this.spec.kind, this.options.hello, socket);
    }
    if (this.options.hello) {
      const ok = await connection.until(
        () => (connection.hello || connection.closed ? true : undefined),
        timeoutMs,
      );
      if (!connection.hello && connection.closed && !(await this.exited(1000)))
        throw new RunnerGone(`the runner exited before its hello: ${this.whyGone}`);
      if (!ok || !connection.hello)
        connection.violations.push({
          rule: "hello is the first frame of a connection (RUNNER_PROTOCOL.md §8.2)",
          message: `no hello frame arrived${this.alive ? "" : `; the runner exited: ${this.whyGone}`}`,
        });
    }
    return connection;
  }

  /**
   * Waits up to `ms` for the process to be gone (its pipes close a moment before its exit is
   * reported); true while it is still alive.
   */
  async exited(ms: number): Promise<boolean> {
    if (this.alive) await Promise.race([this.exit, new Promise((r) => setTimeout(r, ms))]);
    return this.alive;
  }

  /** With `viaParent`: the runner's own pid, once the stand-in parent has written it. */
  async runnerPid(timeoutMs = 10_000): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.pidFile && Date.now() < deadline) {
      if (existsSync(this.pidFile)) {
        const pid = Number(readFileSync(this.pidFile, "utf8"));
        if (pid > 0) return pid;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return undefined;
  }

  /** The stdio connection, if one was made. */
  get stdio(): HarnessConnection | undefined {
    return this.stdioConnection;
  }

  /** Stops the runner: SIGTERM to its group, then SIGKILL after a grace period. */
  async stop(graceMs = 2000): Promise<void> {
    const pid = this.child.pid;
    const signal = (sig: NodeJS.Signals) => {
      try {
        if (pid !== undefined) process.kill(-pid, sig);
      } catch {
        // the group is already gone
      }
    };
    if (pid !== undefined && this.alive) {
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), graceMs);
      await this.exit;
      clearTimeout(timer);
    }
    // Also when the process we started is gone: a runner that outlived a killed stand-in parent
    // (or a handler's child) is still in the group.
    signal("SIGKILL");
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    if (this.pidFile) rmSync(dirname(this.pidFile), { recursive: true, force: true });
  }
}
