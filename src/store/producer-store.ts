import { randomUUID } from "node:crypto";
import type { ChainableCommander, Redis } from "ioredis";
import { extraFieldArgs, jobFieldArgs, type EnqueuePlan } from "../producer/options.js";
import { eventsKey, jobKey, Prefix } from "./keys.js";
import { registerScripts, type ScriptCaller } from "./scripts.js";

/** What an enqueue script answered: {code, job id} (protocol/PRODUCER.md §3). */
export interface EnqueueReply {
  code: number;
  jobId: string;
}

/**
 * A command queued on a MULTI (ioredis returns the chainable pipeline, not a promise): its
 * outcome is read from EXEC's replies.
 */
function ignore(queued: unknown): void {
  void queued;
}

/** The first command's reply of a MULTI ... EXEC; throws its error (or a discarded EXEC's). */
function firstReply<T>(results: [Error | null, unknown][] | null): T {
  if (!results) throw new Error("the enqueue transaction was discarded");
  const [error, reply] = results[0]!;
  if (error) throw error;
  for (const [later] of results) if (later) throw later;
  return reply as T;
}

/** The producer's Redis operations: the three enqueue scripts, status reads and waits. */
export class ProducerStore {
  readonly scripts: ScriptCaller;

  constructor(readonly redis: Redis) {
    this.scripts = registerScripts(redis);
  }

  /** Queues the enqueue script for `plan` on a connection or pipeline. */
  enqueueOn(on: Redis | ChainableCommander, plan: EnqueuePlan): Promise<[number, string]> {
    const fields = jobFieldArgs(plan);
    const score = String(Math.floor(plan.runAtUs / 1000));
    if (plan.mode === "debounce") {
      return this.scripts.run(
        on,
        "enqueue-debounced",
        [plan.queue, plan.guard!.key],
        [Prefix.job, ...fields, score, plan.guard!.ttlSeconds],
      );
    }
    if (plan.mode === "rate_limit") {
      return this.scripts.run(
        on,
        "enqueue-rate-limited",
        [jobKey(plan.jobId), plan.queue, plan.guard!.key],
        [...fields, score, plan.guard!.ttlSeconds],
      );
    }
    return this.scripts.run(
      on,
      "enqueue",
      [jobKey(plan.jobId), plan.queue, plan.guard?.key ?? Prefix.idempotency],
      // A token per call: ioredis re-sends a call whose reply a dropped connection lost, and
      // the script's second run then answers "created" again instead of a false duplicate.
      [...fields, score, plan.guard?.ttlSeconds ?? 0, randomUUID()],
    );
  }

  /**
   * Queues enqueue-fields-1.lua for a plan with rrqkit's additive fields (retry_policy,
   * expires_at): it writes them onto the job the plan's enqueue script just wrote. Only in the
   * same MULTI as that script, so no orchestrator claims the job in between.
   */
  private extraFieldsOn(on: ChainableCommander, plan: EnqueuePlan): void {
    const debounced = plan.mode === "debounce";
    ignore(
      this.scripts.run(
        on,
        "enqueue-fields",
        [debounced ? plan.guard!.key : jobKey(plan.jobId)],
        [debounced ? "debounce" : "job", ...extraFieldArgs(plan)],
      ),
    );
  }

  /** Runs one enqueue (with its additive fields, in one MULTI ... EXEC, when it has some). */
  async enqueue(plan: EnqueuePlan): Promise<EnqueueReply> {
    if (!plan.extraFields) {
      const [code, jobId] = await this.enqueueOn(this.redis, plan);
      return { code: Number(code), jobId };
    }
    const multi = this.redis.multi();
    ignore(this.enqueueOn(multi, plan));
    this.extraFieldsOn(multi, plan);
    const [code, jobId] = firstReply<[number, string]>(await multi.exec());
    return { code: Number(code), jobId };
  }

  /**
   * Runs enqueue-batch-n.lua for `plans`: one script call, so Redis writes all of them or none
   * (an OOM refuses the script's first write). Replies in order; any code -1 means nothing
   * was written.
   */
  async enqueueBatch(plans: readonly EnqueuePlan[]): Promise<EnqueueReply[]> {
    const keys: string[] = [];
    const args: (string | number)[] = [];
    for (const plan of plans) {
      keys.push(jobKey(plan.jobId), plan.queue, plan.guard?.key ?? Prefix.idempotency);
      args.push(
        ...jobFieldArgs(plan),
        String(Math.floor(plan.runAtUs / 1000)),
        plan.guard?.ttlSeconds ?? 0,
      );
    }
    let replies: [number, string][];
    if (plans.some((plan) => plan.extraFields)) {
      const multi = this.redis.multi();
      ignore(this.scripts.run(multi, "enqueue-batch", keys, args));
      for (const plan of plans) if (plan.extraFields) this.extraFieldsOn(multi, plan);
      replies = firstReply<[number, string][]>(await multi.exec());
    } else {
      replies = await this.scripts.run<[number, string][]>(this.redis, "enqueue-batch", keys, args);
    }
    return replies.map(([code, jobId]) => ({ code: Number(code), jobId }));
  }

  /** The job hash, or undefined when it does not exist. */
  async jobHash(jobId: string): Promise<Record<string, string> | undefined> {
    const hash = await this.redis.hgetall(jobKey(jobId));
    return Object.keys(hash).length === 0 ? undefined : hash;
  }

  /**
   * Blocks on the job's events stream for up to `blockMs` after `lastId` ("$" at first), on a
   * dedicated connection so other commands are not held up. Returns the last entry id seen.
   */
  async waitForEvent(
    blocking: Redis,
    jobId: string,
    lastId: string,
    blockMs: number,
  ): Promise<string> {
    const reply = await blocking.xread(
      "COUNT",
      1,
      "BLOCK",
      Math.max(1, Math.round(blockMs)),
      "STREAMS",
      eventsKey(jobId),
      lastId,
    );
    const entries = reply?.[0]?.[1];
    return entries && entries.length > 0 ? entries[entries.length - 1]![0] : lastId;
  }
}
