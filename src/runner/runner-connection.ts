import {
  cancelFrame,
  pingFrame,
  requestFrame,
  type CloseReason,
  type ExecutionOutcome,
  type ExecutionRequest,
  type Frame,
  type FrameChannel,
  type Hello,
} from "@rrqkit/runner/protocol";
import { RunnerError } from "../errors.js";
import { captureLine, type CaptureListener, type CapturedStream } from "../live/capture.js";
import type { LiveListener, OutputPayload, ProgressPayload } from "../live/frames.js";

/** A request's listener: its live frames, and its process's captured lines (live/capture.ts). */
export type RequestListener = LiveListener & CaptureListener;

/**
 * Who waits for one request's outcome ({@link RunnerConnection.dispatch}): told exactly once,
 * with the outcome or with why there will be none.
 */
export interface OutcomeWaiter {
  readonly jobId: string;
  /** Receives the request's progress and output frames (requests sent with `live`). */
  readonly live: RequestListener | undefined;
  resolve(outcome: ExecutionOutcome): void;
  reject(error: RunnerError): void;
}

type Pending = OutcomeWaiter;

/** Optional checks and observers of a {@link RunnerConnection}. */
export interface RunnerConnectionOptions {
  /** Throws for a frame that breaks the schemas (strict mode); the connection is then closed. */
  validate?: (frame: Frame) => void;
  /** Diagnostics (unknown ids, protocol violations). */
  log?: (message: string) => void;
  /**
   * `[rrq.runner_capture]` of the runner: capture its process's stdout/stderr lines. Takes
   * effect only for a managed process, whose pipes the orchestrator reads
   * ({@link RunnerConnection.enableCapture}).
   */
  capture?: boolean;
}

/**
 * The orchestrator side of one persistent runner connection: sends requests, matches
 * outcomes to them by request_id (RRQ 0.11 rules, rrq-0.11-facts §3.7), and fails every pending
 * request when the connection closes.
 */
export class RunnerConnection {
  private readonly pending = new Map<string, Pending>();
  private readonly closeHandlers: Array<(reason: CloseReason) => void> = [];
  private readonly pongWaiters = new Map<string, () => void>();
  private helloFrame: Hello | undefined;
  private helloWaiters: Array<(hello: Hello) => void> = [];
  /**
   * Live frames (progress, output) for requests that are not pending (unknown, finished or
   * abandoned): ignored and counted (live-design §3).
   */
  ignoredLiveFrames = 0;
  private capturing = false;

  constructor(
    readonly frames: FrameChannel,
    private readonly options: RunnerConnectionOptions = {},
  ) {
    frames.on({
      frame: (frame) => this.receive(frame),
      close: (reason) => this.closed(reason),
    });
  }

  /** The runner's hello, once received (rrqkit runners only). */
  get hello(): Hello | undefined {
    return this.helloFrame;
  }

  /** True when the lines its process prints go to the output of its sole in-flight request. */
  get captures(): boolean {
    return this.capturing;
  }

  /**
   * Called for a managed runner process, whose stdout/stderr the orchestrator reads: capture
   * starts when the runner's config asks for it (`capture`).
   */
  enableCapture(): void {
    this.capturing = this.options.capture === true;
  }

  /**
   * One line the process printed: appended to the output of its request in flight when it has
   * exactly one (live/capture.ts). False when the line was not captured.
   */
  captureLine(stream: CapturedStream, line: string): boolean {
    return this.capturing && captureLine(this.pending, stream, line);
  }

  /** Requests awaiting an outcome. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** True once the underlying connection closed. */
  get isClosed(): boolean {
    return this.frames.closed;
  }

  /**
   * Registers a close observer; on a connection that is already closed it runs at once (else a
   * runner that closed the connection while the pool waited for its hello left its slot
   * "ready" with a dead connection and a live process forever: found by the chaos suite).
   */
  onClose(handler: (reason: CloseReason) => void): void {
    const reason = this.frames.closeReason;
    if (reason) handler(reason);
    else this.closeHandlers.push(handler);
  }

  /** Resolves with the hello frame, or undefined after `timeoutMs` or on close. */
  waitForHello(timeoutMs: number): Promise<Hello | undefined> {
    if (this.helloFrame || this.isClosed) return Promise.resolve(this.helloFrame);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      this.helloWaiters.push((hello) => {
        clearTimeout(timer);
        resolve(hello);
      });
      this.onClose(() => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
  }

  /**
   * Sends a request and resolves with its outcome. Rejects with a {@link RunnerError}
   * (`runner_transport`) when the connection fails or the runner breaks the matching rules.
   */
  execute(request: ExecutionRequest, live?: RequestListener): Promise<ExecutionOutcome> {
    return new Promise((resolve, reject) =>
      this.dispatch(request, { jobId: request.job_id, live, resolve, reject }),
    );
  }

  /**
   * {@link execute} for a caller that is its own waiter (the orchestrator's attempt: no
   * promise or closures per request). `waiter.jobId` must be the request's job_id. A closed
   * connection or a frame that cannot be sent rejects the waiter before this returns.
   * `canonical`: the request already holds every field `requestFrame` writes, in its order and
   * with its defaults filled in (the orchestrator's own requests), so it is sent as it is
   * instead of copied.
   */
  dispatch(request: ExecutionRequest, waiter: OutcomeWaiter, canonical = false): void {
    if (this.isClosed) {
      waiter.reject(new RunnerError("runner_transport", "runner connection closed"));
      return;
    }
    this.pending.set(request.request_id, waiter);
    try {
      this.frames.send(canonical ? { type: "request", payload: request } : requestFrame(request));
    } catch (error) {
      this.pending.delete(request.request_id);
      waiter.reject(
        new RunnerError("runner_transport", `cannot send request: ${(error as Error).message}`, {
          cause: error,
        }),
      );
    }
  }

  /**
   * Stops waiting for a request; a late outcome for it is dropped. Returns false when the
   * request was not pending any more (its outcome already arrived).
   */
  abandon(requestId: string): boolean {
    return this.pending.delete(requestId);
  }

  /** True while the request awaits an outcome. */
  isPending(requestId: string): boolean {
    return this.pending.has(requestId);
  }

  /** Sends a cancel frame for one request, or for every request of a job. */
  cancel(jobId: string, requestId?: string): void {
    try {
      this.frames.send(cancelFrame({ job_id: jobId, request_id: requestId ?? null }));
    } catch {
      // a closed connection cancels everything anyway
    }
  }

  /** Sends a ping and resolves true when the pong arrives within `timeoutMs`. */
  ping(timeoutMs: number): Promise<boolean> {
    if (!this.helloFrame?.features.includes("ping") || this.isClosed) return Promise.resolve(false);
    const nonce = Math.random().toString(36).slice(2);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pongWaiters.delete(nonce);
        resolve(false);
      }, timeoutMs);
      this.pongWaiters.set(nonce, () => {
        clearTimeout(timer);
        resolve(true);
      });
      this.frames.send(pingFrame("ping", { nonce }));
    });
  }

  /** Closes the connection; pending requests fail. */
  close(): void {
    this.frames.close();
  }

  private receive(frame: Frame): void {
    try {
      this.options.validate?.(frame);
    } catch (error) {
      this.options.log?.(`runner sent a frame that breaks the schema: ${(error as Error).message}`);
      this.frames.close();
      return;
    }
    // progress and output (issue 23) are routed by request id before the typed switch: the
    // frame union of the wire types may not list them
    const type = frame.type as string;
    if (type === "progress" || type === "output") {
      this.onLive(type, (frame as unknown as { payload: ProgressPayload | OutputPayload }).payload);
      return;
    }
    switch (frame.type) {
      case "response":
        this.onOutcome(frame.payload);
        return;
      case "hello":
        this.helloFrame = frame.payload;
        for (const waiter of this.helloWaiters.splice(0)) waiter(frame.payload);
        return;
      case "pong":
        this.pongWaiters.get(frame.payload.nonce)?.();
        this.pongWaiters.delete(frame.payload.nonce);
        return;
      default:
        this.options.log?.(`ignoring unexpected '${frame.type}' frame from runner`);
    }
  }

  /**
   * Hands a live frame to its request's listener. A frame of a request that is not pending, or
   * whose job_id is not the request's, is ignored and counted; a listener that throws costs
   * only its frame (a live frame must never disturb the request's outcome).
   */
  private onLive(type: "progress" | "output", payload: ProgressPayload | OutputPayload): void {
    const pending = this.pending.get(payload.request_id);
    if (!pending?.live || pending.jobId !== payload.job_id) {
      this.ignoredLiveFrames++;
      return;
    }
    try {
      if (type === "progress") pending.live.progress?.(payload as ProgressPayload);
      else pending.live.output?.(payload as OutputPayload);
    } catch (error) {
      this.options.log?.(`live ${type} frame handler failed: ${(error as Error).message}`);
    }
  }

  private onOutcome(outcome: ExecutionOutcome): void {
    const requestId = outcome.request_id;
    if (requestId == null) {
      this.onOutcomeWithoutId(outcome);
      return;
    }
    const pending = this.pending.get(requestId);
    if (!pending) {
      this.options.log?.(`dropping outcome for unknown or abandoned request ${requestId}`);
      return;
    }
    this.pending.delete(requestId);
    if (outcome.job_id !== pending.jobId) {
      pending.reject(
        new RunnerError(
          "runner_transport",
          `runner outcome job_id mismatch (expected ${pending.jobId}, got ${String(outcome.job_id)})`,
        ),
      );
      return;
    }
    pending.resolve(outcome);
  }

  private onOutcomeWithoutId(outcome: ExecutionOutcome): void {
    if (this.pending.size === 0) return;
    if (this.pending.size === 1) {
      const [id, pending] = this.pending.entries().next().value!;
      this.pending.delete(id);
      pending.reject(
        new RunnerError("runner_transport", `runner outcome missing request_id (expected ${id})`),
      );
      return;
    }
    this.options.log?.(
      `outcome without request_id while ${this.pending.size} requests are pending; closing (job ${String(outcome.job_id)})`,
    );
    this.frames.close();
  }

  private closed(reason: CloseReason): void {
    const detail =
      reason.kind === "decode"
        ? `runner connection closed: ${reason.error.message}`
        : reason.kind === "io"
          ? `runner connection failed: ${reason.error.message}`
          : "runner connection closed";
    for (const pending of this.pending.values())
      pending.reject(new RunnerError("runner_transport", detail));
    this.pending.clear();
    for (const handler of this.closeHandlers) handler(reason);
  }
}
