import type { ProgressPayload } from "./frames.js";
import type { ProgressValue } from "../store/live-store.js";

/** Where coalesced progress goes (LiveStore.writeProgress, bound to one attempt). */
export type ProgressSink = (value: ProgressValue) => Promise<unknown>;

/** A progress message longer than this is cut (live-design §3). */
export const MAX_PROGRESS_MESSAGE = 1024;
/** A progress detail whose JSON is longer than this is dropped (stored as null). */
export const MAX_PROGRESS_DETAIL_BYTES = 4096;

/** A frame's payload as stored: progress clamped to 0..1, message cut, oversized detail dropped. */
export function progressValue(payload: ProgressPayload, at: Date): ProgressValue {
  const p = payload.progress;
  const progress = typeof p === "number" && Number.isFinite(p) ? Math.min(1, Math.max(0, p)) : null;
  const message =
    typeof payload.message === "string" ? payload.message.slice(0, MAX_PROGRESS_MESSAGE) : null;
  let detail: unknown = payload.detail ?? null;
  if (detail !== null) {
    try {
      const json = JSON.stringify(detail);
      if (json === undefined || Buffer.byteLength(json) > MAX_PROGRESS_DETAIL_BYTES) detail = null;
    } catch {
      detail = null;
    }
  }
  return { progress, message, detail, at: at.toISOString() };
}

/**
 * Coalesces one attempt's progress reports into at most `writesPerSecond` writes (README
 * "Live jobs"): the first report is written at once, later ones keep only the latest value
 * until the interval since the previous write has passed; writes go one at a time, in order.
 * {@link flush} writes what is pending (the last value is always stored before the outcome).
 * A failed write is reported and forgotten: progress is advisory and must never hold up a job.
 */
export class ProgressCoalescer {
  private pending: ProgressValue | undefined;
  private lastWriteAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private readonly intervalMs: number;
  private closed = false;
  /** Reports received and writes made (tests, diagnostics). */
  received = 0;
  written = 0;

  constructor(
    private readonly sink: ProgressSink,
    writesPerSecond: number,
    private readonly onError: (error: unknown) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {
    this.intervalMs = 1000 / writesPerSecond;
  }

  /** Takes one progress frame's payload. */
  report(payload: ProgressPayload): void {
    if (this.closed) return;
    this.received++;
    this.pending = progressValue(payload, new Date(this.now()));
    this.schedule();
  }

  /** Writes the pending value (if any) once the write in flight is done; no timers remain. */
  async flush(): Promise<void> {
    for (;;) {
      clearTimeout(this.timer);
      this.timer = undefined;
      if (this.writing) await this.writing;
      else if (this.pending) await this.writeNow();
      else return;
    }
  }

  /** Flushes, then ignores later reports. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private schedule(): void {
    if (this.timer || this.writing) return;
    const wait = this.lastWriteAt + this.intervalMs - this.now();
    if (wait <= 0) void this.writeNow();
    else
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.writeNow();
      }, wait);
  }

  private writeNow(): Promise<void> {
    const value = this.pending;
    if (!value) return Promise.resolve();
    this.pending = undefined;
    this.lastWriteAt = this.now();
    this.written++;
    const done = this.sink(value).then(
      () => undefined,
      (error: unknown) => this.onError(error),
    );
    this.writing = done.then(() => {
      this.writing = undefined;
      if (this.pending && !this.closed) this.schedule();
    });
    return this.writing;
  }
}
