/**
 * Live jobs in the data API (README "Live jobs"): a job's progress, and the output of its
 * attempts read from a cursor or followed as they are written.
 *
 * ```ts
 * for await (const entry of api.output.follow(jobId)) if ("data" in entry) process.stdout.write(entry.data);
 * ```
 */
import type { Redis } from "ioredis";
import { jobKey } from "../store/keys.js";
import {
  LiveStore,
  readJobProgress,
  type OutputEntry,
  type OutputPage,
  type ProgressValue,
} from "../store/live-store.js";
import { registerScripts } from "../store/scripts.js";

/** Where to read: an attempt (default the latest), from a cursor ("0": the start). */
export interface OutputReadOptions {
  /** The attempt number (the job's `runs` of it); default the latest attempt. */
  attempt?: number;
  cursor?: string;
  /** Entries per read (default 100, at most 10,000). */
  count?: number;
}

/** A page of output with the attempt it belongs to. */
export interface OutputReadResult extends OutputPage {
  attempt: number;
}

/** Options of {@link OutputApi.follow}. */
export interface OutputFollowOptions extends OutputReadOptions {
  /** Ends the iteration (the blocked read ends within `blockMs`). */
  signal?: AbortSignal;
  /** How long one blocking read waits before the job's state is checked (default 1000 ms). */
  blockMs?: number;
}

const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A job's progress (`api.jobs.progress`), or undefined when it reported none. */
export function jobProgress(redis: Redis, id: string): Promise<ProgressValue | undefined> {
  return readJobProgress(redis, id);
}

/** The output streams of jobs' attempts (`rrq:output:<job>:<run>`). */
export class OutputApi {
  private readonly store: LiveStore;

  constructor(readonly redis: Redis) {
    this.store = new LiveStore(redis, registerScripts(redis));
  }

  /** The attempt to read: the one asked for, else the job's latest (0 when it never started). */
  private async attemptOf(id: string, attempt: number | undefined): Promise<number> {
    return attempt ?? (await this.store.latestRun(id));
  }

  /** Reads entries after a cursor; `closed` once the attempt's closed marker was read. */
  async read(id: string, options: OutputReadOptions = {}): Promise<OutputReadResult> {
    const attempt = await this.attemptOf(id, options.attempt);
    const count = Math.min(Math.max(1, options.count ?? 100), 10_000);
    if (attempt < 1) return { attempt, entries: [], cursor: options.cursor ?? "0", closed: false };
    return { attempt, ...(await this.store.readOutput(id, attempt, options.cursor, count)) };
  }

  /**
   * Yields an attempt's entries as they are written, from `cursor`, and ends after its closed
   * marker. Without `attempt` it follows the latest attempt, waiting for the first to start.
   * It also ends when the job is gone, or is final (or moved to a later attempt) and its
   * stream has nothing more (an attempt whose worker died never gets its marker).
   */
  async *follow(id: string, options: OutputFollowOptions = {}): AsyncGenerator<OutputEntry> {
    const blockMs = options.blockMs ?? 1000;
    let attempt = options.attempt ?? 0;
    while (attempt < 1 && !options.signal?.aborted) {
      const [runs, status] = await this.redis.hmget(jobKey(id), "runs", "status");
      attempt = Number(runs) || 0;
      if (attempt >= 1) break;
      if (status == null || FINAL.has(status)) return;
      await sleep(Math.min(blockMs, 250));
    }
    const blocking = this.redis.duplicate();
    const abort = () => blocking.disconnect();
    options.signal?.addEventListener("abort", abort);
    try {
      let cursor = options.cursor ?? "0";
      let ending = false;
      for (;;) {
        if (options.signal?.aborted) return;
        const page = await this.store.waitOutput(blocking, id, attempt, cursor, blockMs, 1000);
        cursor = page.cursor;
        for (const entry of page.entries) {
          yield entry;
          if (entry.kind === "closed") return;
        }
        if (page.entries.length > 0) {
          ending = false;
          continue;
        }
        // a quiet stream: is the attempt over without a marker (its worker died)? The marker
        // follows the outcome write, so a final job gets one more wait before the end.
        if (ending) return;
        const [runs, status] = await this.redis.hmget(jobKey(id), "runs", "status");
        const later = (Number(runs) || 0) > attempt;
        if (status == null || later || FINAL.has(status)) ending = true;
      }
    } catch (error) {
      if (options.signal?.aborted) return;
      throw error;
    } finally {
      options.signal?.removeEventListener("abort", abort);
      blocking.disconnect();
    }
  }
}

/**
 * Waits for a job's next live announcement (`rrq:live:<id>`: progress or output) or `timeoutMs`,
 * on `subscriber` (a connection in subscriber mode, owned by the caller). Resolves with the
 * message, or undefined on timeout.
 */
export function nextLiveMessage(
  subscriber: Redis,
  timeoutMs: number,
): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const onMessage = (_channel: string, message: string) => {
      cleanup();
      try {
        resolve(JSON.parse(message) as Record<string, unknown>);
      } catch {
        resolve({});
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      resolve(undefined);
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      subscriber.off("message", onMessage);
    };
    subscriber.on("message", onMessage);
  });
}
