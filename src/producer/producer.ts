import type { JobTypes, ParamsOf, Untyped } from "@rrqkit/runner";
import { JobCatalog } from "@rrqkit/runner/contracts";
import { OutputApi, type OutputFollowOptions } from "../api/live.js";
import { progressFromHash, type OutputEntry, type ProgressValue } from "../store/live-store.js";
import type { Redis } from "ioredis";
import type { ResolvedConfig } from "../config/config.js";
import { loadConfig } from "../config/load.js";
import { runCancel, type CancelRefusal, type CancelReply } from "../control/cancel.js";
import { ProducerError, RrqError, redactDsn } from "../errors.js";
import { JOB_STATUSES } from "../store/job.js";
import { queueKey } from "../store/keys.js";
import { ProducerStore, type EnqueueReply } from "../store/producer-store.js";
import {
  connectRedis,
  DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS,
  redisDsnProblem,
} from "../store/redis.js";
import { enqueueInChunks, runAfterEach } from "./bulk.js";
import {
  checkParamsContract,
  type BulkItemsOf,
  type EnqueueArgs,
  type LooseBulkItems,
} from "./contracts.js";
import {
  checkMiddleware,
  pendingEnqueue,
  runAfter,
  runBefore,
  type PendingEnqueue,
  type ProducerMiddleware,
} from "./middleware.js";
import {
  planEnqueue,
  type EnqueueOptions,
  type EnqueuePlan,
  type ProducerDefaults,
} from "./options.js";

/**
 * Producer configuration (protocol/PRODUCER.md §2). Every field omitted takes **RRQ's built-in
 * default**, not rrq.toml's: `new Producer({ redisDsn })` never reads a file. To use rrq.toml's
 * defaults (as the CLI does), build the producer with {@link Producer.fromConfigFile}, which
 * also takes overrides.
 */
export interface ProducerConfig {
  redisDsn?: string;
  queueName?: string;
  maxRetries?: number;
  jobTimeoutSeconds?: number;
  resultTtlSeconds?: number;
  idempotencyTtlSeconds?: number;
  correlationMappings?: Record<string, string>;
}

/** How the producer connects; not part of the seven producer settings every binding shares. */
export interface ProducerConnection {
  /**
   * Seconds one connection attempt may take before a call fails with `redis_unavailable`
   * (default 5; rrq.toml `redis_connect_timeout_seconds`, env `RRQ_REDIS_CONNECT_TIMEOUT`).
   * A refused port fails at once. The producer keeps reconnecting, so a later call can succeed.
   */
  redisConnectTimeoutSeconds?: number;
}

/** The producer's job contracts (docs/contracts.md); not one of the seven shared settings. */
export interface ProducerContracts {
  /**
   * Checks the params of every enqueue of a catalogued function before anything is written
   * (a failure throws `InvalidParamsError`, code `invalid_params`); other functions are not
   * checked. {@link Producer.fromConfigFile} loads rrq.toml's `job_catalog` by itself.
   */
  catalog?: JobCatalog;
}

/** A job's state as producers report it. */
export interface JobResult {
  /** PENDING, ACTIVE, COMPLETED, FAILED, RETRYING, CANCELLED, or UNKNOWN for anything else. */
  status: string;
  result: unknown;
  lastError: string | null;
  /** rrqkit live jobs: the handler's latest progress; absent when it reported none. */
  progress?: ProgressValue;
}

/** What {@link Producer.cancel} did (the same fields in the Python and Rust producers). */
export interface ProducerCancelResult {
  cancelled: boolean;
  /** The job's status: CANCELLED when cancelled, else the status that refused it; null: no job. */
  status: string | null;
  /** Why nothing was cancelled (see {@link CancelRefusal}); absent when cancelled. */
  reason?: CancelRefusal;
}

/** Options of {@link Producer.waitForCompletion}. */
export interface WaitOptions {
  timeoutSeconds?: number;
  blockIntervalSeconds?: number;
}

/** One item of {@link Producer.enqueueMany}. */
export interface BulkItem {
  functionName: string;
  params?: Record<string, unknown>;
  options?: EnqueueOptions;
}

const CONFIG_KEYS = [
  "redisDsn",
  "queueName",
  "maxRetries",
  "jobTimeoutSeconds",
  "resultTtlSeconds",
  "idempotencyTtlSeconds",
  "correlationMappings",
  "redisConnectTimeoutSeconds",
];
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/** A bad producer config is `invalid_config` (PRODUCER.md §2, §6), like a bad rrq.toml. */
function configError(message: string): ProducerError {
  return new ProducerError("invalid_config", `invalid producer config: ${message}`);
}

function checkConfig(config: ProducerConfig): Required<ProducerConfig> {
  for (const key of Object.keys(config))
    if (!CONFIG_KEYS.includes(key)) throw configError(`unknown key '${key}'`);
  const int = (v: number | undefined, label: string, fallback: number, min: number) => {
    if (v === undefined) return fallback;
    if (!Number.isInteger(v) || v < min) throw configError(`${label} must be an integer >= ${min}`);
    return v;
  };
  const mappings = config.correlationMappings ?? {};
  if (typeof mappings !== "object" || Object.values(mappings).some((v) => typeof v !== "string")) {
    throw configError("correlation_mappings must map strings to strings");
  }
  const dsn = config.redisDsn ?? "redis://localhost:6379/0";
  const dsnProblem = typeof dsn === "string" ? redisDsnProblem(dsn) : "must be a string";
  if (dsnProblem) throw configError(`redis_dsn ${dsnProblem}`);
  const queue = config.queueName ?? "rrq:queue:default";
  if (typeof queue !== "string" || queue.trim() === "")
    throw configError("queue_name cannot be empty");
  return {
    redisDsn: dsn,
    queueName: queueKey(queue),
    maxRetries: int(config.maxRetries, "max_retries", 5, 0),
    jobTimeoutSeconds: int(config.jobTimeoutSeconds, "job_timeout_seconds", 300, 1),
    resultTtlSeconds: int(config.resultTtlSeconds, "result_ttl_seconds", 86400, -Infinity),
    idempotencyTtlSeconds: int(config.idempotencyTtlSeconds, "idempotency_ttl_seconds", 21600, 1),
    correlationMappings: { ...mappings },
  };
}

/** The catalog rrq.toml's `job_catalog` names, as a {@link ProducerContracts}. */
function catalogOf(config: ResolvedConfig): ProducerContracts {
  return config.jobCatalog === undefined ? {} : { catalog: JobCatalog.load(config.jobCatalog) };
}

/** Seconds of `redisConnectTimeoutSeconds`, checked. */
function connectTimeout(config: ProducerConnection): number {
  const seconds = config.redisConnectTimeoutSeconds ?? DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS;
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0)
    throw configError("redis_connect_timeout_seconds must be a finite number > 0");
  return seconds;
}

/** A failed Redis call as a ProducerError: `redis_unavailable` when no connection came up. */
function redisFailure(error: unknown, dsn: string, what: string): ProducerError {
  if (error instanceof ProducerError) return error;
  if (error instanceof RrqError && error.code === "redis_unavailable")
    return new ProducerError("redis_unavailable", error.message, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  if (/max retries per request|Connection is closed/i.test(message))
    return new ProducerError("redis_unavailable", `cannot connect to Redis at ${redactDsn(dsn)}`, {
      cause: error,
    });
  return new ProducerError("redis_error", `${what} failed on ${redactDsn(dsn)}: ${message}`, {
    cause: error,
  });
}

/**
 * The producer settings an orchestrator config implies (protocol/PRODUCER.md §2), with its
 * Redis connect timeout.
 */
export function producerConfigFrom(
  config: ResolvedConfig,
): Required<ProducerConfig> & Required<ProducerConnection> {
  return {
    redisConnectTimeoutSeconds: config.redisConnectTimeoutSeconds,
    redisDsn: config.redisDsn,
    queueName: config.defaultQueueName,
    maxRetries: config.defaultMaxRetries,
    jobTimeoutSeconds: config.defaultJobTimeoutSeconds,
    resultTtlSeconds: config.defaultResultTtlSeconds,
    idempotencyTtlSeconds: config.defaultUniqueJobLockTtlSeconds,
    correlationMappings: { ...config.correlationMappings },
  };
}

/**
 * Enqueues jobs and reads their status, writing exactly what RRQ 0.11's producer writes
 * (protocol/PRODUCER.md). Native TypeScript over ioredis; every enqueue is one Lua script.
 *
 * Settings come from the constructor argument only, with RRQ's defaults for what is omitted
 * (max_retries 5, job_timeout_seconds 300, ...); rrq.toml is read only by
 * {@link Producer.fromConfigFile}. When Redis cannot be reached a call fails within the connect
 * timeout with a `ProducerError` of code `redis_unavailable` (it never waits forever).
 *
 * ```ts
 * const producer = new Producer({ redisDsn: "redis://localhost:6379/0" });
 * const id = await producer.enqueue("send_email", { to: "a@b.c" }, { maxRetries: 3 });
 * const done = await producer.waitForCompletion(id, { timeoutSeconds: 10 });
 * ```
 */
export class Producer<C extends JobTypes<C> = Untyped> {
  readonly config: Readonly<Required<ProducerConfig>>;
  /** The job contracts params are checked against; undefined: none are checked. */
  readonly catalog: JobCatalog | undefined;
  private readonly store: ProducerStore;
  private output: OutputApi | undefined;
  private readonly ownsConnection: boolean;
  private readonly middlewares: ProducerMiddleware[] = [];

  /**
   * Validates `config` (a bad key or value, or a malformed `redisDsn`, throws `invalid_config`)
   * and starts connecting in the background: the constructor never waits for Redis. `redis` is
   * an existing connection to use instead (the caller keeps ownership). `C`, the generated
   * `Jobs` interface of `rrq jobs types --lang ts`, types the params of catalogued functions.
   */
  constructor(config: ProducerConfig & ProducerConnection & ProducerContracts = {}, redis?: Redis) {
    const { redisConnectTimeoutSeconds, catalog, ...settings } = config;
    this.config = Object.freeze(checkConfig(settings));
    this.catalog = catalog;
    const timeout = connectTimeout({ redisConnectTimeoutSeconds });
    this.ownsConnection = redis === undefined;
    this.store = new ProducerStore(
      redis ??
        connectRedis(this.config.redisDsn, {
          name: "rrqkit-producer",
          failFast: { connectTimeoutSeconds: timeout },
        }),
    );
  }

  /**
   * A producer configured from rrq.toml as the CLI reads it (explicit path → RRQ_CONFIG →
   * ./rrq.toml; `RRQ_REDIS_DSN` and `RRQ_REDIS_CONNECT_TIMEOUT` override), then `overrides`
   * (e.g. `{ redisDsn }`) on top: the way to get rrq.toml's defaults in code. rrq.toml's
   * `job_catalog` becomes the producer's catalog (a bad catalog throws `CatalogError`).
   */
  static fromConfigFile<C extends JobTypes<C> = Untyped>(
    path?: string,
    env: NodeJS.ProcessEnv = process.env,
    overrides: ProducerConfig & ProducerConnection & ProducerContracts = {},
  ): Producer<C> {
    const { config } = loadConfig({ path, env });
    return new Producer<C>({
      ...producerConfigFrom(config),
      ...catalogOf(config),
      ...overrides,
    });
  }

  /**
   * Adds a middleware around every enqueue (docs/middleware.md): `beforeEnqueue` hooks run in
   * registration order before validation and may change params and options or veto the job
   * (`EnqueueVetoedError`, code `enqueue_vetoed`, nothing written); `afterEnqueue` hooks run in
   * reverse order after the write. Returns this for chaining.
   */
  use(middleware: ProducerMiddleware): this {
    checkMiddleware(middleware);
    this.middlewares.push(middleware);
    return this;
  }

  private get defaults(): ProducerDefaults {
    return this.config;
  }

  private check(reply: EnqueueReply, plan: EnqueuePlan): string | null {
    switch (reply.code) {
      case 1:
      case 0:
        return reply.jobId;
      case 2:
        if (plan.mode === "rate_limit") return null;
        throw new ProducerError("redis_error", `unexpected enqueue status 2 for job ${plan.jobId}`);
      case -1:
        throw new ProducerError("duplicate_job_id", "job_id already exists");
      default:
        throw new ProducerError("redis_error", `unexpected enqueue status ${reply.code}`);
    }
  }

  /** The plan of one enqueue, its params checked against the catalog first (nothing written). */
  private plan(
    functionName: string,
    params: unknown,
    options: EnqueueOptions,
    now?: number,
    where?: string,
  ): EnqueuePlan {
    const plan = planEnqueue(functionName, params, options, this.defaults, now);
    checkParamsContract(this.catalog, plan.functionName, params, where);
    return plan;
  }

  /**
   * One enqueue through the middleware chain: before-hooks, then the checks on the final job, the
   * write, and the after-hooks unless nothing was written (a rate-limited drop returns null).
   */
  private async enqueueOne(
    functionName: string,
    params: unknown,
    options: EnqueueOptions,
  ): Promise<{ id: string | null; job: PendingEnqueue }> {
    if (this.middlewares.length === 0) {
      const id = await this.run(this.plan(functionName, params, options));
      return { id, job: { functionName, params: params as Record<string, unknown>, options } };
    }
    const job = pendingEnqueue(functionName, params, options);
    await runBefore(this.middlewares, job);
    const id = await this.run(this.plan(job.functionName, job.params, job.options));
    if (id !== null) await runAfter(this.middlewares, job, id);
    return { id, job };
  }

  private async run(plan: EnqueuePlan): Promise<string | null> {
    let reply: EnqueueReply;
    try {
      reply = await this.store.enqueue(plan);
    } catch (error) {
      throw redisFailure(error, this.config.redisDsn, "enqueue");
    }
    return this.check(reply, plan);
  }

  /**
   * Enqueues `functionName` with `params`. With rate-limit options a dropped call throws
   * `rate_limited` (use {@link enqueueWithRateLimit} to get null instead); with debounce
   * options it behaves like {@link enqueueWithDebounce}. A catalogued function's params are
   * checked first (`InvalidParamsError`); on a `Producer<Jobs>` they are typed too.
   */
  async enqueue<N extends string>(functionName: N, ...args: EnqueueArgs<C, N>): Promise<string> {
    const [params = {}, options = {}] = args;
    const { id, job } = await this.enqueueOne(functionName, params, options);
    if (id === null)
      throw new ProducerError(
        "rate_limited",
        `rate limit '${job.options.rateLimitKey}' is active; job dropped`,
      );
    return id;
  }

  /** Enqueues unless a job already ran in the window of `rateLimitKey`; null when dropped. */
  async enqueueWithRateLimit<N extends string>(
    functionName: N,
    params: ParamsOf<C, N>,
    options: EnqueueOptions & { rateLimitKey: string; rateLimitSeconds: number },
  ): Promise<string | null> {
    return (await this.enqueueOne(functionName, params, options)).id;
  }

  /** Enqueues, or updates the job still pending under `debounceKey`; returns its id. */
  async enqueueWithDebounce<N extends string>(
    functionName: N,
    params: ParamsOf<C, N>,
    options: EnqueueOptions & { debounceKey: string; debounceSeconds: number },
  ): Promise<string> {
    return (await this.enqueueOne(functionName, params, options)).id!;
  }

  /**
   * Enqueues many jobs, all or nothing: every item is validated first (a bad item or a job id
   * repeated in `items` throws and writes nothing), then one script call per
   * 500 items (`BULK_CHUNK_SIZE`) writes each chunk whole or not at all — Redis out of memory,
   * or a `jobId` that already exists (`duplicate_job_id`), leaves the chunk unwritten. A
   * failure throws a {@link BulkEnqueueError} whose `writtenIds` are exactly the jobs earlier
   * chunks wrote (none for up to 500 items). Rate-limit and debounce options are not allowed.
   * The first item whose params break its contract fails the whole call (`items[i]: ...`).
   */
  async enqueueMany<const T extends LooseBulkItems>(
    items: T & BulkItemsOf<C, T>,
  ): Promise<string[]> {
    const jobs: PendingEnqueue[] = items.map((item) =>
      this.middlewares.length === 0
        ? {
            functionName: item.functionName,
            params: (item.params ?? {}) as Record<string, unknown>,
            options: item.options ?? {},
          }
        : pendingEnqueue(item.functionName, item.params ?? {}, item.options ?? {}),
    );
    // Every item's before-hooks run before anything is checked or written: all or nothing.
    if (this.middlewares.length > 0) for (const job of jobs) await runBefore(this.middlewares, job);
    const now = Date.now();
    const seen = new Set<string>();
    const plans = jobs.map((job, i) => {
      const plan = this.plan(job.functionName, job.params, job.options, now, `items[${i}]`);
      if (plan.mode !== "enqueue")
        throw new ProducerError(
          "invalid_argument",
          `item ${i}: rate-limit and debounce options are not allowed in enqueue_many`,
        );
      if (seen.has(plan.jobId))
        throw new ProducerError("duplicate_job_id", `job_id '${plan.jobId}' is repeated`);
      seen.add(plan.jobId);
      return plan;
    });
    const write = enqueueInChunks(this.store, plans, (error) =>
      redisFailure(error, this.config.redisDsn, "bulk enqueue"),
    );
    return this.middlewares.length === 0 ? write : runAfterEach(this.middlewares, jobs, write);
  }

  /** The job's status, result and last error; null when the job does not exist. */
  async getJobStatus(jobId: string): Promise<JobResult | null> {
    let hash: Record<string, string> | undefined;
    try {
      hash = await this.store.jobHash(jobId);
    } catch (error) {
      throw redisFailure(error, this.config.redisDsn, "get_job_status");
    }
    if (!hash) return null;
    const status = (JOB_STATUSES as readonly string[]).includes(hash.status ?? "")
      ? hash.status!
      : "UNKNOWN";
    let result: unknown = null;
    const raw = hash.result;
    if (raw !== undefined && raw !== "" && raw.toLowerCase() !== "null") {
      try {
        result = JSON.parse(raw);
      } catch {
        result = raw;
      }
    }
    const progress = progressFromHash(hash);
    return {
      status,
      result,
      lastError: hash.last_error ?? null,
      ...(progress ? { progress } : {}),
    };
  }

  /**
   * Follows the output a job's attempt streams (live jobs, README "Live jobs"): yields each
   * entry as it is written and ends after the attempt's closed marker (or when the job is
   * final and its output stays quiet). Without `attempt`, the latest attempt (waiting for the
   * first to start). Entries: `{kind: "out"|"err"|"log", data}`, `{kind: "truncated",
   * dropped}`, `{kind: "closed", status}`.
   */
  tail(jobId: string, options: OutputFollowOptions = {}): AsyncGenerator<OutputEntry> {
    this.output ??= new OutputApi(this.store.redis);
    return this.output.follow(jobId, options);
  }

  /**
   * Waits until the job is COMPLETED, FAILED or CANCELLED, using the job's events stream as a
   * wake-up (the hash is the truth). Null when `timeoutSeconds` (default 30) pass first.
   */
  async waitForCompletion(jobId: string, options: WaitOptions = {}): Promise<JobResult | null> {
    const timeoutSeconds = options.timeoutSeconds ?? 30;
    const blockSeconds = options.blockIntervalSeconds ?? 0.25;
    if (!(timeoutSeconds > 0))
      throw new ProducerError("invalid_argument", "timeout_seconds must be a finite number > 0");
    if (!(blockSeconds >= 0))
      throw new ProducerError(
        "invalid_argument",
        "block_interval_seconds must be a finite number >= 0",
      );
    const deadline = Date.now() + timeoutSeconds * 1000;
    const blocking = this.store.redis.duplicate();
    blocking.on("error", () => {}); // a failing XREAD reports the error itself
    try {
      let lastId = "$";
      for (;;) {
        const status = await this.getJobStatus(jobId);
        if (status && TERMINAL.has(status.status)) return status;
        const left = deadline - Date.now();
        if (left <= 0) return null;
        const block = blockSeconds === 0 ? left : Math.min(blockSeconds * 1000, left);
        try {
          lastId = await this.store.waitForEvent(blocking, jobId, lastId, block);
        } catch (error) {
          throw redisFailure(error, this.config.redisDsn, "wait_for_completion");
        }
      }
    } finally {
      blocking.disconnect();
    }
  }

  /**
   * Cancels a job, waiting or running (design §C, job-cancel-2.lua): a waiting job leaves its
   * queue; a job running on an rrqkit orchestrator ends CANCELLED at once, its runner gets a
   * cancel frame and a late result of that attempt is fenced off. Refusals are values:
   * `{cancelled: false, status, reason}` (reason `not_found` with status null, `not_waiting`,
   * `no_queue`, `not_in_queue`, or `running_unfenced` for a job RRQ's own orchestrator runs).
   */
  async cancel(jobId: string): Promise<ProducerCancelResult> {
    if (typeof jobId !== "string" || jobId === "")
      throw new ProducerError("invalid_argument", "job_id must be a non-empty string");
    let reply: CancelReply;
    try {
      reply = await runCancel(
        this.store.redis,
        this.store.scripts,
        jobId,
        this.config.resultTtlSeconds,
      );
    } catch (error) {
      throw redisFailure(error, this.config.redisDsn, "cancel");
    }
    if (reply.code === "cancelled") return { cancelled: true, status: "CANCELLED" };
    return { cancelled: false, status: reply.status, reason: reply.reason };
  }

  /** Closes the Redis connection (unless it was passed in). */
  async close(): Promise<void> {
    if (!this.ownsConnection) return;
    try {
      await this.store.redis.quit();
    } catch {
      this.store.redis.disconnect();
    }
  }
}
