import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cancelFrame, requestFrame, type Frame, type LiveOptions } from "@rrqkit/runner/protocol";
import { nestedArray, repoRoot, type Case } from "./cases.js";
import { pathGet, text } from "./matching.js";
import { HarnessConnection, type RunnerSession } from "./runner-session.js";

type Step = Record<string, unknown>;

/** A request the case sent, by alias. */
export interface SentRequest {
  alias: string;
  payload: Record<string, unknown>;
  connection: string;
}

/** A failure of a case: the rule broken and what was seen. */
export interface Failure {
  rule: string;
  message: string;
}

/** Thrown by a step whose expectation failed: the case stops there. */
export class CaseFailed extends Error {
  override readonly name = "CaseFailed";
  constructor(readonly failure: Failure) {
    super(`${failure.rule}: ${failure.message}`);
  }
}

/**
 * The state of one runner case while it runs: connections and requests by alias, and the
 * actions of `when` steps. Expectations live in runner-checks.ts.
 */
export class RunnerScript {
  readonly connections = new Map<string, HarnessConnection>();
  readonly requests = new Map<string, SentRequest>();
  readonly jobs = new Map<string, string>();
  readonly pings = new Map<string, string>();
  /** Received-frame counts per connection when a vector was sent (for "closed without reply"). */
  readonly marks = new Map<string, number>();
  /** True once the case sent a `response` frame (so a reply with request_id null is expected). */
  sentResponseFrame = false;

  constructor(
    readonly testCase: Case,
    readonly session: RunnerSession,
  ) {}

  /** Resolves `$ref` names: `a.request_id`, `a.context.worker_id`, `a.params`, or a job alias. */
  resolve = (ref: string): unknown => {
    const [alias, ...rest] = ref.split(".");
    const sent = this.requests.get(alias!);
    if (sent) return rest.length ? pathGet(sent.payload, rest.join(".")) : sent.payload;
    return this.jobs.get(alias!);
  };

  connection(alias = "main"): HarnessConnection {
    const connection = this.connections.get(alias);
    if (!connection) throw new Error(`case uses connection '${alias}' before connecting it`);
    return connection;
  }

  /** Opens a connection. Over sockets each is new; stdio has exactly one. */
  async connect(alias: string): Promise<void> {
    const reused = this.session.stdio !== undefined;
    const connection = await this.session.connect();
    if (reused) {
      // The one stdio connection outlives cases; each case judges only what it caused.
      connection.received.length = 0;
      connection.violations.length = 0;
      connection.forgetRequests();
    }
    this.connections.set(alias, connection);
  }

  /** Runs one `when` step. */
  async step(step: Step): Promise<void> {
    const on = typeof step.on === "string" ? step.on : "main";
    if ("request" in step) return this.sendRequests([step], on);
    if ("requests" in step) return this.sendRequests(step.requests as Step[], on);
    if ("cancel" in step || "cancel_job" in step) return this.sendCancel(step, on);
    if ("response_frame" in step) {
      this.sentResponseFrame = true;
      this.connection(on).send({
        type: "response",
        payload: step.response_frame as never,
      });
      return;
    }
    if ("vector" in step) return this.sendVector(step, on);
    if ("connect" in step) return this.connect(String(step.connect));
    if ("close" in step) return this.connection(String(step.close)).close();
    if ("end_input" in step) return this.endInput(String(step.end_input));
    if ("signal" in step) return this.signal(String(step.signal));
    if ("kill_parent" in step) {
      // SIGKILL: the stand-in parent gets no chance to pass anything on (RUNNER_PROTOCOL.md §5).
      if (this.session.pid !== undefined) process.kill(this.session.pid, "SIGKILL");
      return;
    }
    if ("ping" in step) {
      const features = this.connection(on).hello?.payload as { features?: unknown } | undefined;
      if (!Array.isArray(features?.features) || !features.features.includes("ping"))
        throw new CaseFailed({
          rule: "ping only goes to runners whose hello lists it (RUNNER_PROTOCOL.md §8.4)",
          message: "the runner's hello does not list the ping feature",
        });
      const nonce = `nonce-${randomUUID()}`;
      this.pings.set(String(step.ping), nonce);
      this.connection(on).send({ type: "ping", payload: { nonce } });
      return;
    }
    throw new Error(`unknown step ${JSON.stringify(step)}`);
  }

  /** Builds a request frame from a step: fresh ids, context from the step, then edits. */
  buildRequest(step: Step, alias: string, on: string): Frame {
    const jobAlias = typeof step.job === "string" ? step.job : `${alias}.job`;
    let jobId = this.jobs.get(jobAlias);
    if (!jobId) {
      jobId = `job-${randomUUID()}`;
      this.jobs.set(jobAlias, jobId);
    }
    const c = (step.context ?? {}) as Record<string, unknown>;
    const deadlineMs = "deadline_ms" in c ? (c.deadline_ms as number | null) : 30_000;
    const now = Date.now();
    const frame = requestFrame({
      protocol_version: "2",
      request_id: `req-${randomUUID()}`,
      job_id: jobId,
      function_name: text(step.function, "echo"),
      params: requestParams(step),
      context: {
        job_id: jobId,
        attempt: (c.attempt as number | undefined) ?? 1,
        enqueue_time: new Date(
          now - ((c.enqueued_ms_ago as number | undefined) ?? 5),
        ).toISOString(),
        queue_name: (c.queue_name as string | undefined) ?? "rrq:queue:conformance",
        deadline: deadlineMs === null ? null : new Date(now + deadlineMs).toISOString(),
        trace_context: (c.trace_context as Record<string, string> | undefined) ?? null,
        correlation_context: (c.correlation_context as Record<string, string> | undefined) ?? null,
        worker_id: "worker_id" in c ? (c.worker_id as string | null) : "conformance-worker",
      },
      live: (step.live as LiveOptions | undefined) ?? null,
    });
    const payload = frame.payload as unknown as Record<string, unknown>;
    if ("protocol_version" in step) {
      if (step.protocol_version === null) delete payload.protocol_version;
      else payload.protocol_version = step.protocol_version;
    }
    for (const path of (step.omit ?? []) as string[]) {
      const parts = path.split(".");
      const last = parts.pop()!;
      const holder = parts.length
        ? (pathGet(payload, parts.join(".")) as Record<string, unknown>)
        : payload;
      delete holder[last];
    }
    Object.assign(payload, step.extra ?? {});
    Object.assign(payload.context as object, step.context_extra ?? {});
    this.requests.set(alias, { alias, payload, connection: on });
    this.connections.get(on)?.noteRequest(payload);
    return frame;
  }

  /** Sends requests (a `count` expands to aliases `a#0`…); several steps share one write. */
  private sendRequests(steps: Step[], on: string): void {
    const connection = this.connection(on);
    const frames: Frame[] = [];
    for (const step of steps) {
      const alias = String(step.request);
      const count = typeof step.count === "number" ? step.count : undefined;
      if (count === undefined) frames.push(this.buildRequest(step, alias, on));
      else
        for (let i = 0; i < count; i++)
          frames.push(
            this.buildRequest({ ...step, job: step.job ?? `${alias}.job` }, `${alias}#${i}`, on),
          );
    }
    const bytes = Buffer.concat(frames.map((f) => connection.encode(f)));
    const chunk = steps.find((s) => typeof s.chunk_bytes === "number")?.chunk_bytes as
      number | undefined;
    if (!chunk) return connection.sendRaw(bytes);
    for (let i = 0; i < bytes.length; i += chunk) connection.sendRaw(bytes.subarray(i, i + chunk));
  }

  private sendCancel(step: Step, on: string): void {
    const byRequest = "cancel" in step;
    const target = String(byRequest ? step.cancel : step.cancel_job);
    const sent = this.requests.get(target);
    const jobId = sent
      ? String(sent.payload.job_id)
      : (this.jobs.get(target) ?? `job-unknown-${randomUUID()}`);
    const requestId = byRequest
      ? sent
        ? String(sent.payload.request_id)
        : `req-unknown-${randomUUID()}`
      : null;
    const frame = cancelFrame({
      job_id: jobId,
      request_id: requestId,
      hard_kill: step.hard_kill === true,
    });
    if ("protocol_version" in step)
      (frame.payload as unknown as Record<string, unknown>).protocol_version =
        step.protocol_version;
    this.connection(on).send(frame);
  }

  /**
   * Sends a golden vector's bytes: `name` is in `invalid/`, `accepted/name` in `accepted/`. With
   * `as`, the vector's first frame (a request, from the manifest) is known by that alias.
   */
  private sendVector(step: Step, on: string): void {
    const connection = this.connection(on);
    const encoding = this.session.options.encoding;
    const spec = step.vector;
    const name =
      typeof spec === "string" ? spec : String((spec as Record<string, unknown>)[encoding]);
    const [kind, base] = name.includes("/") ? name.split("/", 2) : ["invalid", name];
    const file = `${kind}/${encoding}/${base}.bin`;
    const bytes = readFileSync(join(repoRoot(), "protocol", "vectors", file));
    if (typeof step.as === "string") {
      const frame = vectorFrames(file)[0];
      if (frame?.type !== "request")
        throw new Error(`vector ${file} does not start with a request`);
      this.requests.set(step.as, { alias: step.as, payload: frame.payload, connection: on });
      connection.noteRequest(frame.payload);
    }
    this.marks.set(on, connection.received.length);
    connection.sendRaw(bytes);
    if (step.end === true) this.endInput(on);
  }

  /** Sends a signal to the runner's process group, as an orchestrator stops a runner. */
  private signal(name: string): void {
    const pid = this.session.pid;
    if (pid === undefined) throw new Error("the runner has no pid");
    process.kill(-pid, name);
  }

  /** Ends the harness→runner direction (stdin EOF on stdio, half-close on sockets). */
  private endInput(alias: string): void {
    const connection = this.connection(alias);
    if (this.session.spec.kind === "stdio") this.session.child.stdin?.end();
    else connection.halfClose();
  }
}

let manifest: Array<{ file: string; frames?: Array<{ type: string; payload: Step }> }> | undefined;

/** The decoded frames the vectors manifest lists for a vector file. */
function vectorFrames(file: string): Array<{ type: string; payload: Step }> {
  manifest ??= (
    JSON.parse(readFileSync(join(repoRoot(), "protocol", "vectors", "manifest.json"), "utf8")) as {
      vectors: NonNullable<typeof manifest>;
    }
  ).vectors;
  return manifest.find((v) => v.file === file)?.frames ?? [];
}

/**
 * A step's params; with `body_depth` they become `{deep: [[…]]}` nested so that the request body
 * is exactly that many levels deep (envelope 1, payload 2, params 3: RUNNER_PROTOCOL.md §4).
 */
function requestParams(step: Step): Record<string, unknown> {
  if (typeof step.body_depth !== "number") return (step.params ?? {}) as Record<string, unknown>;
  return { deep: nestedArray(step.body_depth - 3) };
}
