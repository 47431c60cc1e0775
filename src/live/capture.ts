/**
 * Capturing a managed runner process's stdout and stderr into the output of the request it is
 * running (issue 23, `[rrq.runner_capture] <runner> = true`).
 *
 * The orchestrator reads those pipes line by line for the `runner:log` events anyway
 * (runner-process.ts; on stdio stdout is the frame channel, so only stderr). With capture on,
 * each line also goes to one request's output stream, but only while the process has exactly
 * one request in flight: a process running several at once interleaves their prints, and
 * nothing in a line says whose it is. Lines printed with none or several in flight only reach
 * the log. This is the orchestrator's own observation of the process, so it needs nothing from
 * the runner (RRQ's runners included) and adds nothing to the wire.
 */

/** The process streams a line can come from (the `stream` of the output entry it becomes). */
export type CapturedStream = "stdout" | "stderr";

/** The part of a request's live listener that takes captured lines (see LiveAttempt). */
export interface CaptureListener {
  /** Takes `data` (one line and its "\n") that the process printed on `stream`. */
  readonly captured?: (stream: CapturedStream, data: string) => void;
}

/** What a connection knows of one in-flight request, as far as capture is concerned. */
export interface CaptureTarget {
  readonly live: CaptureListener | undefined;
}

/**
 * The request a line printed now belongs to: the only one in flight, else none (with several
 * in flight a line cannot be attributed; with none it belongs to no request).
 */
export function soleInFlight<T>(inFlight: ReadonlyMap<string, T>): T | undefined {
  if (inFlight.size !== 1) return undefined;
  return inFlight.values().next().value;
}

/**
 * Appends one line the process printed (without its line ending) to the output of the sole
 * in-flight request of `inFlight`, when that request takes captured lines. Returns whether it
 * did; the line goes to the log either way (the caller's business).
 */
export function captureLine(
  inFlight: ReadonlyMap<string, CaptureTarget>,
  stream: CapturedStream,
  line: string,
): boolean {
  const live = soleInFlight(inFlight)?.live;
  if (!live?.captured) return false;
  live.captured(stream, `${line}\n`);
  return true;
}
