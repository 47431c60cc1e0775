import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  codecFor,
  FrameDecoder,
  parseFrame,
  type EncodingName,
  type Frame,
} from "@rrqkit/runner/protocol";
import { sleep } from "../lib/redis.js";
import { Rng } from "../lib/rng.js";
import {
  classify,
  Mutator,
  randomFrame,
  saveInput,
  UNSAFE_HANDLERS,
  type Verdict,
} from "./mutate.js";
import { emptyDecoderReport, type DecoderFuzzReport } from "./orchestrator-decoder.js";
import { schemaProblem } from "./schema.js";

export interface RunnerFuzzReport extends DecoderFuzzReport {
  /** Connections opened (one corrupt input each). */
  connections: number;
  /** Corrupt inputs sent (the reference decoder rejects them, or they end inside a frame). */
  corrupt_inputs: number;
  /** Valid frames sent (random and mutated-but-valid), each answered as the protocol says. */
  valid_frames: number;
  restarts: number;
}

/** A runner process listening on a private Unix socket. */
class RunnerUnderTest {
  child!: ChildProcess;
  readonly dir = mkdtempSync(join(tmpdir(), "rrq-fuzz-runner-"));
  readonly path = join(this.dir, "runner.sock");
  stderrTail = "";

  constructor(
    private readonly cmd: string[],
    private readonly encoding: EncodingName,
  ) {}

  async start(): Promise<void> {
    if (existsSync(this.path)) rmSync(this.path);
    const args = [...this.cmd.slice(1), "--unix-socket", this.path];
    if (this.encoding === "msgpack") args.push("--encoding", "msgpack");
    const env = { ...process.env };
    delete env.RRQ_RUNNER_HELLO;
    delete env.RRQ_TEST_EXEC_LOG;
    this.child = spawn(this.cmd[0]!, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    this.stderrTail = "";
    this.child.stderr!.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-2000);
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(`runner exited at start: ${this.stderrTail}`);
      const ok = await new Promise<boolean>((resolve) => {
        const s = createConnection({ path: this.path }, () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`runner did not listen: ${this.stderrTail}`);
      await sleep(50);
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<void> {
    if (this.alive) {
      this.child.kill("SIGKILL");
      await new Promise((r) => this.child.once("exit", r));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One connection to the runner: send bytes, read and decode replies, notice the close. */
class Session {
  readonly socket: Socket;
  readonly replies: Frame[] = [];
  closed = false;
  replyError: string | undefined;
  private readonly decoder = new FrameDecoder();
  private waiters: Array<() => void> = [];

  constructor(path: string, encoding: EncodingName) {
    const codec = codecFor(encoding);
    this.socket = createConnection({ path });
    this.socket.on("data", (chunk: Buffer) => {
      try {
        for (const body of this.decoder.push(chunk))
          this.replies.push(parseFrame(codec.decodeBody(body)));
      } catch (error) {
        this.replyError ??= (error as Error).message;
      }
      this.wake();
    });
    const onClose = () => {
      this.closed = true;
      this.wake();
    };
    this.socket.on("end", onClose);
    this.socket.on("close", onClose);
    this.socket.on("error", onClose);
  }

  connected(): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(false);
      this.socket.once("connect", () => resolve(true));
      this.socket.once("error", () => resolve(false));
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `done()` or `timeoutMs`; returns done(). */
  async until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }
}

/**
 * Random valid frames, encoded once: a request's request_id is a fixed-width placeholder that
 * is overwritten in the bytes with a fresh id on every use (ids must be unique in flight).
 */
class FramePool {
  private readonly entries: Array<{ frame: Frame; bytes: Buffer; idAt: number }> = [];
  private uses = 0;

  constructor(
    private readonly encoding: EncodingName,
    private readonly nextId: () => string,
  ) {}

  take(rng: Rng): { frame: Frame; bytes: Buffer } {
    if (this.entries.length < 512 || this.uses++ % 16 === 0) {
      const frame = randomFrame(rng);
      const placeholder = "~~~~~~~~~~~~~~~~";
      if (frame.type === "request") frame.payload.request_id = placeholder;
      const bytes = codecFor(this.encoding).encodeFrame(frame);
      const idAt = frame.type === "request" ? bytes.indexOf(placeholder) : -1;
      if (schemaProblem(frame) === undefined) {
        const entry = { frame, bytes, idAt };
        if (this.entries.length < 512) this.entries.push(entry);
        else this.entries[rng.int(0, this.entries.length - 1)] = entry;
      }
    }
    const entry = rng.pick(this.entries);
    if (entry.frame.type !== "request") return entry;
    const id = this.nextId();
    const bytes = Buffer.from(entry.bytes);
    bytes.write(id, entry.idAt, "latin1");
    return {
      frame: { ...entry.frame, payload: { ...entry.frame.payload, request_id: id } },
      bytes,
    };
  }
}

const hex = (b: Buffer) =>
  b.length > 96 ? `${b.subarray(0, 96).toString("hex")}…(${b.length} bytes)` : b.toString("hex");

function unsafe(verdict: Verdict): boolean {
  return verdict.frames.some(
    (f) => f.type === "request" && UNSAFE_HANDLERS.has(f.payload.function_name),
  );
}

/**
 * A number beyond float64 (`1e400` in JSON) is outside the JSON data model the protocol uses:
 * JSON.parse reads it as Infinity and Python as inf, the Rust runner refuses the frame. No
 * orchestrator sends one (JSON.stringify writes Infinity as null), so such inputs are not used
 * as "valid" frames.
 */
function nonFinite(value: unknown): boolean {
  if (typeof value === "number") return !Number.isFinite(value);
  if (typeof value !== "object" || value === null) return false;
  return Object.values(value).some(nonFinite);
}

/**
 * Fuzzes a runner's frame decoder through its real socket (RUNNER_PROTOCOL.md §2, §11). Each
 * connection first carries valid frames (random requests, responses, cancels, pings, hellos,
 * pongs, and mutated inputs the reference decoder accepts), which must all be answered as the
 * protocol says — every request exactly once, with a valid outcome frame — and then one
 * corrupt input (mutated golden vectors or random frames that the reference decoder rejects,
 * or that end inside a frame, followed by our end of stream). The runner must close that
 * connection promptly without replying to the corrupt frame, and never crash or hang; the
 * process is watched, and restarted (and the input recorded) if it dies.
 */
export async function fuzzRunnerDecoder(
  runner: { name: string; cmd: string[] },
  encoding: EncodingName,
  target: number,
  seed: number,
  options: { parallel?: number; framesPerConnection?: number; timeoutMs?: number } = {},
): Promise<RunnerFuzzReport> {
  const rng = new Rng(seed);
  const codec = codecFor(encoding);
  const parallel = options.parallel ?? 8;
  const perConnection = options.framesPerConnection ?? 40;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const report: RunnerFuzzReport = {
    ...emptyDecoderReport(`${runner.name}/${encoding}`),
    connections: 0,
    corrupt_inputs: 0,
    valid_frames: 0,
    restarts: 0,
  };
  const problem = (
    kind: "crashes" | "hangs" | "violations" | "schema_divergences",
    category: string,
    detail: string,
    input?: Buffer,
  ) => {
    report[kind]++;
    const key = `${kind}: ${category}`;
    const seen = report.problems[key];
    if (seen) seen.count++;
    else {
      const file = input ? saveInput(`${runner.name}-${encoding}`, input) : undefined;
      report.problems[key] = {
        count: 1,
        example: `${detail}${input ? `; input ${hex(input)}` : ""}`.slice(0, 1500),
        ...(file ? { file } : {}),
      };
    }
  };
  const proc = new RunnerUnderTest(runner.cmd, encoding);
  await proc.start();
  let restarting: Promise<void> | undefined;
  const ensureAlive = async (lastInput: Buffer | undefined) => {
    if (proc.alive) return;
    if (!restarting) {
      problem(
        "crashes",
        "runner process died",
        `exit ${proc.child.exitCode} signal ${proc.child.signalCode}; stderr: ${proc.stderrTail.slice(-500)}`,
        lastInput,
      );
      restarting = (async () => {
        report.restarts++;
        await proc.start();
      })().finally(() => (restarting = undefined));
    }
    await restarting;
  };
  let seq = 0;
  const started = performance.now();

  async function oneConnection(worker: Rng, mutator: Mutator, pool: FramePool): Promise<void> {
    const session = new Session(proc.path, encoding);
    if (!(await session.connected())) {
      await ensureAlive(undefined);
      return;
    }
    report.connections++;
    const t0 = performance.now();
    // Phase A: valid frames.
    const chunks: Buffer[] = [];
    const expected = new Set<string>();
    let sent = 0;
    while (sent < perConnection) {
      let bytes: Buffer;
      let frames: Frame[];
      if (worker.chance(0.15)) {
        const input = mutator.next();
        const verdict = classify(input, encoding);
        // Valid for the shared codec and for schemas/ alike (they differ on a few optional
        // fields; those inputs are left out here and counted by the orchestrator-side fuzzer).
        if (verdict.kind !== "valid" || unsafe(verdict) || verdict.frames.length === 0) continue;
        if (nonFinite(verdict.frames)) continue;
        if (verdict.frames.some((f) => schemaProblem(f) !== undefined)) continue;
        // Requests need fresh ids (a duplicate in flight would be refused, legitimately).
        frames = verdict.frames.map((f) =>
          f.type === "request" ? { ...f, payload: { ...f.payload, request_id: `fz-${++seq}` } } : f,
        );
        bytes = Buffer.concat(frames.map((f) => codec.encodeFrame(f)));
        bytes = frames.every((f) => f.type !== "request") ? input : bytes;
      } else {
        const pooled = pool.take(worker);
        frames = [pooled.frame];
        bytes = pooled.bytes;
      }
      for (const f of frames) if (f.type === "request") expected.add(f.payload.request_id);
      chunks.push(bytes);
      sent += frames.length;
    }
    const probeId = `fz-probe-${++seq}`;
    chunks.push(
      codec.encodeFrame({
        type: "request",
        payload: {
          protocol_version: "2",
          request_id: probeId,
          job_id: "probe",
          function_name: "echo",
          params: { probe: true },
          context: {
            job_id: "probe",
            attempt: 1,
            enqueue_time: "2026-01-01T00:00:00Z",
            queue_name: "q",
          },
        },
      }),
    );
    expected.add(probeId);
    const all = Buffer.concat(chunks);
    // Arbitrary chunking: the runner must reassemble frames split anywhere.
    let at = 0;
    while (at < all.length) {
      const n = worker.chance(0.3) ? worker.int(1, 64) : worker.int(64, 65536);
      session.write(all.subarray(at, at + n));
      at += n;
    }
    const answered = () => {
      const got = new Set<string>();
      for (const r of session.replies)
        if (r.type === "response" && typeof r.payload.request_id === "string")
          got.add(r.payload.request_id);
      return [...expected].every((id) => got.has(id));
    };
    const ok = await session.until(() => answered() || session.closed, timeoutMs);
    report.inputs += sent;
    report.valid_frames += sent;
    report.accepted += sent;
    if (!ok || !answered()) {
      await ensureAlive(all);
      if (session.closed)
        problem(
          "violations",
          "closed the connection on valid frames",
          `${session.replies.length} replies`,
          all,
        );
      else
        problem(
          "hangs",
          `requests not answered within ${timeoutMs} ms`,
          `${session.replies.length} replies`,
          all,
        );
      session.socket.destroy();
      return;
    }
    if (session.replyError)
      problem("violations", "runner sent an undecodable frame", session.replyError);
    const counts = new Map<string, number>();
    for (const r of session.replies) {
      if (r.type !== "response") continue;
      const id = r.payload.request_id;
      if (typeof id === "string") counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const [id, n] of counts)
      if (n > 1) problem("violations", "more than one outcome for a request", `${id} × ${n}`);
    // Phase B: one corrupt input.
    let input: Buffer | undefined;
    let verdict: Verdict | undefined;
    for (let tries = 0; tries < 50; tries++) {
      const candidate = mutator.next();
      const v = classify(candidate, encoding);
      if (v.kind === "valid" || unsafe(v)) continue;
      // Frames before the error must be unambiguous too (see above).
      if (v.frames.some((f) => schemaProblem(f) !== undefined)) continue;
      if (nonFinite(v.frames)) continue;
      input = candidate;
      verdict = v;
      break;
    }
    if (!input || !verdict) {
      session.socket.destroy();
      return;
    }
    report.inputs++;
    report.corrupt_inputs++;
    if (verdict.kind === "error") report.rejected++;
    else report.incomplete++;
    session.write(input);
    if (verdict.kind === "incomplete") session.socket.end();
    const closed = await session.until(() => session.closed, timeoutMs);
    const ms = performance.now() - t0;
    report.slowest_ms = Math.max(report.slowest_ms, ms);
    if (!closed) {
      await ensureAlive(input);
      if (verdict.kind === "error") {
        // Is it alive and just lenient? Then it is a divergence from the reference decoder.
        problem(
          proc.alive ? "schema_divergences" : "hangs",
          `connection left open after a frame the reference rejects (${verdict.code})`,
          verdict.message,
          input,
        );
      } else problem("hangs", "connection left open after EOF inside a frame", "", input);
      session.socket.destroy();
      return;
    }
    await ensureAlive(input);
  }

  const workers = Array.from({ length: parallel }, async () => {
    const worker = rng.fork();
    const mutator = new Mutator(worker.fork(), encoding);
    const pool = new FramePool(encoding, () => `fz${(++seq).toString(16).padStart(14, "0")}`);
    while (report.inputs < target) {
      try {
        await oneConnection(worker, mutator, pool);
      } catch (error) {
        problem("violations", "fuzz driver error", (error as Error).stack ?? String(error));
        await ensureAlive(undefined);
      }
    }
  });
  await Promise.all(workers);
  report.seconds = (performance.now() - started) / 1000;
  report.rate_per_s = Math.round(report.inputs / report.seconds);
  if (!proc.alive) problem("crashes", "runner process died", proc.stderrTail.slice(-500));
  await proc.stop();
  return report;
}
