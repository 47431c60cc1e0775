/**
 * The bounded traceback of an error outcome (RUNNER_PROTOCOL.md §7.1): every runtime caps
 * `error.traceback` with exactly this rule, and the orchestrator applies it again before it
 * stores one, since it never trusts a runner.
 */

/** Largest `error.traceback` in UTF-8 bytes. */
export const MAX_TRACEBACK_BYTES = 8192;

/** Bytes kept from the start of an over-long traceback (the outermost frames, the error line). */
export const TRACEBACK_HEAD_BYTES = 4096;

/** Bytes kept from the end (Python's innermost frames and the exception line are last). */
export const TRACEBACK_TAIL_BYTES = 4000;

/** The line that replaces the bytes cut from the middle. */
export function tracebackCutMarker(cutBytes: number): string {
  return `\n... [${cutBytes} bytes truncated] ...\n`;
}

/**
 * `text` unchanged when it fits in {@link MAX_TRACEBACK_BYTES}, else its first
 * {@link TRACEBACK_HEAD_BYTES} and last {@link TRACEBACK_TAIL_BYTES} bytes (shortened to whole
 * UTF-8 characters) around {@link tracebackCutMarker}. Lone surrogates count as U+FFFD, the
 * character UTF-8 encoding writes for them.
 */
export function capTraceback(text: string): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= MAX_TRACEBACK_BYTES) return text;
  const headEnd = charBoundaryAtOrBefore(bytes, TRACEBACK_HEAD_BYTES);
  const tailStart = charBoundaryAtOrAfter(bytes, bytes.length - TRACEBACK_TAIL_BYTES);
  const head = bytes.subarray(0, headEnd).toString("utf8");
  const tail = bytes.subarray(tailStart).toString("utf8");
  return head + tracebackCutMarker(tailStart - headEnd) + tail;
}

/** A string traceback capped by {@link capTraceback}; anything else (absent, null, non-string) is null. */
export function boundedTraceback(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? capTraceback(value) : null;
}

/** True for a UTF-8 continuation byte (10xxxxxx), which never starts a character. */
function isContinuation(byte: number): boolean {
  return (byte & 0xc0) === 0x80;
}

function charBoundaryAtOrBefore(bytes: Buffer, index: number): number {
  let i = index;
  while (i > 0 && isContinuation(bytes[i]!)) i -= 1;
  return i;
}

function charBoundaryAtOrAfter(bytes: Buffer, index: number): number {
  let i = index;
  while (i < bytes.length && isContinuation(bytes[i]!)) i += 1;
  return i;
}
