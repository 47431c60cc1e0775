import { EventEmitter } from "node:events";
import {
  codecFor,
  FrameConnection,
  type CloseReason,
  type EncodingName,
  type ExecutionOutcome,
  type Frame,
  type FrameConnectionHandlers,
} from "@rrqkit/runner/protocol";
import { RunnerError } from "../../src/errors.js";
import { frameValidator } from "../../src/protocol/validate.js";
import { RunnerConnection } from "../../src/runner/runner-connection.js";
import { Rng } from "../lib/rng.js";
import { classify, frameModel, Mutator, saveInput, type Verdict } from "./mutate.js";
import { schemaProblem } from "./schema.js";

/** A stand-in for a socket: FrameConnection only needs events and a few methods. */
class FakeSocket extends EventEmitter {
  written = 0;
  ended = false;
  destroyed = false;
  write(bytes: Buffer): boolean {
    this.written += bytes.length;
    return true;
  }
  cork(): void {}
  uncork(): void {}
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

export interface DecoderFuzzReport {
  decoder: string;
  inputs: number;
  rejected: number;
  accepted: number;
  incomplete: number;
  crashes: number;
  hangs: number;
  violations: number;
  schema_divergences: number;
  slowest_ms: number;
  seconds: number;
  rate_per_s: number;
  /** Problems by category: how often, and one input that shows it. */
  problems: Record<string, { count: number; example: string; file?: string }>;
}

/** A report for `decoder` with every count at zero. */
export function emptyDecoderReport(decoder: string): DecoderFuzzReport {
  return {
    decoder,
    inputs: 0,
    rejected: 0,
    accepted: 0,
    incomplete: 0,
    crashes: 0,
    hangs: 0,
    violations: 0,
    schema_divergences: 0,
    slowest_ms: 0,
    seconds: 0,
    rate_per_s: 0,
    problems: {},
  };
}

interface Probe {
  input: Buffer;
  socket: FakeSocket;
  frames: FrameConnection;
  delivered: Frame[];
  closeReason?: CloseReason;
  ended: boolean;
  strict: boolean;
  pendingId: string;
  pendingJob: string;
  ideal: Verdict;
  settled?: { ok: true; outcome: ExecutionOutcome } | { ok: false; error: unknown };
}

const hex = (b: Buffer) =>
  b.length > 96 ? `${b.subarray(0, 96).toString("hex")}…(${b.length} bytes)` : b.toString("hex");

/**
 * Fuzzes the orchestrator's side of the wire in-process: each input goes, in 1–3 chunks and
 * sometimes followed by end-of-stream, through the same FrameConnection + RunnerConnection pair
 * the orchestrator uses for a runner, with one request pending. Checked for every input:
 * nothing throws; a decoding error closes the connection with a §11 code, agreeing with an
 * independent model of the framing and with the same bytes fed whole (chunking never changes
 * the result); valid frames are delivered; the pending request is rejected as a transport
 * error (so the job is retried) when the connection closes, resolved only by its own outcome;
 * every frame accepted is valid by schemas/ (ajv), and a frame refused as `invalid_frame` is
 * refused by the schema too (divergences are counted, not failures).
 */
export async function fuzzOrchestratorDecoder(
  encoding: EncodingName,
  count: number,
  seed: number,
): Promise<DecoderFuzzReport> {
  const rng = new Rng(seed);
  const mutator = new Mutator(rng.fork(), encoding);
  const codec = codecFor(encoding);
  const schema = frameValidator();
  const report = emptyDecoderReport(`orchestrator/${encoding}`);
  const problem = (
    kind: "crashes" | "hangs" | "violations" | "schema_divergences",
    category: string,
    detail: string,
    input: Buffer,
  ) => {
    report[kind]++;
    const key = `${kind}: ${category}`;
    const seen = report.problems[key];
    if (seen) seen.count++;
    else
      report.problems[key] = {
        count: 1,
        example: `${detail ? `${detail}; ` : ""}input ${hex(input)}`.slice(0, 1500),
        file: saveInput(`orchestrator-${encoding}`, input),
      };
  };

  const started = performance.now();
  const batch = 2000;
  // Decoding errors are Error objects: their stack traces dominate the cost of a rejected input.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 4;
  for (let done = 0; done < count; done += batch) {
    const probes: Probe[] = [];
    for (let i = 0; i < Math.min(batch, count - done); i++) {
      const input = mutator.next();
      const socket = new FakeSocket();
      const frames = new FrameConnection(socket as never, socket as never, codec);
      const delivered: Frame[] = [];
      const verdict = classify(input, encoding);
      // Observe what the RunnerConnection receives, without changing it.
      const on = frames.on.bind(frames);
      const probe: Probe = {
        input,
        socket,
        frames,
        delivered,
        ended: false,
        strict: rng.chance(0.1),
        pendingId: "fuzz-request",
        pendingJob: "fuzz-job",
        ideal: verdict,
      };
      frames.on = (handlers: FrameConnectionHandlers) =>
        on({
          frame: (frame) => {
            delivered.push(frame);
            handlers.frame?.(frame);
          },
          close: (reason) => {
            probe.closeReason = reason;
            handlers.close?.(reason);
          },
        });
      const connection = new RunnerConnection(frames, {
        validate: probe.strict ? schema : undefined,
        log: () => undefined,
      });
      // Let a response in the input match the pending request now and then.
      const response = verdict.frames.find((f) => f.type === "response");
      if (response && typeof response.payload.request_id === "string" && rng.chance(0.7)) {
        probe.pendingId = response.payload.request_id;
        if (typeof response.payload.job_id === "string" && rng.chance(0.8))
          probe.pendingJob = response.payload.job_id;
      }
      connection
        .execute({
          protocol_version: "2",
          request_id: probe.pendingId,
          job_id: probe.pendingJob,
          function_name: "echo",
          params: {},
          context: {
            job_id: probe.pendingJob,
            attempt: 1,
            enqueue_time: "2026-01-01T00:00:00Z",
            queue_name: "q",
          },
        })
        .then(
          (outcome) => (probe.settled = { ok: true, outcome }),
          (error: unknown) => (probe.settled = { ok: false, error }),
        );
      const t0 = performance.now();
      try {
        const cuts = [
          0,
          ...Array.from({ length: rng.int(0, 2) }, () => rng.int(0, input.length)),
          input.length,
        ].sort((a, b) => a - b);
        for (let c = 0; c + 1 < cuts.length; c++)
          socket.emit("data", input.subarray(cuts[c], cuts[c + 1]));
        if (rng.chance(0.5)) {
          probe.ended = true;
          socket.emit("end");
        }
      } catch (error) {
        problem(
          "crashes",
          `threw ${(error as Error).message}`,
          (error as Error).stack ?? "",
          input,
        );
      }
      const ms = performance.now() - t0;
      report.slowest_ms = Math.max(report.slowest_ms, ms);
      // Wall time on a shared machine: only a real stall counts (slowest_ms shows the rest).
      if (ms > 10_000) problem("hangs", "one input took over 10 s", `${ms.toFixed(0)} ms`, input);
      probes.push(probe);
      report.inputs++;
    }
    await new Promise((resolve) => setImmediate(resolve));
    for (const probe of probes) check(probe);
  }

  function check(p: Probe): void {
    const { input } = p;
    const ideal = p.ideal;
    const reason = p.closeReason;
    const fail = (category: string, detail = "") => problem("violations", category, detail, input);
    if (ideal.kind === "error") report.rejected++;
    else if (ideal.kind === "incomplete") report.incomplete++;
    else report.accepted++;
    for (const frame of p.delivered) {
      const why = schemaProblem(frame);
      if (why)
        problem(
          "schema_divergences",
          `parseFrame accepts, schema rejects: ${why.replace(/ must be .*$/, "")}`,
          why,
          input,
        );
    }
    if (ideal.kind === "error" && ideal.code === "invalid_frame") {
      const body = frameModel(input).bodies[ideal.frames.length];
      if (body && !schemaProblem(codec.decodeBody(body)))
        problem(
          "schema_divergences",
          `parseFrame refuses, schema accepts: ${ideal.message.replace(/^invalid_frame: /, "")}`,
          "",
          input,
        );
    }
    if (p.delivered.length > ideal.frames.length)
      fail("delivered more frames than the input holds");
    if (reason?.kind === "decode") {
      const code = reason.error.code;
      if (ideal.kind === "error") {
        if (p.delivered.length < ideal.frames.length)
          fail(
            "valid frames before a decoding error were dropped (FrameDecoder checks every length prefix of a chunk before delivering its bodies)",
            `${ideal.frames.length - p.delivered.length} of ${ideal.frames.length} dropped; closed with ${code}, first error in stream order is ${ideal.code}`,
          );
        else if (code !== ideal.code)
          fail(`closed with ${code} where the first error is ${ideal.code}`);
      } else if (ideal.kind === "incomplete") {
        if (code !== "frame_truncated" || !p.ended)
          fail(`closed with ${code} on an incomplete input (ended ${p.ended})`);
        else if (p.delivered.length !== ideal.frames.length)
          fail("frames before a truncated tail were dropped");
      } else fail(`closed with ${code} on a valid input`);
    } else if (reason?.kind === "local") {
      if (!p.strict) fail("closed locally without strict mode");
    } else if (reason?.kind === "eof") {
      if (!p.ended || ideal.kind !== "valid") fail(`clean EOF close on a ${ideal.kind} input`);
      if (p.delivered.length !== ideal.frames.length) fail("frames dropped before a clean EOF");
    } else if (reason?.kind === "io") {
      fail(`io close: ${reason.error.message}`);
    } else {
      if (ideal.kind === "error")
        fail(`stayed open on an input with a decoding error (${ideal.code})`);
      if (ideal.kind === "incomplete" && p.ended) fail("stayed open after EOF inside a frame");
      if (!p.strict && p.delivered.length !== ideal.frames.length)
        fail("did not deliver every complete frame");
    }
    if (reason && (reason.kind === "decode" || reason.kind === "io") && !p.socket.destroyed)
      fail("a decoding error did not destroy the stream");
    // The pending request: failed as a transport error on close, resolved only by its outcome.
    const ours = p.delivered.find(
      (f) =>
        f.type === "response" &&
        (f.payload.request_id === p.pendingId || f.payload.request_id == null),
    );
    if (reason && !p.settled) fail("connection closed but the pending request was not failed");
    if (p.settled && !p.settled.ok && !(p.settled.error instanceof RunnerError))
      fail(
        "the pending request failed with something other than a RunnerError",
        String(p.settled.error),
      );
    if (p.settled?.ok) {
      const payload = ours?.payload as ExecutionOutcome | undefined;
      if (!payload || payload.request_id !== p.pendingId || payload.job_id !== p.pendingJob)
        fail("the pending request resolved without its own outcome");
    }
    if (!reason && !ours && p.settled)
      fail("the pending request settled without a close or an outcome");
  }

  Error.stackTraceLimit = stackLimit;
  report.seconds = (performance.now() - started) / 1000;
  report.rate_per_s = Math.round(report.inputs / report.seconds);
  return report;
}
