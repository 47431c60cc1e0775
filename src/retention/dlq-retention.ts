import type { Redis } from "ioredis";
import type { ResolvedConfig } from "../config/config.js";
import { dlqKey, dlqStatsKey } from "../store/keys.js";
import { registerScripts, type ScriptCaller } from "../store/scripts.js";
import type { EventBus } from "../telemetry/events.js";
import { LeaderRounds } from "../orchestrator/periodic.js";

/** The key whose holder runs the pass (SET NX PX); one orchestrator a round. */
export const DLQ_TRIM_LEADER_KEY = "rrq:dlq-trim";
/** Entries one script call removes at most, so a long trim never blocks Redis. */
const BATCH = 1000;
const SUMMARY_PREFIX = "rrq:stats:dlq:";

/** Timing of a {@link DlqRetention}; the defaults are the documented ones. */
export interface DlqRetentionOptions {
  /** Between passes (default 60 000 ms). */
  intervalMs?: number;
}

/** What one pass removed, by DLQ key (DLQs with nothing removed are left out). */
export type TrimReport = Map<string, number>;

/**
 * The DLQ caps on a schedule (README "DLQ caps"): every minute one orchestrator (whichever sets
 * `rrq:dlq-trim` first; the key lapses before the next round so the role moves freely and a
 * dead holder blocks one round at most) removes from every DLQ the entries older than
 * `dlq_max_age_seconds` and, for entries no capped move trimmed (RRQ's orchestrator writes
 * without a cap; a cap lowered since), those beyond `dlq_max_jobs`. Each removal deletes the job
 * and keeps the DLQ summary right (dlq-trim-age-2.lua, lib/dlq-trim.lua).
 *
 * Which DLQs: the configured default plus every DLQ with a summary `rrq:stats:dlq:<name>`
 * (move-to-dlq-6.lua writes one for every DLQ it moves a job to, so a job's own `dlq_name` is
 * covered), found with SCAN.
 */
export class DlqRetention {
  private readonly rounds: LeaderRounds;
  private readonly scripts: ScriptCaller;
  private readonly intervalMs: number;
  private stopping = false;

  constructor(
    private readonly redis: Redis,
    private readonly config: ResolvedConfig,
    workerId: string,
    events: EventBus,
    options: DlqRetentionOptions = {},
  ) {
    this.scripts = registerScripts(redis);
    this.intervalMs = options.intervalMs ?? 60_000;
    this.rounds = new LeaderRounds({
      redis,
      leaderKey: DLQ_TRIM_LEADER_KEY,
      workerId,
      intervalMs: this.intervalMs,
      events,
      context: "DLQ trim",
      pass: () => this.pass(),
    });
  }

  /** Whether `config` caps DLQs at all (no pass runs otherwise). */
  static enabled(config: ResolvedConfig): boolean {
    return config.dlqMaxAgeSeconds > 0 || config.dlqMaxJobs > 0;
  }

  /** Starts the rounds; the first is one interval after the start. */
  start(): void {
    this.rounds.start();
  }

  /** Stops the rounds, letting a DLQ's batch in progress finish. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.rounds.stop();
  }

  /** One round: a pass if this orchestrator takes the leader key. Never throws. */
  round(): Promise<void> {
    return this.rounds.round();
  }

  /** Trims every DLQ now (whoever holds the leader key); returns what it removed. */
  async pass(): Promise<TrimReport> {
    const removed: TrimReport = new Map();
    for (const dlq of await this.dlqs()) {
      let total = 0;
      for (;;) {
        const [count, more] = await this.scripts.run<[number, number]>(
          this.redis,
          "dlq-trim-age",
          [dlq, dlqStatsKey(dlq)],
          [this.config.dlqMaxAgeSeconds, BATCH, this.config.dlqMaxJobs],
        );
        total += count;
        if (more === 0 || this.stopping) break;
      }
      if (total > 0) removed.set(dlq, total);
    }
    return removed;
  }

  /** The default DLQ and every DLQ named by a summary key. */
  private async dlqs(): Promise<string[]> {
    const names = new Set([dlqKey(this.config.defaultDlqName)]);
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.scan(
        cursor,
        "MATCH",
        `${SUMMARY_PREFIX}*`,
        "COUNT",
        1000,
      );
      for (const key of keys) names.add(dlqKey(key.slice(SUMMARY_PREFIX.length)));
      cursor = next;
    } while (cursor !== "0");
    return [...names].sort();
  }
}
