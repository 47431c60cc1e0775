import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  codecFor,
  connectFrames,
  FrameConnection,
  launchArgs,
  type EncodingName,
  type Frame,
  type TransportKind,
  type TransportSpec,
} from "../../src/protocol/index.js";
import { frameValidator } from "../../../../src/protocol/validate.js";
import { freePort, localEndpoint } from "../../../../src/runner/ports.js";

export { freePort };

const validateFrame = frameValidator();

/** The compiled Node conformance runner (built by `npm run build`). */
export const NODE_CONFORMANCE_RUNNER = fileURLToPath(
  new URL("../../dist/examples/conformance-runner.js", import.meta.url),
);

/** A frame connection plus a queue of received frames, for tests. */
export class TestClient {
  private readonly received: Frame[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  constructor(readonly connection: FrameConnection) {
    connection.on({
      frame: (frame) => {
        // Every frame a runner sends must satisfy schemas/ (issue acceptance).
        validateFrame(frame);
        this.received.push(frame);
        this.wake();
      },
      close: () => {
        this.closed = true;
        this.wake();
      },
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  send(frame: Frame): void {
    this.connection.send(frame);
  }

  /** Waits for (and removes) the first received frame matching `predicate`. */
  async next(predicate: (f: Frame) => boolean = () => true, timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.received.findIndex(predicate);
      if (index >= 0) return this.received.splice(index, 1)[0]!;
      if (this.closed) throw new Error("connection closed while waiting for a frame");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a frame");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for the response to `requestId`. */
  async response(requestId: string, timeoutMs?: number) {
    const frame = await this.next(
      (f) => f.type === "response" && f.payload.request_id === requestId,
      timeoutMs,
    );
    if (frame.type !== "response") throw new Error("unreachable");
    return frame.payload;
  }

  /** Frames received and not yet taken. */
  get pending(): readonly Frame[] {
    return this.received;
  }

  /** Resolves once the connection is closed. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("connection did not close");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** Options for {@link startRunner}. */
export interface StartRunnerOptions {
  transport: TransportKind;
  encoding?: EncodingName;
  command?: string[];
  env?: NodeJS.ProcessEnv;
}

/** A runner subprocess launched the way an orchestrator launches it. */
export class RunnerProcess {
  stderr = "";
  private constructor(
    readonly child: ChildProcess,
    readonly spec: TransportSpec,
    readonly encoding: EncodingName,
    private readonly dir: string | undefined,
  ) {
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (text: string) => (this.stderr += text));
  }

  static async start(options: StartRunnerOptions): Promise<RunnerProcess> {
    const encoding = options.encoding ?? "json";
    const command = options.command ?? [process.execPath, NODE_CONFORMANCE_RUNNER];
    const { spec, dir } = await localEndpoint(options.transport, "rrqt-");
    const child = spawn(command[0]!, [...command.slice(1), ...launchArgs(spec, encoding)], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
    });
    return new RunnerProcess(child, spec, encoding, dir);
  }

  /** Opens a new frame connection (tcp/unix: connect with retries; stdio: the pipes, once). */
  async connect(timeoutMs = 10_000): Promise<TestClient> {
    const codec = codecFor(this.encoding);
    if (this.spec.kind === "stdio") {
      return new TestClient(new FrameConnection(this.child.stdout!, this.child.stdin!, codec));
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return new TestClient(await connectFrames(this.spec, codec));
      } catch (error) {
        if (this.child.exitCode !== null) throw new Error(`runner exited: ${this.stderr}`);
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** Resolves with the exit code once the process has exited. */
  exited(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return Promise.resolve(this.child.exitCode);
    }
    return new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await this.exited();
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
