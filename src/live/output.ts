import type { OutputPayload } from "./frames.js";
import type { OutputCloseStatus, OutputFields } from "../store/live-store.js";

/** Appends entries to one attempt's output stream (LiveStore.appendOutput, bound). */
export type OutputSink = (entries: readonly OutputFields[]) => Promise<unknown>;

/** Output bytes one runner connection may hold unwritten before chunks are dropped. */
export const CONNECTION_OUTPUT_BUFFER_BYTES = 4 * 1024 * 1024;

/** The output bytes buffered for one runner connection (shared by its attempts). */
export class OutputBudget {
  buffered = 0;
  constructor(readonly limit = CONNECTION_OUTPUT_BUFFER_BYTES) {}
}

/** The stream entry kind of a frame's `stream`: stdout "out", stderr "err", the handler "log". */
export const entryKind = (stream: string): "out" | "err" | "log" =>
  stream === "stdout" ? "out" : stream === "stderr" ? "err" : "log";

/** The longest prefix of `text` of at most `bytes` UTF-8 bytes that ends on a character. */
export function utf8Prefix(text: string, bytes: number): string {
  const buf = Buffer.from(text, "utf8");
  if (buf.length <= bytes) return text;
  let end = bytes;
  // step back over continuation bytes (10xxxxxx) so no character is cut
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString("utf8");
}

/**
 * One attempt's output on its way to `rrq:output:<job>:<run>` (README "Live jobs"): chunks are
 * appended in arrival order, batched per event-loop turn into one pipelined write; at most
 * `maxBytes` bytes of data are kept per attempt (the chunk that reaches the cap is cut, the rest
 * dropped); chunks beyond the connection's {@link OutputBudget} are dropped too. Dropped bytes
 * (the runner's own `dropped_bytes` included) are reported by one `truncated` entry, written
 * before the `closed` entry that {@link close} appends. Write failures are reported and the
 * output given up: output is advisory and must never hold up a job.
 */
export class OutputWriter {
  private queue: OutputFields[] = [];
  private queuedBytes = 0;
  private kept = 0;
  /** Dropped for the per-attempt cap or by the runner. */
  dropped = 0;
  /** Dropped because the connection's buffer was full (also `output_dropped_bytes`). */
  overflowDropped = 0;
  private flushing: Promise<void> | undefined;
  private scheduled = false;
  private failed = false;
  private closed = false;
  /** Whether any entry reached the stream (an attempt without output gets no stream). */
  private wrote = false;

  constructor(
    private readonly sink: OutputSink,
    private readonly maxBytes: number,
    private readonly budget: OutputBudget,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  /** Takes one output frame's payload. */
  write(payload: OutputPayload): void {
    if (this.closed || this.failed) return;
    if (payload.truncated || payload.dropped_bytes > 0)
      this.dropped += Math.max(0, payload.dropped_bytes || 0);
    const data = typeof payload.data === "string" ? payload.data : "";
    if (data === "") return;
    const bytes = Buffer.byteLength(data);
    const room = this.maxBytes - this.kept;
    if (room <= 0) {
      this.dropped += bytes;
      return;
    }
    const text = bytes <= room ? data : utf8Prefix(data, room);
    const size = text === data ? bytes : Buffer.byteLength(text);
    if (this.budget.buffered + size > this.budget.limit) {
      this.overflowDropped += bytes;
      return;
    }
    this.dropped += bytes - size;
    this.kept += size;
    this.budget.buffered += size;
    this.queuedBytes += size;
    if (text !== "") this.queue.push({ k: entryKind(payload.stream), d: text });
    this.schedule();
  }

  /**
   * Writes what is queued, then the truncation marker (when anything was dropped) and the
   * closed marker with `status`. Later frames are ignored.
   */
  async close(status: OutputCloseStatus): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.drain();
    const tail: OutputFields[] = [];
    const dropped = this.dropped + this.overflowDropped;
    // No stream without output: a plain job pays nothing for live output (no XADD, EXPIRE or
    // PUBLISH); followers end when the job is final (OutputApi.follow).
    if (!this.wrote && dropped === 0) return;
    if (dropped > 0) tail.push({ k: "truncated", dropped: String(dropped) });
    tail.push({ k: "closed", status });
    if (this.failed) return;
    try {
      await this.sink(tail);
    } catch (error) {
      this.onError(error);
    }
  }

  /** Waits until everything queued so far is written. */
  async drain(): Promise<void> {
    while (this.flushing || this.queue.length > 0) {
      if (this.flushing) await this.flushing;
      else await this.flushNow();
    }
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.flushing) void this.flushNow();
    });
  }

  private flushNow(): Promise<void> {
    const entries = this.queue;
    const bytes = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    if (entries.length === 0) return Promise.resolve();
    this.wrote = true;
    this.flushing = this.sink(entries).then(
      () => {
        this.budget.buffered -= bytes;
      },
      (error: unknown) => {
        this.budget.buffered -= bytes;
        this.failed = true;
        this.budget.buffered -= this.queuedBytes;
        this.queue = [];
        this.queuedBytes = 0;
        this.onError(error);
      },
    );
    return this.flushing.then(() => {
      this.flushing = undefined;
      if (this.queue.length > 0) this.schedule();
    });
  }
}
