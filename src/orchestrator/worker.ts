import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import type { ResolvedConfig } from "../config/config.js";
import { ConfigError } from "../errors.js";
import { RunnerPool } from "../runner/runner-pool.js";
import { JobStore } from "../store/job-store.js";
import { queueKey } from "../store/keys.js";
import { connectRedis, throttled } from "../store/redis.js";
import { EventBus } from "../telemetry/events.js";
import { noopJobTelemetry, type JobTelemetry } from "../telemetry/otel.js";
import { Heartbeat } from "./heartbeat.js";
import { startCron, type CronScheduler } from "./cron.js";
import { LeaseKeeper } from "./leases.js";
import { Recovery } from "./recovery.js";
import { JobExecution, ReleaseReasons, type ExecutionContext } from "./job-execution.js";
import { neededRunners, routedRunner } from "./routing.js";
import { jitteredPollDelayMs, Wakeup } from "./wakeup.js";

/** Options of a {@link Worker}. */
export interface WorkerOptions {
  config: ResolvedConfig;
  /** Queues to serve (names or keys); defaults to the configured default queue. */
  queues?: readonly string[];
  /** Exit once no job is ready and nothing runs (`--burst`). */
  burst?: boolean;
  events?: EventBus;
  /** Worker id; defaults to RRQ's `rrq_worker_<pid>_<6 hex>`. */
  workerId?: string;
  /** rrq.job span hooks (see {@link jobTelemetryFromEnv}); none by default. */
  telemetry?: JobTelemetry;
}

/** RRQ's worker id format. */
export function newWorkerId(): string {
  return `rrq_worker_${process.pid}_${randomUUID().replace(/-/g, "").slice(0, 6)}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Checks RRQ's worker preconditions (rrq-0.11-facts §2.1 step 6); throws ConfigError. */
function validateWorker(config: ResolvedConfig, queues: readonly string[]): void {
  if (queues.length === 0)
    throw new ConfigError("invalid_config", "the worker needs at least one queue");
  if (Object.keys(config.runners).length === 0) {
    throw new ConfigError("invalid_config", "no runners are configured ([rrq.runners.<name>])");
  }
  for (const queue of queues) {
    const routed = routedRunner(config, queue);
    if (routed && !config.runners[routed]) {
      throw new ConfigError(
        "invalid_config",
        `queue '${queue}' routes to runner '${routed}' but that runner is not configured`,
      );
    }
    if (!routed && !config.runners[config.defaultRunnerName]) {
      throw new ConfigError(
        "invalid_config",
        `default runner '${config.defaultRunnerName}' is not configured`,
      );
    }
  }
}

/**
 * The orchestrator's worker: claims jobs from its queues as capacity allows (RRQ's fairness
 * rules), dispatches each to its runner, records outcomes, keeps its health record and
 * recovers dead workers' jobs. `run()` resolves after a graceful shutdown (or, in burst mode,
 * when the queues are drained).
 */
export class Worker {
  readonly workerId: string;
  readonly queues: readonly string[];
  readonly events: EventBus;
  readonly config: ResolvedConfig;
  private readonly burst: boolean;
  private readonly telemetry: JobTelemetry;
  private readonly pools = new Map<string, RunnerPool>();
  /** Claimed jobs not yet finished: at the runner, or having their result written. */
  private readonly running = new Set<JobExecution>();
  /** The subset of `running` still at the runner (what worker concurrency limits). */
  private readonly executing = new Set<JobExecution>();
  private readonly finished = new Set<Promise<void>>();
  private redis: Redis | undefined;
  private store: JobStore | undefined;
  private wakeup: Wakeup | undefined;
  private heartbeat: Heartbeat | undefined;
  private leases: LeaseKeeper | undefined;
  private cron: CronScheduler | undefined;
  private socketDir: string | undefined;
  private stopping = false;
  private abandonWrites = false;
  private cursor = 0;
  private statusText = "initializing";

  constructor(options: WorkerOptions) {
    this.config = options.config;
    const queues = options.queues?.length ? options.queues : [options.config.defaultQueueName];
    this.queues = [...new Set(queues.map(queueKey))].sort();
    validateWorker(this.config, this.queues);
    this.burst = options.burst ?? false;
    this.events = options.events ?? new EventBus();
    this.workerId = options.workerId ?? newWorkerId();
    this.telemetry = options.telemetry ?? noopJobTelemetry;
  }

  /** The RRQ status string reported in the health record. */
  get status(): string {
    return this.statusText;
  }

  /** Jobs being executed right now. */
  get activeJobs(): number {
    return this.running.size;
  }

  /** Σ over started runners of pool_size × max_in_flight (at least 1), as RRQ sizes it. */
  get concurrency(): number {
    let total = 0;
    for (const pool of this.pools.values()) total += pool.fullCapacity;
    return Math.max(total, 1);
  }

  /** Asks the worker to stop: no new claims, then the graceful drain of `run()`. */
  requestShutdown(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.wakeup?.notify();
  }

  /** Starts runners and serves until shutdown (or until drained in burst mode). */
  async run(): Promise<void> {
    await this.start();
    try {
      await this.loop();
    } finally {
      await this.drain();
    }
  }

  private setStatus(status: string): void {
    if (status === this.statusText) return;
    this.statusText = status;
    this.events.emit("worker:status", { status });
  }

  private async start(): Promise<void> {
    const config = this.config;
    const onError = throttled((error: Error) =>
      this.events.emit("worker:error", { context: "redis connection (retrying)", error }),
    );
    this.redis = connectRedis(config.redisDsn, {
      name: this.workerId,
      onError,
    });
    this.store = new JobStore(this.redis);
    this.socketDir = mkdtempSync(join(tmpdir(), "rrq-"));
    // ajv and the schemas cost ~10 MB of heap: load them only in strict mode
    const validate = config.strictFrames
      ? (await import("../protocol/validate.js")).frameValidator()
      : undefined;
    const log = (message: string) =>
      this.events.emit("worker:error", { context: "runner protocol", error: new Error(message) });
    const names = new Set([...neededRunners(config, this.queues), ...Object.keys(config.runners)]);
    for (const name of names) {
      this.pools.set(
        name,
        new RunnerPool(config.runners[name]!, {
          events: this.events,
          mode: config.runnerManagementMode,
          socketDir: this.socketDir,
          connectTimeoutMs: config.runnerConnectTimeoutMs,
          connection: { validate, log },
        }),
      );
    }
    try {
      await Promise.all([...this.pools.values()].map((pool) => pool.start()));
      this.wakeup = new Wakeup(
        connectRedis(config.redisDsn, { name: `${this.workerId}:wake`, onError }),
        this.queues,
      );
      await this.wakeup.start();
    } catch (error) {
      await Promise.all([...this.pools.values()].map((pool) => pool.close(0)));
      await this.closeConnections();
      throw error;
    }
    // Runners are up: the first health record (written as the heartbeat starts) says so, instead
    // of "initializing" until the next tick up to a minute later.
    this.setStatus("running");
    const recovery = new Recovery(this.store, config, this.workerId, this.events);
    this.heartbeat = new Heartbeat(
      this.store,
      this.workerId,
      config,
      () => this.snapshot(),
      this.events,
      recovery,
    );
    this.heartbeat.start();
    this.leases = new LeaseKeeper(
      this.store,
      config,
      this.workerId,
      () => this.running,
      recovery,
      this.events,
    );
    this.leases.start();
    this.cron = startCron(this.redis, config, this.events);
  }

  private snapshot() {
    return {
      status: this.statusText,
      activeJobs: this.running.size,
      concurrencyLimit: this.concurrency,
      queues: this.queues,
    };
  }

  private executionContext(): ExecutionContext {
    return {
      config: this.config,
      store: this.store!,
      pools: this.pools,
      events: this.events,
      workerId: this.workerId,
      telemetry: this.telemetry,
      persist: (what, write) => this.persist(what, write),
      attemptEnded: (execution) => {
        if (this.executing.delete(execution)) this.wakeup?.notify();
      },
    };
  }

  /** Retries a Redis write with backoff until it succeeds; a claimed job's result is never dropped. */
  private async persist<T>(what: string, write: () => Promise<T>): Promise<T> {
    let delay = 100;
    for (;;) {
      try {
        return await write();
      } catch (error) {
        if (this.abandonWrites) throw error;
        this.events.emit("worker:error", {
          context: `redis write (${what}); retrying in ${delay} ms`,
          error: error as Error,
        });
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  private async loop(): Promise<void> {
    const context = this.executionContext();
    let backoff = 100;
    while (!this.stopping) {
      const capacity = this.freeCapacity();
      if (capacity <= 0) {
        this.setStatus("idle (concurrency limit)");
        await this.wakeup!.wait(Infinity);
        continue;
      }
      this.setStatus("polling");
      let result: { fetched: number; nextDueMs: number | undefined };
      try {
        result = await this.poll(capacity, context);
        backoff = 100;
      } catch (error) {
        this.events.emit("worker:error", {
          context: `poll; retrying in ${backoff} ms`,
          error: error as Error,
        });
        await this.wakeup!.wait(backoff);
        backoff = Math.min(backoff * 2, 5000);
        continue;
      }
      if (result.fetched > 0) continue;
      if (this.burst && this.running.size === 0) break;
      this.setStatus("idle (no jobs)");
      const untilDue = result.nextDueMs === undefined ? Infinity : result.nextDueMs - Date.now();
      await this.wakeup!.wait(
        Math.min(jitteredPollDelayMs(this.config.defaultPollDelaySeconds), untilDue),
      );
    }
  }

  /**
   * One claim pass over the queues (RRQ's fairness): a rotating start queue, first up to
   * ceil(capacity / queues) from each, then whatever capacity is left from queues that still
   * had jobs.
   */
  private async poll(
    capacity: number,
    context: ExecutionContext,
  ): Promise<{ fetched: number; nextDueMs: number | undefined }> {
    const n = this.queues.length;
    const start = this.cursor++ % n;
    const fairShare = Math.max(1, Math.ceil(capacity / n));
    const chunk = claimChunk(this.concurrency);
    const leaseMs = this.config.leaseSeconds * 1000;
    let remaining = capacity;
    let nextDueMs: number | undefined;
    const drained = new Set<string>();
    for (const pass of [0, 1]) {
      for (let i = 0; i < n && remaining > 0 && !this.stopping; i++) {
        const queue = this.queues[(start + i) % n]!;
        if (drained.has(queue)) continue;
        const ask = Math.min(pass === 0 ? Math.min(remaining, fairShare) : remaining, chunk);
        const { claimed, nextScore } = await this.store!.claim(queue, this.workerId, ask, leaseMs);
        if (claimed.length < ask) drained.add(queue);
        if (nextScore !== undefined && nextScore > Date.now())
          nextDueMs = Math.min(nextDueMs ?? Infinity, nextScore);
        for (const job of claimed) {
          remaining--;
          this.launch(new JobExecution(context, job, queue));
        }
      }
      if (remaining === 0) break;
    }
    return { fetched: capacity - remaining, nextDueMs };
  }

  /**
   * Slots for new claims. A job's slot frees when its runner part ends, not when its result is
   * stored, so the next claim overlaps the result writes instead of waiting for them (claims
   * and completions went in lockstep, leaving runner and Redis idle in turn). Results still
   * being written beyond one concurrency's worth take slots again, so a Redis that accepts
   * claims but keeps failing result writes cannot pile up claimed jobs.
   */
  private freeCapacity(): number {
    const writing = this.running.size - this.executing.size;
    return this.concurrency - this.executing.size - Math.max(0, writing - this.concurrency);
  }

  private launch(execution: JobExecution): void {
    this.running.add(execution);
    this.executing.add(execution);
    if (this.events.has("job:claimed")) {
      const hash = execution.claimed.hash;
      this.events.emit("job:claimed", {
        jobId: execution.jobId,
        queue: execution.queue,
        functionName: hash.function_name ?? "",
        attempt: Number(hash.current_retries ?? 0) + 1,
      });
    }
    const done = this.runTracked(execution, () => this.finished.delete(done));
    this.finished.add(done);
  }

  /** Runs one execution; never rejects. One async frame per job instead of a promise chain. */
  private async runTracked(execution: JobExecution, untrack: () => void): Promise<void> {
    try {
      await execution.run();
    } catch (error) {
      this.events.emit("worker:error", {
        context: `job ${execution.jobId}`,
        error: error as Error,
      });
    } finally {
      this.running.delete(execution);
      this.executing.delete(execution);
      untrack();
      this.wakeup?.notify();
    }
  }

  /**
   * Graceful shutdown (rrq-0.11-facts §2.13): wait up to the grace period for running jobs;
   * then send cancels (if cancel hints are on), stop the runners, and give every interrupted
   * job back to its queue without counting an attempt.
   */
  private async drain(): Promise<void> {
    this.stopping = true;
    await this.cron?.stop();
    const graceUntil = Date.now() + this.config.workerShutdownGracePeriodSeconds * 1000;
    while (this.running.size > 0 && Date.now() < graceUntil) await sleep(50);
    for (const execution of this.running) {
      execution.interrupted = true;
      if (this.config.runnerEnableInflightCancelHints) execution.cancel();
    }
    const graceMs = this.config.runnerShutdownTermGraceSeconds * 1000;
    await Promise.all([...this.pools.values()].map((pool) => pool.close(graceMs)));
    const writesDeadline = sleep(30_000).then(() => (this.abandonWrites = true));
    await Promise.race([Promise.all([...this.finished]), writesDeadline]);
    await this.leases?.stop();
    await this.heartbeat?.stop();
    this.setStatus("stopped");
    await this.closeConnections();
  }

  private async closeConnections(): Promise<void> {
    await this.wakeup?.close();
    if (this.redis) {
      try {
        await this.redis.quit();
      } catch {
        this.redis.disconnect();
      }
    }
    if (this.socketDir) rmSync(this.socketDir, { recursive: true, force: true });
  }
}

export { ReleaseReasons };

/**
 * Most jobs one claim call takes: half the worker's concurrency (at most 256). Claiming all free
 * slots at once made claim, runner and result writes take turns (each idle while another
 * worked); two smaller claims in flight keep the runner busy with one while Redis serves the
 * other (together with the early slot release of `freeCapacity`: +27 % burn-down in an A/B,
 * bench/RESULTS.md).
 */
export function claimChunk(concurrency: number): number {
  return Math.max(1, Math.min(256, Math.ceil(concurrency / 2)));
}
