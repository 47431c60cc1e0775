import type { Redis } from "ioredis";
import { localClock, type Clock } from "../clock/redis-clock.js";
import { formatTimestamp } from "./encoding.js";
import { activeKey, eventsKey, jobKey, jobLockKey, LEASES_KEY } from "./keys.js";
import type { ScriptCaller } from "./scripts.js";

/**
 * Result code of one completion: 1 written, 2 already written by this attempt (a re-sent call
 * whose first reply was lost), 0 not ours, -1 job hash gone.
 */
export type CompletionCode = 2 | 1 | 0 | -1;

/** A completion's code as its caller sees it: written (1, 2), not ours (0) or gone (-1). */
export type CompletionWrite = "written" | "not_owner" | "gone";

const writeOf = (code: CompletionCode): CompletionWrite =>
  code > 0 ? "written" : code === 0 ? "not_owner" : "gone";

interface Group {
  workerId: string;
  ttl: string;
  entries: Entry[];
}

interface Entry {
  jobId: string;
  fence: string;
  resultJson: string;
  resolve: (write: CompletionWrite) => void;
  reject: (error: unknown) => void;
}

/** Most entries per script call: bounds how long one call holds Redis (and Lua's unpack). */
const MAX_BATCH = 256;

/**
 * Groups the successful completions one worker records in the same event-loop turn into one
 * complete-success-batch-2.lua call per (worker, default TTL), instead of one script call per
 * job: in a burn-down the per-call costs (client command objects and socket writes, EVALSHA
 * setup in Redis) were the largest per-job costs. Each entry keeps complete-success-5.lua's
 * checks and writes and each caller gets its own entry's code. An entry whose job key is not a
 * hash, and every entry of a call that failed, is sent again alone with complete-success-5.lua,
 * so one bad key or error affects only its own job (whose caller then retries as before).
 *
 * Entries wait at most until the end of the current turn (`setImmediate`), so latency is
 * unchanged: successes that arrive together are simply sent together.
 */
export class CompletionBatcher {
  /** Batches are per worker (its active set) and default TTL (one ARGV each). */
  private readonly queued = new Map<string, Group>();
  private scheduled = false;

  constructor(
    private readonly redis: Redis,
    private readonly scripts: ScriptCaller,
    /** completion_time and run_<k>_ended_at come from it (the worker's Redis clock). */
    private readonly clock: Clock = localClock,
  ) {}

  /** Queues one success; resolves with its own write's result once its batch ran. */
  complete(
    workerId: string,
    jobId: string,
    fence: string,
    resultJson: string,
    defaultTtlSeconds: number,
  ): Promise<CompletionWrite> {
    return new Promise((resolve, reject) => {
      const ttl = String(defaultTtlSeconds);
      const name = `${ttl} ${workerId}`;
      let group = this.queued.get(name);
      if (!group) this.queued.set(name, (group = { workerId, ttl, entries: [] }));
      group.entries.push({ jobId, fence, resultJson, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const completedAt = formatTimestamp(this.clock.now());
    for (const { workerId, ttl, entries } of this.queued.values()) {
      for (let start = 0; start < entries.length; start += MAX_BATCH)
        this.send(workerId, ttl, completedAt, entries.slice(start, start + MAX_BATCH));
    }
    this.queued.clear();
  }

  private send(workerId: string, ttl: string, completedAt: string, entries: Entry[]): void {
    const args: string[] = [workerId, completedAt, ttl];
    for (const e of entries) args.push(e.jobId, e.fence, e.resultJson);
    this.scripts
      .run<number[]>(this.redis, "complete-success-batch", [activeKey(workerId), LEASES_KEY], args)
      .then(
        (codes) => {
          for (let i = 0; i < entries.length; i++) {
            const code = codes[i];
            if (code === 2 || code === 1 || code === 0 || code === -1)
              entries[i]!.resolve(writeOf(code));
            else this.sendOne(workerId, ttl, entries[i]!);
          }
        },
        () => {
          for (const e of entries) this.sendOne(workerId, ttl, e);
        },
      );
  }

  /** complete-success-5.lua for one completion, on its own (its completion time is now). */
  completeAlone(
    workerId: string,
    jobId: string,
    fence: string,
    resultJson: string,
    defaultTtlSeconds: number | string,
  ): Promise<CompletionCode> {
    const keys = [
      jobKey(jobId),
      eventsKey(jobId),
      activeKey(workerId),
      jobLockKey(jobId),
      LEASES_KEY,
    ];
    const args = [
      jobId,
      workerId,
      fence,
      resultJson,
      formatTimestamp(this.clock.now()),
      defaultTtlSeconds,
    ];
    return this.scripts.run<CompletionCode>(this.redis, "complete-success", keys, args);
  }

  private sendOne(workerId: string, ttl: string, e: Entry): void {
    this.completeAlone(workerId, e.jobId, e.fence, e.resultJson, ttl).then(
      (code) => e.resolve(writeOf(code)),
      e.reject,
    );
  }
}
