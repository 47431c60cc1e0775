import type { Redis } from "ioredis";
import type { CronJobConfig } from "../config/config.js";
import { RrqError } from "../errors.js";
import { parseCronEntry, nextFire, type CronEntry } from "../orchestrator/cron.js";
import { Producer } from "../producer/producer.js";
import { cronKey } from "../store/keys.js";
import type { ApiSettings } from "./settings.js";

/** One cron entry as the operator sees it. Times are epoch ms. */
export interface CronEntryInfo {
  /** The entry's stable id (`rrq:cron:<id>` holds its state). */
  readonly id: string;
  readonly function: string;
  readonly schedule: string;
  /** The full queue key its jobs go to. */
  readonly queue: string;
  readonly unique: boolean;
  /** The latest fire time an orchestrator handled, or null when none has run it yet. */
  readonly lastFire: number | null;
  /** The next fire time after `lastFire` (or after now when it never fired), or null. */
  readonly nextFire: number | null;
  /** Set when the schedule does not parse (the entry never fires). */
  readonly error?: string;
}

/**
 * Cron entries of a configuration: their state in Redis (last and next fire) and "trigger now".
 * Entries come from `[[rrq.cron_jobs]]`; nothing here walks the keyspace (one HGET per entry).
 */
export class CronApi {
  private readonly entries: Array<{ config: CronJobConfig; entry?: CronEntry; error?: string }>;

  constructor(
    private readonly redis: Redis,
    private readonly settings: ApiSettings,
    cronJobs: readonly CronJobConfig[],
  ) {
    this.entries = cronJobs.map((config) => {
      try {
        return { config, entry: parseCronEntry(config, settings.defaultQueueName) };
      } catch (error) {
        return { config, error: (error as Error).message };
      }
    });
  }

  /** Every configured entry with its last and next fire time. */
  async list(now = Date.now()): Promise<CronEntryInfo[]> {
    const pipeline = this.redis.pipeline();
    for (const { entry } of this.entries) if (entry) pipeline.hget(cronKey(entry.id), "last_fire");
    const replies = (await pipeline.exec()) ?? [];
    let i = 0;
    return this.entries.map(({ config, entry, error }) => {
      const base = {
        function: config.functionName,
        schedule: config.schedule,
        unique: config.unique,
      };
      if (!entry)
        return {
          ...base,
          id: config.functionName,
          queue: config.queueName ?? this.settings.defaultQueueName,
          lastFire: null,
          nextFire: null,
          error,
        };
      const raw = replies[i++]?.[1];
      const last = raw === null || raw === undefined ? null : Number(raw);
      const lastFire = last !== null && Number.isFinite(last) ? last : null;
      const after = Math.max(lastFire ?? now, now);
      return {
        ...base,
        id: entry.id,
        queue: entry.queue,
        lastFire,
        nextFire: nextFire(entry, after) ?? null,
      };
    });
  }

  /**
   * Enqueues the entry's job now, outside its schedule (its `last_fire` is left alone, so the
   * schedule goes on as before) and a `unique` entry's lock is not taken: an operator's "run it
   * now". Returns the new job id; throws RrqError `invalid_argument` for an unknown id.
   */
  async trigger(id: string): Promise<string> {
    const found = this.entries.find((e) => e.entry?.id === id)?.entry;
    if (!found) throw new RrqError("invalid_argument", `no cron entry '${id}'`);
    const producer = new Producer(this.settings.producer, this.redis);
    const params = JSON.parse(found.paramsJson) as Record<string, unknown>;
    return producer.enqueue(found.config.functionName, params, { queueName: found.queue });
  }
}
