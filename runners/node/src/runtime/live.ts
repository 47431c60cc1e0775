import {
  DEFAULT_OUTPUT_MAX_BYTES,
  DEFAULT_PROGRESS_INTERVAL_MS,
  MAX_OUTPUT_DATA_BYTES,
  MAX_PROGRESS_DETAIL_BYTES,
  MAX_PROGRESS_MESSAGE_CHARS,
  MAX_TAGS,
  TAG_PATTERN,
} from "../protocol/constants.js";
import { FrameEncodeError } from "../protocol/errors.js";
import type { FrameChannel } from "../protocol/frame-connection.js";
import { outputFrame, progressFrame } from "../protocol/frames.js";
import type { ExecutionRequest, Progress } from "../protocol/generated/wire.js";

/**
 * The handler's streamed output (`ctx.output`): text, or JSON lines, that `rrq job tail` and
 * the data API show while the job runs (RUNNER_PROTOCOL.md §13.3).
 */
export interface OutputWriter {
  /** True when this request streams output; otherwise writes are dropped silently. */
  readonly enabled: boolean;
  /** Appends `text` as is (add your own newlines). */
  write(text: string): void;
  /**
   * Appends `value` as one line of compact JSON plus "\n".
   * @throws TypeError when JSON cannot hold the value (also when output is off, so the bug
   * shows in every run).
   */
  json(value: unknown): void;
}

/**
 * What a handler can tell the orchestrator while it runs: progress and streamed output
 * (RUNNER_PROTOCOL.md §13). It is the handler's third parameter:
 *
 * ```ts
 * registry.register("resize", async (request, signal, ctx) => {
 *   for (const [i, image] of images.entries()) {
 *     ctx.progress(i / images.length, `image ${i + 1} of ${images.length}`);
 *     ctx.output.write(`resized ${image}\n`);
 *   }
 *   ctx.output.json({ done: images.length });
 * });
 * ```
 *
 * The calls never need a check: for a request whose `live` does not enable a feature (an RRQ
 * orchestrator, or a job nobody watches) they do nothing.
 */
export interface JobContext {
  readonly jobId: string;
  readonly requestId: string;
  /** True when progress reports of this request reach the orchestrator. */
  readonly progressEnabled: boolean;
  /**
   * Reports progress: `value` from 0 to 1 (clamped; null or a non-finite number = unknown), an
   * optional `message` (cut to 1024 characters) and an optional JSON `detail` (left out, with a
   * log line, when its JSON exceeds 4096 bytes). Reports are coalesced: at most one per
   * `progress_interval_ms` leaves the runner, the latest wins, and the last one always arrives
   * before the job's outcome.
   * @throws TypeError when `value` is neither a number nor null, or `message` not a string.
   */
  progress(value: number | null, message?: string | null, detail?: unknown): void;
  readonly output: OutputWriter;
}

/** Capability tags from code merged with `RRQ_RUNNER_TAGS`: checked, deduplicated, sorted. */
export function runnerTags(
  tags: readonly string[] = [],
  env: string | undefined = undefined,
): string[] {
  const fromEnv = (env ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "");
  const merged = [...new Set([...tags, ...fromEnv])];
  for (const tag of merged) {
    if (typeof tag !== "string" || !TAG_PATTERN.test(tag)) {
      throw new RangeError(
        `invalid runner tag ${JSON.stringify(tag)}: 1 to 64 characters of A-Z a-z 0-9 _ . : / = -`,
      );
    }
  }
  if (merged.length > MAX_TAGS) {
    throw new RangeError(`a runner has at most ${MAX_TAGS} tags, got ${merged.length}`);
  }
  // Byte order, as every binding sorts (plain sort compares UTF-16 units: the same for ASCII).
  return merged.sort();
}

/** The first `max` characters (code points) of `text`, never splitting a surrogate pair. */
function cutChars(text: string, max: number): string {
  if (text.length <= max) return text;
  let out = "";
  let n = 0;
  for (const ch of text) {
    if (n++ === max) break;
    out += ch;
  }
  return out;
}

/** The longest prefix of `text` whose UTF-8 takes at most `limit` bytes, and its byte size. */
function utf8Prefix(text: string, limit: number): [string, number] {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= limit) return [text, bytes.length];
  let end = limit;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // back off a continuation byte
  return [bytes.subarray(0, end).toString("utf8"), end];
}

/**
 * The live frames of one request on one connection (runtime internal). Output writes of one
 * event-loop turn are joined into frames of at most 64 KiB; progress is coalesced per
 * `progress_interval_ms`; {@link close} sends what is still due (pending output, the latest
 * progress, the truncation marker) synchronously, so the runtime writes the response after it.
 */
export class LiveChannel {
  readonly progressEnabled: boolean;
  readonly outputEnabled: boolean;
  private readonly intervalMs: number;
  private budget: number;
  private dropped = 0;
  private seq = 0;
  private pendingOutput = "";
  private flushScheduled = false;
  private lastProgressAt: number | undefined;
  private pendingProgress: Progress | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly request: ExecutionRequest,
    private readonly connection: FrameChannel,
    private readonly log: (message: string) => void,
  ) {
    const live = request.live!;
    this.progressEnabled = live.progress === true;
    this.outputEnabled = live.output === true;
    this.intervalMs = live.progress_interval_ms ?? DEFAULT_PROGRESS_INTERVAL_MS;
    this.budget = live.output_max_bytes ?? DEFAULT_OUTPUT_MAX_BYTES;
  }

  /** Whether a request enables any live frame (else no channel is made for it). */
  static wanted(request: ExecutionRequest): boolean {
    const live = request.live;
    return live != null && (live.progress === true || live.output === true);
  }

  progress(update: Progress): void {
    if (this.closed || !this.progressEnabled) return;
    const now = performance.now();
    const last = this.lastProgressAt;
    if (last === undefined || now - last >= this.intervalMs) {
      this.sendProgress(update, now);
      return;
    }
    // Too soon: keep only the latest report; it goes out when the interval is over.
    this.pendingProgress = update;
    this.timer ??= setTimeout(() => this.flushProgress(), last + this.intervalMs - now);
  }

  output(text: string): void {
    if (this.closed || !this.outputEnabled || text === "") return;
    this.pendingOutput += text;
    if (this.pendingOutput.length >= MAX_OUTPUT_DATA_BYTES) this.flushOutput();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flushOutput();
      });
    }
  }

  /** Sends everything still due, in call order, then nothing more. */
  close(): void {
    if (this.closed) return;
    this.flushOutput();
    this.flushProgress();
    if (this.dropped > 0) {
      // One marker, at the end, so that dropped_bytes counts everything dropped (§13.3).
      this.sendOutput("", true);
    }
    this.discard();
  }

  /** The request is over without an outcome (connection gone): send nothing more. */
  discard(): void {
    this.closed = true;
    this.pendingOutput = "";
    this.pendingProgress = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private flushProgress(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const update = this.pendingProgress;
    this.pendingProgress = undefined;
    if (update && !this.closed) this.sendProgress(update, performance.now());
  }

  private sendProgress(update: Progress, now: number): void {
    // Output written before this report goes first, so frames keep the handler's call order.
    this.flushOutput();
    this.lastProgressAt = now;
    this.send(progressFrame(update));
  }

  private flushOutput(): void {
    let text = this.pendingOutput;
    if (this.closed || text === "") return;
    this.pendingOutput = "";
    if (this.dropped > 0) {
      this.dropped += Buffer.byteLength(text);
      return;
    }
    const [kept, keptBytes] = utf8Prefix(text, this.budget);
    if (kept.length < text.length) this.dropped += Buffer.byteLength(text) - keptBytes;
    this.budget -= keptBytes;
    text = kept;
    while (text !== "") {
      const [chunk] = utf8Prefix(text, MAX_OUTPUT_DATA_BYTES);
      // A lone surrogate encodes as U+FFFD (3 bytes) and may not fit alone: take it anyway.
      const piece = chunk === "" ? text.slice(0, 1) : chunk;
      this.sendOutput(piece, false);
      text = text.slice(piece.length);
    }
  }

  private sendOutput(data: string, truncated: boolean): void {
    this.send(
      outputFrame({
        job_id: this.request.job_id,
        request_id: this.request.request_id,
        seq: this.seq++,
        stream: "handler",
        data,
        truncated,
        dropped_bytes: truncated ? this.dropped : 0,
      }),
    );
  }

  private send(frame: Parameters<FrameChannel["send"]>[0]): void {
    try {
      this.connection.send(frame);
    } catch (error) {
      // A live frame that cannot be encoded is lost, never the request: say so and go on.
      if (!(error instanceof FrameEncodeError)) throw error;
      this.log(
        `request ${this.request.request_id}: ${frame.type} frame not sent: ${error.message}`,
      );
    }
  }
}

/** The writer of a request's output; `channel` undefined or output off: writes do nothing. */
class Writer implements OutputWriter {
  constructor(private readonly channel: LiveChannel | undefined) {}

  get enabled(): boolean {
    return this.channel?.outputEnabled === true;
  }

  write(text: string): void {
    if (typeof text !== "string") {
      throw new TypeError(`output must be a string, not ${typeof text}`);
    }
    this.channel?.output(text);
  }

  json(value: unknown): void {
    const line = JSON.stringify(value);
    if (line === undefined) throw new TypeError(`output.json cannot write ${typeof value}`);
    this.write(`${line}\n`);
  }
}

/** The {@link JobContext} a handler receives (runtime internal). */
export class RequestContext implements JobContext {
  private writer: Writer | undefined;

  constructor(
    private readonly request: ExecutionRequest,
    private readonly channel: LiveChannel | undefined,
    private readonly log: (message: string) => void,
  ) {}

  get jobId(): string {
    return this.request.job_id;
  }

  get requestId(): string {
    return this.request.request_id;
  }

  get progressEnabled(): boolean {
    return this.channel?.progressEnabled === true;
  }

  get output(): OutputWriter {
    return (this.writer ??= new Writer(this.channel));
  }

  progress(value: number | null, message?: string | null, detail?: unknown): void {
    // Checked before the enabled test, so a mistake shows whatever the orchestrator asked for.
    if (value != null && typeof value !== "number") {
      throw new TypeError(`progress must be a number or null, not ${typeof value}`);
    }
    if (message != null && typeof message !== "string") {
      throw new TypeError(`progress message must be a string or null, not ${typeof message}`);
    }
    let detailValue = detail ?? null;
    if (detailValue !== null) {
      let json: string | undefined;
      try {
        json = JSON.stringify(detailValue);
      } catch {
        json = undefined;
      }
      if (json === undefined || Buffer.byteLength(json) > MAX_PROGRESS_DETAIL_BYTES) {
        this.log(
          `request ${this.request.request_id}: progress detail left out (not JSON, or over ${MAX_PROGRESS_DETAIL_BYTES} bytes)`,
        );
        detailValue = null;
      }
    }
    if (!this.channel?.progressEnabled) return;
    this.channel.progress({
      job_id: this.request.job_id,
      request_id: this.request.request_id,
      progress: value == null || !Number.isFinite(value) ? null : Math.min(1, Math.max(0, value)),
      message: message == null ? null : cutChars(message, MAX_PROGRESS_MESSAGE_CHARS),
      detail: detailValue,
    });
  }
}
