import type { LiveConfig } from "../config/live.js";
import type { RequestListener, RunnerConnection } from "../runner/runner-connection.js";
import { outputTtlSeconds, type LiveStore, type OutputCloseStatus } from "../store/live-store.js";
import type { CapturedStream } from "./capture.js";
import {
  DEFAULT_PROGRESS_INTERVAL_MS,
  type LiveRequest,
  type OutputPayload,
  type ProgressPayload,
} from "./frames.js";
import { OutputBudget, OutputWriter } from "./output.js";
import { ProgressCoalescer } from "./progress.js";

/** What the worker gives every attempt for live jobs (README "Live jobs"). */
export interface LiveContext {
  store: LiveStore;
  config: Pick<LiveConfig, "progressWritesPerSecond" | "outputMaxBytesPerAttempt">;
  /** Write failures (reported, never fatal to the job). */
  onError: (error: unknown) => void;
  /** Output dropped for a full connection buffer (the metric rrq_output_dropped_bytes_total). */
  dropped?: (jobId: string, runner: string, bytes: number) => void;
}

/** The last progress write before an outcome waits at most this long (outcomes come first). */
const FLUSH_BEFORE_OUTCOME_MS = 500;

const budgets = new WeakMap<RunnerConnection, OutputBudget>();
/** The output buffer budget of one runner connection (live-design §4: ≤ 4 MiB each). */
function budgetOf(connection: RunnerConnection): OutputBudget {
  let budget = budgets.get(connection);
  if (!budget) budgets.set(connection, (budget = new OutputBudget()));
  return budget;
}

/** One attempt's identity as live writes need it. */
export interface LiveAttemptRef {
  jobId: string;
  fence: string;
  /** The job's `runs` after this attempt's claim. */
  run: number;
  /** The job's result TTL in seconds (its own, else the default). */
  resultTtlSeconds: number;
  /** The runner's name (metric label). */
  runner: string;
}

/** A captured line as the output payload {@link OutputWriter.write} takes. */
const capturedPayload = (stream: CapturedStream, data: string) => ({
  job_id: "",
  request_id: "",
  seq: 0,
  stream,
  data,
  truncated: false,
  dropped_bytes: 0,
});

/** The `live` request fields, shared by every attempt with the same ones (sent, never changed). */
let lastLiveRequest: LiveRequest | undefined;
function liveRequest(progress: boolean, output: boolean, outputMaxBytes: number): LiveRequest {
  // one worker's runners almost always ask the same: the last one is the cache
  const last = lastLiveRequest;
  if (
    last?.progress === progress &&
    last.output === output &&
    last.output_max_bytes === outputMaxBytes
  )
    return last;
  return (lastLiveRequest = Object.freeze({
    progress,
    output,
    progress_interval_ms: DEFAULT_PROGRESS_INTERVAL_MS,
    output_max_bytes: outputMaxBytes,
  }));
}

/**
 * The live part of one attempt: the `live` field its request carries (only what the runner's
 * hello offered), the listener its progress and output frames (and, with
 * `[rrq.runner_capture]`, its process's printed lines) are routed to, and the writes around the
 * outcome (the last progress before it, the closed marker after it).
 *
 * Every attempt on an rrqkit runner has one, and most report nothing: it is its own listener
 * and makes its writers at the first report or chunk, so such an attempt costs this object only
 * (closures per attempt for listeners nobody called were a measurable part of the daemon's
 * garbage, bench/alloc-per-job.ts).
 */
export class LiveAttempt implements RequestListener {
  /** The request's `live` field, or undefined when the runner offered nothing live. */
  readonly request: LiveRequest | undefined;
  /** Whether anything live can happen (its request's `live`, or captured output). */
  readonly active: boolean;
  // The listener's handlers are present only for what the request enabled (their presence is
  // what the connection and capture check); shared functions, called on this object.
  readonly progress?: (payload: ProgressPayload) => void;
  readonly output?: (payload: OutputPayload) => void;
  readonly captured?: (stream: CapturedStream, data: string) => void;
  private progressCoalescer: ProgressCoalescer | undefined;
  private outputWriter: OutputWriter | undefined;

  constructor(
    private readonly ctx: LiveContext,
    private readonly ref: LiveAttemptRef,
    features: ReadonlySet<string>,
    private readonly connection: RunnerConnection,
  ) {
    const wantProgress = features.has("progress");
    const wantOutput = features.has("output") && ctx.config.outputMaxBytesPerAttempt > 0;
    // the orchestrator's own observation of the process: needs no feature, adds nothing to `live`
    const capture = connection.captures === true && ctx.config.outputMaxBytesPerAttempt > 0;
    this.request =
      wantProgress || wantOutput
        ? liveRequest(wantProgress, wantOutput, ctx.config.outputMaxBytesPerAttempt)
        : undefined;
    this.active = this.request !== undefined || capture;
    /* eslint-disable @typescript-eslint/unbound-method -- always called on this object */
    if (wantProgress) this.progress = LiveAttempt.onProgress;
    if (wantOutput) this.output = LiveAttempt.onOutput;
    if (capture) this.captured = LiveAttempt.onCaptured;
    /* eslint-enable @typescript-eslint/unbound-method */
  }

  /** The listener of the attempt's request: the attempt itself. */
  get listener(): RequestListener {
    return this;
  }

  // (function expressions, not methods: they are stored as the listener's handlers and always
  // called as methods of this object, `listener.progress(payload)`)
  private static readonly onProgress = function (this: LiveAttempt, payload: ProgressPayload) {
    this.coalescer().report(payload);
  };

  private static readonly onOutput = function (this: LiveAttempt, payload: OutputPayload) {
    this.writer().write(payload);
  };

  private static readonly onCaptured = function (
    this: LiveAttempt,
    stream: CapturedStream,
    data: string,
  ) {
    this.writer().write(capturedPayload(stream, data));
  };

  /**
   * Stores the last progress (bounded wait: the outcome is not held up for long). Undefined,
   * not a promise, when the attempt reported no progress (nothing to wait for).
   */
  beforeOutcome(): Promise<void> | undefined {
    const progress = this.progressCoalescer;
    if (!progress) return undefined;
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      progress.close(),
      new Promise((resolve) => (timer = setTimeout(resolve, FLUSH_BEFORE_OUTCOME_MS))),
    ]).then(() => clearTimeout(timer));
  }

  /** True when the attempt wrote output (its stream then needs its closed marker). */
  get hasOutput(): boolean {
    return this.outputWriter !== undefined;
  }

  /** Ends the output stream with its closed marker (after the outcome is written). */
  async afterOutcome(status: OutputCloseStatus): Promise<void> {
    const output = this.outputWriter;
    if (!output) return;
    await output.close(status);
    await this.dropped(output);
  }

  private coalescer(): ProgressCoalescer {
    const { ctx, ref } = this;
    return (this.progressCoalescer ??= new ProgressCoalescer(
      (value) => ctx.store.writeProgress(ref.jobId, ref.fence, value),
      ctx.config.progressWritesPerSecond,
      ctx.onError,
    ));
  }

  private writer(): OutputWriter {
    const { ctx, ref } = this;
    return (this.outputWriter ??= new OutputWriter(
      (entries) =>
        ctx.store.appendOutput(ref.jobId, ref.run, entries, outputTtlSeconds(ref.resultTtlSeconds)),
      ctx.config.outputMaxBytesPerAttempt,
      budgetOf(this.connection),
      ctx.onError,
    ));
  }

  /** Reports output dropped for a full connection buffer (metric and job hash). */
  private dropped(writer: OutputWriter): Promise<void> | undefined {
    if (writer.overflowDropped <= 0) return undefined;
    const { ctx, ref } = this;
    ctx.dropped?.(ref.jobId, ref.runner, writer.overflowDropped);
    return ctx.store
      .addDroppedBytes(ref.jobId, ref.fence, writer.overflowDropped)
      .catch(ctx.onError);
  }
}
