/**
 * The operator data API: what `rrq queue|job|dlq|check` show, as TypeScript calls to script
 * against. Every read is a bounded number of short Redis commands (cursors and pages, never a
 * blocking scan); every multi-step write is one Lua script per job or batch.
 *
 * ```ts
 * const api = RrqApi.fromConfig(loadConfig().config);
 * for (const q of await api.queues.list()) console.log(q.name, q.pending, q.latencyMs);
 * await api.dlq.requeue({ functionName: "send_email" }, { onProgress: console.log });
 * await api.close();
 * ```
 */
import type { Redis } from "ioredis";
import type { ResolvedConfig } from "../config/config.js";
import { connectRedis, DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS } from "../store/redis.js";
import { DlqApi } from "./dlq.js";
import { FlowApi } from "./flow.js";
import { JobsApi } from "./jobs.js";
import { OutputApi } from "./live.js";
import { QueuesApi } from "./queues.js";
import { apiSettingsFrom, defaultApiSettings, type ApiSettings } from "./settings.js";
import { StatsApi } from "./stats.js";
import { WorkersApi } from "./workers.js";

/** Entry point of the data API: one Redis connection and the six areas. */
export class RrqApi {
  readonly queues: QueuesApi;
  readonly jobs: JobsApi;
  readonly dlq: DlqApi;
  readonly workers: WorkersApi;
  readonly stats: StatsApi;
  /** Flow control: pause and resume queues; paused queues, parked jobs, circuit breakers. */
  readonly flow: FlowApi;
  /** Live jobs: the output of jobs' attempts, read from a cursor or followed. */
  readonly output: OutputApi;

  /**
   * Uses `redis` (the caller keeps ownership unless `ownsConnection`), with the settings of an
   * rrq.toml or RRQ's defaults.
   */
  constructor(
    readonly redis: Redis,
    readonly settings: ApiSettings = defaultApiSettings(),
    private readonly ownsConnection = false,
  ) {
    this.flow = new FlowApi(redis);
    this.queues = new QueuesApi(redis, settings, this.flow);
    this.jobs = new JobsApi(redis, settings, this.queues);
    this.dlq = new DlqApi(redis, settings);
    this.workers = new WorkersApi(redis);
    this.stats = new StatsApi(redis, this.queues);
    this.output = new OutputApi(redis);
  }

  /** Connects with the settings of a resolved rrq.toml. */
  static fromConfig(config: ResolvedConfig): RrqApi {
    return new RrqApi(
      connectRedis(config.redisDsn, {
        name: "rrqkit-admin",
        failFast: { connectTimeoutSeconds: config.redisConnectTimeoutSeconds },
      }),
      apiSettingsFrom(config),
      true,
    );
  }

  /** Connects to a DSN with RRQ's default settings. */
  static connect(redisDsn: string): RrqApi {
    return new RrqApi(
      connectRedis(redisDsn, {
        name: "rrqkit-admin",
        failFast: { connectTimeoutSeconds: DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS },
      }),
      defaultApiSettings(redisDsn),
      true,
    );
  }

  /** Closes the connection if the API opened it. */
  async close(): Promise<void> {
    if (!this.ownsConnection) return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}

export {
  QueuesApi,
  STATS_SCAN_LIMIT,
  type QueueSummary,
  type QueueStats,
  type QueueEntry,
  type StatsSource,
} from "./queues.js";
export {
  JobsApi,
  SCAN_LIMIT,
  type JobListOptions,
  type CancelResult,
  type DeleteResult,
  type RescheduleResult,
} from "./jobs.js";
export {
  DlqApi,
  DLQ_SORT_LIMIT,
  type DlqSelection,
  type DlqSelectionPage,
  type DlqBulkOptions,
  type DlqBulkResult,
  type DlqProgress,
} from "./dlq.js";
export { type DlqSummary } from "./dlq-summary.js";
export {
  FlowApi,
  checkedQueueKey,
  type PausedInfo,
  type PauseResult,
  type ResumeResult,
  type BreakerState,
} from "./flow.js";
export {
  OutputApi,
  jobProgress,
  nextLiveMessage,
  type OutputReadOptions,
  type OutputReadResult,
  type OutputFollowOptions,
} from "./live.js";
export {
  type ProgressValue,
  type OutputEntry,
  type OutputPage,
  type OutputCloseStatus,
} from "../store/live-store.js";
export { WorkersApi, type WorkerHealth, type ActiveJob } from "./workers.js";
export { StatsApi, type Counters, type DayStats } from "./stats.js";
export { jobTimeline, jobRuns, type TraceEvent, type JobRun, type RunOutcome } from "./trace.js";
export { jobView, jobJson, type JobView } from "./records.js";
export { apiSettingsFrom, defaultApiSettings, type ApiSettings } from "./settings.js";
