import type { LiveConfig } from "../config/live.js";
import type { RequestListener, RunnerConnection } from "../runner/runner-connection.js";
import { outputTtlSeconds, type LiveStore, type OutputCloseStatus } from "../store/live-store.js";
import type { CapturedStream } from "./capture.js";
import { DEFAULT_PROGRESS_INTERVAL_MS, type LiveRequest } from "./frames.js";
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

/**
 * The live part of one attempt: the `live` field its request carries (only what the runner's
 * hello offered), the listener its progress and output frames (and, with
 * `[rrq.runner_capture]`, its process's printed lines) are routed to, and the writes around the
 * outcome (the last progress before it, the closed marker after it).
 */
export class LiveAttempt {
  /** The request's `live` field, or undefined when the runner offered nothing live. */
  readonly request: LiveRequest | undefined;
  readonly listener: RequestListener;
  /** Whether anything live can happen (its request's `live`, or captured output). */
  readonly active: boolean;
  // Made at the first report or chunk: most attempts report nothing, and then cost nothing.
  private progress: ProgressCoalescer | undefined;
  private output: OutputWriter | undefined;

  constructor(
    ctx: LiveContext,
    ref: LiveAttemptRef,
    features: ReadonlySet<string>,
    connection: RunnerConnection,
  ) {
    const wantProgress = features.has("progress");
    const wantOutput = features.has("output") && ctx.config.outputMaxBytesPerAttempt > 0;
    // the orchestrator's own observation of the process: needs no feature, adds nothing to `live`
    const capture = connection.captures === true && ctx.config.outputMaxBytesPerAttempt > 0;
    const progress = () =>
      (this.progress ??= new ProgressCoalescer(
        (value) => ctx.store.writeProgress(ref.jobId, ref.fence, value),
        ctx.config.progressWritesPerSecond,
        ctx.onError,
      ));
    const output = () =>
      (this.output ??= new OutputWriter(
        (entries) =>
          ctx.store.appendOutput(
            ref.jobId,
            ref.run,
            entries,
            outputTtlSeconds(ref.resultTtlSeconds),
          ),
        ctx.config.outputMaxBytesPerAttempt,
        budgetOf(connection),
        ctx.onError,
      ));
    this.request =
      wantProgress || wantOutput
        ? {
            progress: wantProgress,
            output: wantOutput,
            progress_interval_ms: DEFAULT_PROGRESS_INTERVAL_MS,
            output_max_bytes: ctx.config.outputMaxBytesPerAttempt,
          }
        : undefined;
    this.active = this.request !== undefined || capture;
    this.listener = {
      progress: wantProgress ? (p) => progress().report(p) : undefined,
      output: wantOutput ? (o) => output().write(o) : undefined,
      captured: capture ? (s, data) => output().write(capturedPayload(s, data)) : undefined,
    };
    this.dropHook = (writer) => {
      if (writer.overflowDropped <= 0) return undefined;
      ctx.dropped?.(ref.jobId, ref.runner, writer.overflowDropped);
      return ctx.store
        .addDroppedBytes(ref.jobId, ref.fence, writer.overflowDropped)
        .catch(ctx.onError);
    };
  }

  private readonly dropHook: (writer: OutputWriter) => Promise<void> | undefined;

  /** Stores the last progress (bounded wait: the outcome is not held up for long). */
  async beforeOutcome(): Promise<void> {
    if (!this.progress) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.progress.close(),
      new Promise((resolve) => (timer = setTimeout(resolve, FLUSH_BEFORE_OUTCOME_MS))),
    ]);
    clearTimeout(timer);
  }

  /** Ends the output stream with its closed marker (after the outcome is written). */
  async afterOutcome(status: OutputCloseStatus): Promise<void> {
    if (!this.output) return;
    await this.output.close(status);
    await this.dropHook(this.output);
  }
}
