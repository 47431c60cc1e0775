import { MAX_RUNNER_TAGS, normalizeTags, tagsProblem } from "../live/tags.js";
import { bool, field, int, isTable, num, Problems, type Reader } from "./values.js";

/** The live-jobs part of {@link ResolvedConfig} (issue 23: hello, progress, output, tags). */
export interface LiveConfig {
  /**
   * `runner_hello_timeout_ms`: how long the orchestrator waits for a managed runner's hello on
   * a new tcp/unix connection before treating it as a plain v2 (RRQ) runner (default 1000).
   */
  readonly runnerHelloTimeoutMs: number;
  /** `[rrq.runner_tags] <runner> = ["gpu"]`: passed to managed runners as RRQ_RUNNER_TAGS. */
  readonly runnerTags: ReadonlyMap<string, readonly string[]>;
  /** `[rrq.runner_hello] <runner> = true`: wait for a hello from this external runner too. */
  readonly runnerHello: ReadonlyMap<string, boolean>;
  /**
   * `[rrq.runner_capture] <runner> = true`: lines a managed runner process prints to stdout or
   * stderr also go to the output of its request in flight, when it has exactly one (default off).
   */
  readonly runnerCapture: ReadonlyMap<string, boolean>;
  /** `progress_writes_per_second`: coalesced progress writes per job (default 4). */
  readonly progressWritesPerSecond: number;
  /** `output_max_bytes_per_attempt`: output kept per attempt (default 8 MiB; 0 disables output). */
  readonly outputMaxBytesPerAttempt: number;
}

/** The top-level keys this file reads. */
export const LIVE_KEYS = [
  "runner_hello_timeout_ms",
  "runner_tags",
  "runner_hello",
  "runner_capture",
  "progress_writes_per_second",
  "output_max_bytes_per_attempt",
] as const;

/** Default of `output_max_bytes_per_attempt`. */
export const DEFAULT_OUTPUT_MAX_BYTES = 8 * 1024 * 1024;

function runnerTable<T>(
  raw: unknown,
  key: string,
  runners: readonly string[],
  problems: Problems,
  read: (value: unknown, where: string) => T | undefined,
): Map<string, T> {
  const out = new Map<string, T>();
  if (raw === undefined) return out;
  if (!isTable(raw)) {
    problems.add(`${key} must be a table of runner names ([rrq.${key}])`);
    return out;
  }
  for (const [name, value] of Object.entries(raw)) {
    const where = `${key}.${name}`;
    if (!runners.includes(name)) {
      const known = runners.length ? runners.join(", ") : "none";
      problems.add(`${where}: no runner '${name}' is configured (configured runners: ${known})`);
      continue;
    }
    const read1 = read(value, where);
    if (read1 !== undefined) out.set(name, read1);
  }
  return out;
}

/** Reads a per-runner boolean (`[rrq.runner_hello]`, `[rrq.runner_capture]`). */
const flag =
  (problems: Problems) =>
  (value: unknown, where: string): boolean | undefined =>
    problems.attempt(() => bool(value, where), undefined);

/**
 * Reads the live-jobs keys of a `[rrq]` table. The per-runner settings live in their own
 * tables (`[rrq.runner_tags]`, `[rrq.runner_hello]`, `[rrq.runner_capture]`) because RRQ's
 * orchestrator rejects unknown keys in `[rrq.runners.<name>]`.
 */
export function readLive(
  raw: Record<string, unknown>,
  runners: readonly string[],
  problems: Problems,
): LiveConfig {
  const f = <T>(key: string, read: Reader<T>, fallback: T): T =>
    problems.attempt(() => field(raw, key, "", read, fallback), fallback);
  return Object.freeze({
    runnerHelloTimeoutMs: f("runner_hello_timeout_ms", int(0, 60_000), 1000),
    runnerTags: runnerTable(raw.runner_tags, "runner_tags", runners, problems, (value, where) => {
      const problem = tagsProblem(value, where, MAX_RUNNER_TAGS);
      if (problem) {
        problems.add(problem);
        return undefined;
      }
      return Object.freeze(normalizeTags(value as string[]));
    }),
    runnerHello: runnerTable(raw.runner_hello, "runner_hello", runners, problems, flag(problems)),
    runnerCapture: runnerTable(
      raw.runner_capture,
      "runner_capture",
      runners,
      problems,
      flag(problems),
    ),
    progressWritesPerSecond: f("progress_writes_per_second", num(0, 1000, true), 4),
    outputMaxBytesPerAttempt: f(
      "output_max_bytes_per_attempt",
      int(0, 1024 * 1024 * 1024),
      DEFAULT_OUTPUT_MAX_BYTES,
    ),
  });
}
