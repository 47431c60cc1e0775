import type { Redis } from "ioredis";
import { jobKey, liveChannel, outputKey } from "./keys.js";
import type { ScriptCaller } from "./scripts.js";

/** A job's latest progress as stored in its hash (README "Live jobs"). */
export interface ProgressValue {
  /** 0..1, or null when the handler reported only a message. */
  progress: number | null;
  message: string | null;
  /** Any JSON value the handler attached, or null. */
  detail: unknown;
  /** When the orchestrator wrote it (RFC 3339). */
  at: string;
}

/** How an attempt's output ended (the closed marker's `status`). */
export type OutputCloseStatus = "completed" | "retry" | "failed" | "cancelled" | "timeout" | "lost";

/**
 * One entry of an attempt's output stream: `out`/`err` are the runner's stdout/stderr for the
 * request, `log` what the handler wrote (ctx.output); `truncated` marks the per-attempt cap,
 * `closed` the end of the attempt.
 */
export type OutputEntry =
  | { id: string; kind: "out" | "err" | "log"; data: string }
  | { id: string; kind: "truncated"; dropped: number }
  | { id: string; kind: "closed"; status: string };

/** A page of output read from a cursor ({@link LiveStore.readOutput}). */
export interface OutputPage {
  entries: OutputEntry[];
  /** Pass it back to read on after these entries ("0": from the start). */
  cursor: string;
  /** True once the closed marker has been read. */
  closed: boolean;
}

/** The fields of a stream entry as written ({@link LiveStore.appendOutput}). */
export type OutputFields = Record<string, string>;

/** Result TTL 0 keeps a result forever; its output is kept a day (it is not worth forever). */
export const OUTPUT_TTL_WHEN_KEPT_SECONDS = 86_400;

/** The output streams' TTL for a job result TTL in seconds (see {@link OUTPUT_TTL_WHEN_KEPT_SECONDS}). */
export function outputTtlSeconds(resultTtlSeconds: number): number {
  if (!(resultTtlSeconds > 0)) return OUTPUT_TTL_WHEN_KEPT_SECONDS;
  return Math.min(Math.floor(resultTtlSeconds) || 1, 4_294_967_295);
}

/** Parses one XRANGE/XREAD entry. */
export function parseOutputEntry(id: string, flat: readonly string[]): OutputEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
  if (f.k === "truncated") return { id, kind: "truncated", dropped: Number(f.dropped) || 0 };
  if (f.k === "closed") return { id, kind: "closed", status: f.status ?? "" };
  const kind = f.k === "err" ? "err" : f.k === "log" ? "log" : "out";
  return { id, kind, data: f.d ?? "" };
}

type RawEntries = Array<[string, string[]]>;

/**
 * The Redis side of live jobs: progress fields in the job hash (written through live-hash-1.lua,
 * which never recreates a deleted job), the per-attempt output streams, and the
 * `rrq:live:<job>` announcements tailers and watchers wait on.
 */
export class LiveStore {
  constructor(
    readonly redis: Redis,
    readonly scripts: ScriptCaller,
  ) {}

  /**
   * Writes a job's progress (fields `progress`, `progress_message`, `progress_detail`,
   * `progress_at`) when the job still exists and, with `fence`, is still held by that attempt;
   * PUBLISHes it on the job's live channel. False when nothing was written.
   */
  async writeProgress(jobId: string, fence: string, value: ProgressValue): Promise<boolean> {
    const detail =
      value.detail === null || value.detail === undefined ? "" : JSON.stringify(value.detail);
    const message = JSON.stringify({
      type: "progress",
      job_id: jobId,
      progress: value.progress,
      message: value.message,
      detail: value.detail ?? null,
      at: value.at,
    });
    const written = await this.scripts.run<number>(
      this.redis,
      "live-hash",
      [jobKey(jobId)],
      [
        fence,
        liveChannel(jobId),
        message,
        "",
        0,
        "progress",
        value.progress === null ? "" : String(value.progress),
        "progress_message",
        value.message ?? "",
        "progress_detail",
        detail,
        "progress_at",
        value.at,
      ],
    );
    return written === 1;
  }

  /** Adds to the job's `output_dropped_bytes` (chunks the orchestrator could not buffer). */
  async addDroppedBytes(jobId: string, fence: string, bytes: number): Promise<void> {
    await this.scripts.run(
      this.redis,
      "live-hash",
      [jobKey(jobId)],
      [fence, "", "", "output_dropped_bytes", bytes],
    );
  }

  /**
   * Appends entries to an attempt's output stream in one pipeline (XADDs, the EXPIRE, one
   * PUBLISH {type:"output", run} to wake tailers).
   */
  async appendOutput(
    jobId: string,
    run: number,
    entries: readonly OutputFields[],
    ttlSeconds: number,
  ): Promise<void> {
    if (entries.length === 0) return;
    const key = outputKey(jobId, run);
    const pipeline = this.redis.pipeline();
    for (const entry of entries) pipeline.xadd(key, "*", ...Object.entries(entry).flat());
    pipeline.expire(key, ttlSeconds);
    pipeline.publish(liveChannel(jobId), JSON.stringify({ type: "output", job_id: jobId, run }));
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0]!;
  }

  /** The job's progress, or undefined when it never reported any (or is gone). */
  readProgress(jobId: string): Promise<ProgressValue | undefined> {
    return readJobProgress(this.redis, jobId);
  }

  /** The job's latest attempt number (`runs`), or 0 when it never started. */
  async latestRun(jobId: string): Promise<number> {
    return Number(await this.redis.hget(jobKey(jobId), "runs")) || 0;
  }

  /** Reads up to `count` entries after `cursor` ("0": from the start). */
  async readOutput(jobId: string, run: number, cursor = "0", count = 100): Promise<OutputPage> {
    const start = cursor === "0" || cursor === "" ? "-" : `(${cursor}`;
    const raw = (await this.redis.xrange(
      outputKey(jobId, run),
      start,
      "+",
      "COUNT",
      count,
    )) as RawEntries;
    return pageOf(raw, cursor);
  }

  /**
   * Waits up to `blockMs` for entries after `cursor` (XREAD BLOCK) on `blocking`, a connection
   * of its own (a blocked connection serves nobody else).
   */
  async waitOutput(
    blocking: Redis,
    jobId: string,
    run: number,
    cursor: string,
    blockMs: number,
    count = 100,
  ): Promise<OutputPage> {
    const reply = await blocking.xread(
      "COUNT",
      count,
      "BLOCK",
      blockMs,
      "STREAMS",
      outputKey(jobId, run),
      cursor === "" ? "0" : cursor,
    );
    return pageOf(reply?.[0]?.[1] ?? [], cursor);
  }
}

function pageOf(raw: RawEntries, cursor: string): OutputPage {
  const entries = raw.map(([id, flat]) => parseOutputEntry(id, flat));
  const last = entries.at(-1);
  return {
    entries,
    cursor: last ? last.id : cursor || "0",
    closed: entries.some((e) => e.kind === "closed"),
  };
}

/**
 * A job's progress read from its hash (only the progress fields), or undefined when it never
 * reported any (or is gone): {@link LiveStore.readProgress} and the data API's `jobs.progress`.
 */
export async function readJobProgress(
  redis: Redis,
  jobId: string,
): Promise<ProgressValue | undefined> {
  const [progress, message, detail, at] = await redis.hmget(
    jobKey(jobId),
    "progress",
    "progress_message",
    "progress_detail",
    "progress_at",
  );
  return progressFromHash({
    progress: progress ?? undefined,
    progress_message: message ?? undefined,
    progress_detail: detail ?? undefined,
    progress_at: at ?? undefined,
  });
}

/** A job's progress from its hash fields, or undefined when it has none. */
export function progressFromHash(
  hash: Record<string, string | undefined>,
): ProgressValue | undefined {
  if (hash.progress_at === undefined || hash.progress_at === "") return undefined;
  const n = hash.progress === undefined || hash.progress === "" ? null : Number(hash.progress);
  let detail: unknown = null;
  if (hash.progress_detail) {
    try {
      detail = JSON.parse(hash.progress_detail);
    } catch {
      detail = hash.progress_detail;
    }
  }
  return {
    progress: n === null || !Number.isFinite(n) ? null : n,
    message: hash.progress_message ? hash.progress_message : null,
    detail,
    at: hash.progress_at,
  };
}
