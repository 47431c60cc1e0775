/**
 * What the fake and inline producers share: the real producer's enqueue API over an in-memory
 * job table instead of Redis. Every enqueue goes through the same steps as
 * `Producer.enqueue` (src/producer/producer.ts): the producer middleware chain, the option
 * checks of `planEnqueue`, the catalog check; then the write is a row in a Map. Unique keys,
 * rate limits and debounces act as the Lua scripts do, by the local clock (docs/testing.md).
 */
import type { AnyRegistry, JobTypes, ParamsOf, Untyped } from "@rrqkit/runner";
import { JobCatalog } from "@rrqkit/runner/contracts";
import { resolveConfig, type ResolvedConfig } from "../config/config.js";
import { ProducerError } from "../errors.js";
import {
  checkParamsContract,
  type BulkItemsOf,
  type EnqueueArgs,
  type LooseBulkItems,
} from "../producer/contracts.js";
import {
  checkMiddleware,
  pendingEnqueue,
  runAfter,
  runBefore,
  type PendingEnqueue,
  type ProducerMiddleware,
} from "../producer/middleware.js";
import { planEnqueue, type EnqueueOptions, type EnqueuePlan } from "../producer/options.js";
import {
  producerConfigFrom,
  type JobResult,
  type ProducerConfig,
  type WaitOptions,
} from "../producer/producer.js";
import { LocalRunner } from "./local-runner.js";
import { newJobState, type JobState, type RecordedJob, type RunContext } from "./inline-rules.js";

/** Options of {@link FakeProducer} and {@link InlineProducer}. */
export interface TestingProducerOptions {
  /** The handlers jobs run on (a `@rrqkit/runner` Registry). */
  registry?: AnyRegistry;
  /**
   * Job contracts: enqueues of catalogued functions are checked as by the real producer, and
   * the handlers get the runner's check too. Default: `config.jobCatalog`, when set.
   */
  catalog?: JobCatalog;
  /** Producer settings (queueName, maxRetries, jobTimeoutSeconds, ...); redisDsn is ignored. */
  defaults?: Omit<ProducerConfig, "redisDsn">;
  /**
   * The orchestrator settings the rules use (default_max_retries, backoff, max_snoozes,
   * `[rrq.functions]` policies, ...): a resolved config (`loadConfig`) or an `[rrq]` table.
   * Default: RRQ's defaults. The producer defaults come from it too, then `defaults`.
   */
  config?: ResolvedConfig | Record<string, unknown>;
}

/** Executions (attempts and runs after a snooze) one producer allows: a stop for runaways. */
export const MAX_EXECUTIONS = 10_000;

const TERMINAL = new Set(["COMPLETED", "FAILED"]);

function isResolved(config: ResolvedConfig | Record<string, unknown>): config is ResolvedConfig {
  return "defaultMaxRetries" in config && "runners" in config;
}

/** The enqueue API of `Producer<C>` over an in-memory job table; see the module comment. */
export abstract class LocalProducer<C extends JobTypes<C> = Untyped> {
  /** The orchestrator settings the inline rules follow. */
  readonly settings: ResolvedConfig;
  /** The job contracts params are checked against; undefined: none are checked. */
  readonly catalog: JobCatalog | undefined;
  protected readonly states = new Map<string, JobState>();
  private readonly middlewares: ProducerMiddleware[] = [];
  private readonly guards = new Map<string, { jobId: string; untilMs: number }>();
  private readonly defaults: ReturnType<typeof producerConfigFrom>;
  protected readonly runner: LocalRunner | undefined;
  private executions = 0;

  constructor(options: TestingProducerOptions = {}) {
    const raw = options.config ?? {};
    this.settings = isResolved(raw) ? raw : resolveConfig(raw);
    this.catalog =
      options.catalog ??
      (this.settings.jobCatalog === undefined
        ? undefined
        : JobCatalog.load(this.settings.jobCatalog));
    this.defaults = { ...producerConfigFrom(this.settings), ...stripDsn(options.defaults) };
    this.runner = options.registry && new LocalRunner(options.registry, this.catalog);
  }

  /** Every job recorded, in enqueue order. */
  get jobs(): RecordedJob[] {
    return [...this.states.values()].map((s) => s.job);
  }

  /** The recorded jobs of one function, in enqueue order. */
  jobsFor(functionName: string): RecordedJob[] {
    return this.jobs.filter((job) => job.functionName === functionName);
  }

  /** Forgets every recorded job, unique key, rate limit and debounce. */
  clear(): void {
    this.states.clear();
    this.guards.clear();
    this.executions = 0;
  }

  /** Adds a producer middleware (docs/middleware.md); runs as on the real producer. */
  use(middleware: ProducerMiddleware): this {
    checkMiddleware(middleware);
    this.middlewares.push(middleware);
    return this;
  }

  /** Like `Producer.enqueue`: validates, records the job and returns its id. */
  async enqueue<N extends string>(functionName: N, ...args: EnqueueArgs<C, N>): Promise<string> {
    const [params = {}, options = {}] = args;
    const id = await this.enqueueOne(functionName, params, options);
    if (id === null)
      throw new ProducerError(
        "rate_limited",
        `rate limit '${options.rateLimitKey}' is active; job dropped`,
      );
    return id;
  }

  /** Like `Producer.enqueueWithRateLimit`: null when the window's key is held. */
  enqueueWithRateLimit<N extends string>(
    functionName: N,
    params: ParamsOf<C, N>,
    options: EnqueueOptions & { rateLimitKey: string; rateLimitSeconds: number },
  ): Promise<string | null> {
    return this.enqueueOne(functionName, params, options);
  }

  /** Like `Producer.enqueueWithDebounce`: updates the job still PENDING under the key. */
  async enqueueWithDebounce<N extends string>(
    functionName: N,
    params: ParamsOf<C, N>,
    options: EnqueueOptions & { debounceKey: string; debounceSeconds: number },
  ): Promise<string> {
    return (await this.enqueueOne(functionName, params, options))!;
  }

  /** Like `Producer.enqueueMany`: every item is checked before any is recorded. */
  async enqueueMany<const T extends LooseBulkItems>(
    items: T & BulkItemsOf<C, T>,
  ): Promise<string[]> {
    const now = Date.now();
    const pendings: PendingEnqueue[] = [];
    for (const item of items) {
      const pending = pendingEnqueue(item.functionName, item.params ?? {}, item.options ?? {});
      await runBefore(this.middlewares, pending);
      pendings.push(pending);
    }
    const seen = new Set<string>();
    const plans = pendings.map((p, i) => {
      const plan = this.plan(p, now, `items[${i}]`);
      if (plan.mode !== "enqueue")
        throw new ProducerError(
          "invalid_argument",
          `item ${i}: rate-limit and debounce options are not allowed in enqueue_many`,
        );
      if (seen.has(plan.jobId) || this.states.has(plan.jobId))
        throw new ProducerError("duplicate_job_id", `job_id already exists: ${plan.jobId}`);
      seen.add(plan.jobId);
      return plan;
    });
    const ids = plans.map((plan, i) => this.write(plan, pendings[i]!)!);
    for (const [i, id] of ids.entries()) await runAfter(this.middlewares, pendings[i]!, id);
    for (const id of ids) await this.written(id);
    return ids;
  }

  /** The job's status, result and last error (the real producer's shape); null: no such job. */
  getJobStatus(jobId: string): Promise<JobResult | null> {
    const job = this.states.get(jobId)?.job;
    if (!job) return Promise.resolve(null);
    return Promise.resolve({
      status: job.status,
      result: job.result ?? null,
      lastError: job.lastError ?? null,
    });
  }

  /**
   * The job's status once it is final. Nothing runs in the background here: a job that is not
   * final (a fake's job before `drain()`) gives null at once, as a real wait that timed out.
   */
  async waitForCompletion(jobId: string, options: WaitOptions = {}): Promise<JobResult | null> {
    if (options.timeoutSeconds !== undefined && !(options.timeoutSeconds > 0))
      throw new ProducerError("invalid_argument", "timeout_seconds must be a finite number > 0");
    const status = await this.getJobStatus(jobId);
    return status && TERMINAL.has(status.status) ? status : null;
  }

  /** Stops handlers still running (their jobs stay as they are). */
  close(): Promise<void> {
    this.runner?.close();
    return Promise.resolve();
  }

  /** Called after a job was recorded and its after-hooks ran (the inline producer runs it). */
  protected abstract written(jobId: string): Promise<void>;

  /** What the inline rules need to run this producer's jobs. */
  protected runContext(): RunContext {
    const runner = this.runner;
    if (!runner)
      throw new ProducerError(
        "invalid_argument",
        "this testing producer has no registry to run jobs",
      );
    return {
      config: this.settings,
      execute: (request) => runner.run(request),
      countExecution: () => {
        if (++this.executions > MAX_EXECUTIONS)
          throw new Error(
            `stopped after ${MAX_EXECUTIONS} executions: a job keeps enqueuing or snoozing`,
          );
      },
    };
  }

  private async enqueueOne(
    functionName: string,
    params: unknown,
    options: EnqueueOptions,
  ): Promise<string | null> {
    const pending = pendingEnqueue(functionName, params, options);
    await runBefore(this.middlewares, pending);
    const id = this.write(this.plan(pending), pending);
    if (id === null) return null;
    try {
      await runAfter(this.middlewares, pending, id);
    } finally {
      // the job IS written: it runs even when an after-hook fails (the error still propagates)
      await this.written(id);
    }
    return id;
  }

  /** planEnqueue on the final job, then the catalog check, as `Producer` does. */
  private plan(pending: PendingEnqueue, now?: number, where?: string): EnqueuePlan {
    const plan = planEnqueue(
      pending.functionName,
      pending.params,
      pending.options,
      this.defaults,
      now,
    );
    checkParamsContract(this.catalog, plan.functionName, pending.params, where);
    return plan;
  }

  /** The in-memory write: the Lua scripts' rules for guards and ids; null when rate-limited. */
  private write(plan: EnqueuePlan, pending: PendingEnqueue): string | null {
    const now = Date.now();
    const guard = plan.guard && this.guards.get(plan.guard.key);
    const held = guard && guard.untilMs > now ? guard : undefined;
    if (plan.mode === "rate_limit" && held) return null;
    if (plan.mode === "debounce" && held) {
      const existing = this.states.get(held.jobId);
      if (existing?.job.status === "PENDING") return this.update(existing, plan, pending);
    }
    if (plan.mode === "enqueue" && held && this.states.has(held.jobId)) return held.jobId;
    if (this.states.has(plan.jobId))
      throw new ProducerError("duplicate_job_id", "job_id already exists");
    const state = newJobState(plan, pending.params, pending.options);
    this.states.set(plan.jobId, state);
    if (plan.guard)
      this.guards.set(plan.guard.key, {
        jobId: plan.jobId,
        untilMs: now + plan.guard.ttlSeconds * 1000,
      });
    return plan.jobId;
  }

  /** A debounce hitting a PENDING job: its function, params and options become the new call's. */
  private update(state: JobState, plan: EnqueuePlan, pending: PendingEnqueue): string {
    const id = state.job.id;
    state.plan = { ...plan, jobId: id };
    state.clockMs = plan.runAtUs / 1000;
    Object.assign(state.job, {
      functionName: plan.functionName,
      params: pending.params,
      options: pending.options,
      queueName: plan.queue,
      deferredSeconds: Math.max(0, plan.runAtUs - plan.enqueueTimeUs) / 1_000_000,
    });
    return id;
  }
}

/** The producer settings of `defaults` without a DSN (nothing connects anywhere). */
function stripDsn(defaults: ProducerConfig | undefined): Omit<ProducerConfig, "redisDsn"> {
  const given = Object.entries(defaults ?? {}).filter(
    ([key, value]) => key !== "redisDsn" && value !== undefined,
  );
  return Object.fromEntries(given);
}
