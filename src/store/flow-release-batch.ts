import type { Redis } from "ioredis";
import { localClock, type Clock } from "../clock/redis-clock.js";
import type { FlowReleaseMode, SessionOnDead } from "./flow-store.js";
import { jobKey } from "./keys.js";
import type { ScriptCaller } from "./scripts.js";

const MODES: ReadonlySet<string> = new Set<FlowReleaseMode>(["requeued", "terminal", "dead"]);
const ON_DEAD: ReadonlySet<string> = new Set<SessionOnDead>(["skip", "block"]);

interface Entry {
  jobId: string;
  mode: FlowReleaseMode;
  resolve: (unparked: number) => void;
  reject: (error: unknown) => void;
}

/** Most releases per script call: bounds how long one call holds Redis (and Lua's unpack). */
export const MAX_RELEASE_BATCH = 256;

/**
 * Groups the flow releases asked for in one event-loop turn into one flow-release-n.lua call
 * per session_on_dead (in practice one: it comes from the config), instead of one script call
 * per job: in a burn-down of capped jobs the per-call costs (an ioredis command object and a
 * socket write each, EVALSHA setup in Redis) were most of what a capped job cost beyond a
 * keyless one. The script runs each entry as a release of its own would (same checks, same
 * order), and each caller gets its own entry's count, or its own error (an entry that fails
 * in Redis fails alone). A call that failed as a whole (the connection, a timeout) is sent again
 * one entry per call, so each caller hears its own outcome (and its persist retries as before).
 *
 * Entries wait at most until the end of the current turn (`setImmediate`), or until
 * {@link MAX_RELEASE_BATCH} are pending: releases that arrive together (the completions of one
 * batch resolve together) are sent together.
 */
export class FlowReleaseBatcher {
  private readonly queued = new Map<SessionOnDead, Entry[]>();
  private scheduled = false;

  constructor(
    private readonly redis: Redis,
    private readonly scripts: ScriptCaller,
    /** The `now` each call carries (the worker's Redis clock). */
    private readonly clock: Clock = localClock,
  ) {}

  /** Queues one release; resolves with the number of jobs it unparked once its batch ran. */
  release(jobId: string, mode: FlowReleaseMode, sessionOnDead: SessionOnDead): Promise<number> {
    if (!MODES.has(mode))
      return Promise.reject(
        new Error(`flow release mode must be requeued, terminal or dead, got '${String(mode)}'`),
      );
    if (!ON_DEAD.has(sessionOnDead))
      return Promise.reject(
        new Error(`session_on_dead must be skip or block, got '${String(sessionOnDead)}'`),
      );
    return new Promise((resolve, reject) => {
      let entries = this.queued.get(sessionOnDead);
      if (!entries) this.queued.set(sessionOnDead, (entries = []));
      entries.push({ jobId, mode, resolve, reject });
      if (entries.length >= MAX_RELEASE_BATCH) {
        this.queued.delete(sessionOnDead);
        this.send(sessionOnDead, entries);
      } else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    for (const [sessionOnDead, entries] of this.queued) this.send(sessionOnDead, entries);
    this.queued.clear();
  }

  private send(sessionOnDead: SessionOnDead, entries: Entry[]): void {
    const keys: string[] = [];
    const args: (string | number)[] = [sessionOnDead, this.clock.now()];
    for (const e of entries) {
      keys.push(jobKey(e.jobId));
      args.push(e.jobId, e.mode);
    }
    const failed = (error: unknown) => {
      if (entries.length === 1) entries[0]!.reject(error);
      else for (const e of entries) this.send(sessionOnDead, [e]);
    };
    let reply: Promise<number[]>;
    try {
      reply = this.scripts.run<number[]>(this.redis, "flow-release", keys, args);
    } catch (error) {
      failed(error); // a script not registered on this connection: every caller hears it
      return;
    }
    reply.then((counts) => {
      for (let i = 0; i < entries.length; i++) {
        const count: unknown = counts[i];
        // an entry's own error comes back as an error element of the reply (the others ran)
        if (count instanceof Error) entries[i]!.reject(count);
        else entries[i]!.resolve(Number(count ?? 0));
      }
    }, failed);
  }
}
