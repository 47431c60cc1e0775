import {
  ErrorTypes,
  HELLO_ENV,
  MAX_IN_FLIGHT_PER_CONNECTION,
  Messages,
  OUTCOME_TOO_LARGE,
  PROTOCOL_VERSION,
  TAGS_ENV,
} from "../protocol/constants.js";
import type { JobCatalog } from "../contracts/index.js";
import { Deadline, Deadlines } from "../protocol/deadlines.js";
import { FrameEncodeError } from "../protocol/errors.js";
import type { FrameChannel } from "../protocol/frame-connection.js";
import { helloFrame, pingFrame, responseFrame } from "../protocol/frames.js";
import type {
  CancelRequest,
  ExecutionOutcome,
  ExecutionRequest,
  Frame,
  Hello,
} from "../protocol/generated/wire.js";
import { LiveChannel, RequestContext, runnerTags } from "./live.js";
import { runMiddleware, type Middleware } from "./middleware.js";
import { errorOutcome, outcomeFor, thrownOutcome } from "./outcome.js";
import type { AnyRegistry, Handler } from "./registry.js";
import { noopTelemetry, type RunnerTelemetry, type RunSpan } from "./telemetry.js";
import { RUNTIME_NAME, RUNTIME_VERSION } from "./version.js";

/** Options of a {@link RunnerRuntime}. */
export interface RunnerRuntimeOptions {
  /** Span hooks; defaults to none. */
  telemetry?: RunnerTelemetry;
  /** Send a hello frame first on each connection. Defaults to `RRQ_RUNNER_HELLO=1`. */
  hello?: boolean;
  /** Where runtime diagnostics go (stderr by default; never stdout). */
  log?: (message: string) => void;
  /**
   * Job contracts: the params of a catalogued function are checked before its handler runs; a
   * failure is an `error` outcome of type `invalid_params` (not retried by rrqkit). `runFromArgs`
   * loads `RRQ_JOB_CATALOG` when this is not given.
   */
  catalog?: JobCatalog;
  /**
   * Capability tags the hello announces (RUNNER_PROTOCOL.md §8): jobs enqueued with
   * `requires` go only to runner processes whose tags cover them. Merged with the
   * comma-separated `RRQ_RUNNER_TAGS`, deduplicated and sorted. Each tag is 1 to 64 characters
   * of `A-Za-z0-9_.:/=-`, at most 32 tags.
   * @throws RangeError from the constructor for an invalid tag (in code or in the variable).
   */
  tags?: readonly string[];
}

/**
 * Every request's deadline, one timer per distinct duration: a timer and its closure per
 * request were a fixed part of each job's garbage (bench/alloc-per-job.ts).
 */
const requestDeadlines = new Deadlines();

/** One accepted request, from acceptance until its single outcome is written. */
class InFlight extends Deadline {
  /** Only for a handler that takes the signal ({@link takesSignal}). */
  controller?: AbortController;
  span?: RunSpan;
  /**
   * Only for a request whose `live` enables progress or output frames (§13), and only once its
   * handler can send them (it takes the request context).
   */
  live?: LiveChannel;
  finished = false;

  constructor(
    readonly request: ExecutionRequest,
    readonly connection: FrameChannel,
    private readonly onExpired: (entry: InFlight) => void,
  ) {
    super();
  }

  expired(): void {
    this.onExpired(this);
  }
}

const FEATURES = ["ping", "cancel_by_job", "stdout_guard", "progress", "output"];

/**
 * Whether a handler is given an AbortSignal: every one except a function declaring exactly one
 * parameter (the request). Node 20 takes about 3 µs to create an AbortSignal (2.8 µs in a
 * tight loop, plus the garbage it leaves): 5–15 % of the daemon's CPU per no-op job with
 * in-process handlers in A/B runs (bench/RESULTS.md). A handler declared as `(request) => …`
 * cannot see one. Zero declared parameters (`(...args)`, `arguments`) still get it, as do two
 * or more.
 */
function takesSignal(handler: Handler): boolean {
  return handler.length !== 1;
}

/**
 * Executes requests from any number of frame connections against a {@link Registry}, following
 * RUNNER_PROTOCOL.md: at most 64 in flight per connection, exactly one outcome per request,
 * deadlines, cancel by request or by job (process-wide), and abort on connection close.
 */
export class RunnerRuntime {
  private readonly byRequest = new Map<string, InFlight>();
  /** A job's requests: the entry itself, or a set when a job has several in flight (rare). */
  private readonly byJob = new Map<string, InFlight | Set<InFlight>>();
  private readonly byConnection = new Map<FrameChannel, Set<InFlight>>();
  private readonly telemetry: RunnerTelemetry;
  private readonly hello: boolean;
  private readonly tags: string[];
  private readonly log: (message: string) => void;
  private readonly catalog: JobCatalog | undefined;

  constructor(
    readonly registry: AnyRegistry,
    options: RunnerRuntimeOptions = {},
  ) {
    this.telemetry = options.telemetry ?? noopTelemetry;
    this.hello = options.hello ?? process.env[HELLO_ENV] === "1";
    this.tags = runnerTags(options.tags, process.env[TAGS_ENV]);
    this.log = options.log ?? ((message) => process.stderr.write(`[rrqkit-runner] ${message}\n`));
    this.catalog = options.catalog;
    this.expired = (entry) => this.timeout(entry, Messages.executionTimedOut);
  }

  /** What a request's deadline does (one function for every request). */
  private readonly expired: (entry: InFlight) => void;

  /** Number of requests in flight across all connections. */
  get inFlightCount(): number {
    return this.byRequest.size;
  }

  /** Serves one connection until it closes. */
  serve(connection: FrameChannel): void {
    this.byConnection.set(connection, new Set());
    connection.on({
      frame: (frame) => this.dispatch(connection, frame),
      close: (reason) => {
        if (reason.kind === "decode") this.log(`closing connection: ${reason.error.message}`);
        this.dropConnection(connection);
      },
    });
    if (this.hello) {
      const hello: Hello = {
        protocol_version: PROTOCOL_VERSION,
        runtime: RUNTIME_NAME,
        runtime_version: RUNTIME_VERSION,
        pid: process.pid,
        max_in_flight: MAX_IN_FLIGHT_PER_CONNECTION,
        features: FEATURES,
      };
      if (this.tags.length > 0) hello.tags = this.tags; // left out when there are none
      connection.send(helloFrame(hello));
    }
  }

  /** Aborts every request on every connection (no outcomes are written) and closes them. */
  closeAll(): void {
    for (const connection of [...this.byConnection.keys()]) connection.close();
  }

  private dispatch(connection: FrameChannel, frame: Frame): void {
    switch (frame.type) {
      case "request":
        this.accept(connection, frame.payload);
        return;
      case "cancel":
        this.cancel(frame.payload);
        return;
      case "ping":
        connection.send(pingFrame("pong", frame.payload));
        return;
      case "response":
        connection.send(
          responseFrame({
            job_id: "unknown",
            request_id: null,
            status: "error",
            error: { message: Messages.unexpectedResponse },
          }),
        );
        return;
      case "hello":
      case "pong":
      case "progress":
      case "output":
        return; // frames a runner only sends; ignored
    }
  }

  private accept(connection: FrameChannel, request: ExecutionRequest): void {
    const version = request.protocol_version;
    if (version != null && version !== PROTOCOL_VERSION) {
      this.reply(connection, errorOutcome(request, "error", Messages.unsupportedVersion));
      return;
    }
    const open = this.byConnection.get(connection);
    if (!open || open.size >= MAX_IN_FLIGHT_PER_CONNECTION) {
      this.reply(connection, errorOutcome(request, "error", Messages.busy));
      return;
    }
    if (this.byRequest.has(request.request_id)) {
      const message = `Duplicate request_id '${request.request_id}' is already in flight`;
      this.reply(connection, errorOutcome(request, "error", message));
      return;
    }
    const entry = new InFlight(request, connection, this.expired);
    this.track(entry, open);
    this.run(entry);
  }

  /**
   * Runs the request's handler. A handler that returns a value (not a promise) is answered at
   * once, without an async frame; a promise is awaited in {@link settle}.
   */
  private run(entry: InFlight): void {
    const { request } = entry;
    entry.span = this.telemetry.startRun(request);
    const deadline = request.context.deadline;
    if (deadline != null) {
      const remaining = Date.parse(deadline) - Date.now();
      if (!(remaining > 0)) {
        this.timeout(entry, Messages.deadlineExceeded);
        return;
      }
      requestDeadlines.arm(entry, remaining);
    }
    const handler = this.registry.get(request.function_name);
    if (!handler) {
      const message = Messages.handlerNotFound(request.function_name);
      this.finish(entry, errorOutcome(request, "error", message, ErrorTypes.handlerNotFound));
      return;
    }
    const problem = this.catalog?.checkParams(request.function_name, request.params ?? {});
    if (problem) {
      // The handler never sees params its contract forbids; retrying would fail the same way.
      this.finish(entry, errorOutcome(request, "error", problem.message, ErrorTypes.invalidParams));
      return;
    }
    let result: unknown;
    try {
      result = this.call(entry, handler);
    } catch (thrown) {
      this.finish(entry, thrownOutcome(request, thrown));
      return;
    }
    if (isThenable(result)) void this.settle(entry, result);
    else this.finishWith(entry, result);
  }

  /** Waits for a handler's promise, then answers. */
  private async settle(entry: InFlight, pending: PromiseLike<unknown>): Promise<void> {
    let result: unknown;
    try {
      result = await pending;
    } catch (thrown) {
      this.finish(entry, thrownOutcome(entry.request, thrown)); // ignored if already answered
      return;
    }
    this.finishWith(entry, result);
  }

  /** Answers with a handler's return value (its outcome, or an error if it is not one). */
  private finishWith(entry: InFlight, result: unknown): void {
    if (entry.finished) return;
    let outcome: ExecutionOutcome;
    try {
      outcome = outcomeFor(entry.request, result);
    } catch (thrown) {
      outcome = thrownOutcome(entry.request, thrown);
    }
    this.finish(entry, outcome);
  }

  /** Calls the handler, through the registry's middlewares when it has any. */
  private call(entry: InFlight, handler: Handler): unknown {
    const { request } = entry;
    // A duck-typed registry (get + names, e.g. an in-process handlers module) has no chain.
    const middlewares = this.registry.middlewares as readonly Middleware[] | undefined;
    if (middlewares !== undefined && middlewares.length > 0) {
      // Middlewares always get the signal and the context: they cannot tell what the handler takes.
      const signal = (entry.controller = new AbortController()).signal;
      const job = new RequestContext(request, this.liveOf(entry), this.log);
      return runMiddleware(middlewares, handler, request, { signal, job });
    }
    if (!takesSignal(handler)) return (handler as (request: ExecutionRequest) => unknown)(request);
    return handler(
      request,
      (entry.controller = new AbortController()).signal,
      // Goes with the signal, so a wrapper passing (request, signal, ctx) on keeps it.
      new RequestContext(request, this.liveOf(entry), this.log),
    );
  }

  /** The request's live channel, made when its handler gets the context that sends frames. */
  private liveOf(entry: InFlight): LiveChannel | undefined {
    if (entry.live === undefined && LiveChannel.wanted(entry.request))
      entry.live = new LiveChannel(entry.request, entry.connection, this.log);
    return entry.live;
  }

  private timeout(entry: InFlight, message: string): void {
    if (entry.finished) return;
    entry.controller?.abort(new DOMException(message, "TimeoutError"));
    this.finish(entry, errorOutcome(entry.request, "timeout", message, ErrorTypes.timeout));
  }

  /** Cancels one request, or every request of a job (RUNNER_PROTOCOL.md §9). */
  cancel(cancel: CancelRequest): void {
    if (cancel.protocol_version != null && cancel.protocol_version !== PROTOCOL_VERSION) return;
    const targets =
      cancel.request_id != null
        ? [this.byRequest.get(cancel.request_id)].filter((e) => e?.request.job_id === cancel.job_id)
        : this.ofJob(cancel.job_id);
    for (const entry of targets) {
      if (!entry || entry.finished) continue;
      entry.controller?.abort(new DOMException(Messages.cancelled, "AbortError"));
      this.finish(
        entry,
        errorOutcome(entry.request, "error", Messages.cancelled, ErrorTypes.cancelled),
      );
    }
  }

  /** Writes the single outcome of a request; later calls for the same request do nothing. */
  private finish(entry: InFlight, outcome: ExecutionOutcome): void {
    if (entry.finished) return;
    this.untrack(entry);
    // Live frames still due go out first: they always precede the response (§13.4).
    entry.live?.close();
    entry.span?.end(outcome);
    this.reply(entry.connection, outcome);
  }

  private reply(connection: FrameChannel, outcome: ExecutionOutcome): void {
    try {
      connection.send(responseFrame(outcome));
    } catch (error) {
      if (!(error instanceof FrameEncodeError)) throw error;
      // The handler's result cannot travel (too large or not encodable): the request still gets
      // its one outcome, an error that says why.
      const type = error.code === "frame_too_large" ? OUTCOME_TOO_LARGE : "OutcomeNotEncodable";
      connection.send(
        responseFrame(
          errorOutcome(outcome, "error", `Outcome could not be sent: ${error.message}`, type),
        ),
      );
    }
  }

  private dropConnection(connection: FrameChannel): void {
    const open = this.byConnection.get(connection);
    this.byConnection.delete(connection);
    for (const entry of open ?? []) {
      if (entry.finished) continue;
      entry.controller?.abort(new DOMException("Connection closed", "AbortError"));
      entry.live?.discard();
      this.untrack(entry);
      entry.span?.end(
        errorOutcome(entry.request, "error", "Connection closed", ErrorTypes.cancelled),
      );
    }
  }

  /** The requests of a job in flight, as a new array. */
  private ofJob(jobId: string): InFlight[] {
    const found = this.byJob.get(jobId);
    if (found === undefined) return [];
    return found instanceof InFlight ? [found] : [...found];
  }

  private track(entry: InFlight, open: Set<InFlight>): void {
    open.add(entry);
    this.byRequest.set(entry.request.request_id, entry);
    const jobId = entry.request.job_id;
    const found = this.byJob.get(jobId);
    if (found === undefined) this.byJob.set(jobId, entry);
    else if (found instanceof InFlight) this.byJob.set(jobId, new Set([found, entry]));
    else found.add(entry);
  }

  private untrack(entry: InFlight): void {
    entry.finished = true;
    requestDeadlines.disarm(entry);
    this.byConnection.get(entry.connection)?.delete(entry);
    this.byRequest.delete(entry.request.request_id);
    const jobId = entry.request.job_id;
    const found = this.byJob.get(jobId);
    if (found === entry) this.byJob.delete(jobId);
    else if (found instanceof Set) {
      found.delete(entry);
      if (found.size === 0) this.byJob.delete(jobId);
    }
  }
}

/** True for a promise or any object with a `then` method (awaited as one). */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}
