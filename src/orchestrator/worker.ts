import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { defaultRunnerMissing, type ResolvedConfig } from "../config/config.js";
import { WorkerControl, type QuietSource } from "../control/worker-control.js";
import { ConfigError } from "../errors.js";
import { RedisClock } from "../clock/redis-clock.js";
import { RunnerProcessGroups } from "../runner/process-groups.js";
import { RunnerPool } from "../runner/runner-pool.js";
import { FlowStore } from "../store/flow-store.js";
import { JobStore } from "../store/job-store.js";
import { bareQueueName } from "../store/keys.js";
import { FlowHooks, QueueClaims } from "../flow/index.js";
import { connectRedis } from "../store/redis.js";
import { queueWaitMs } from "../metrics/job-wait.js";
import type { WorkerMetrics } from "../metrics/worker-metrics.js";
import type { Logger } from "pino";
import { loadPlugins, pluginLogTo, type LoadedPlugins } from "../plugins/loader.js";
import { EventBus, type JobRef } from "../telemetry/events.js";
import { noopJobTelemetry, type JobTelemetry } from "../telemetry/otel.js";
import { closeRedis, within } from "./bounded.js";
import { finalWritesSettled, ShutdownTimings, type ShutdownReport } from "./shutdown.js";
import { Heartbeat } from "./heartbeat.js";
import { ClusterTasks, WorkerEndpoints, type CompanionContext } from "./companions.js";
import { LeaseKeeper } from "./leases.js";
import { Recovery } from "./recovery.js";
import type { LiveContext } from "../live/attempt.js";
import { LiveStore } from "../store/live-store.js";
import { JobExecution, ReleaseReasons, type ExecutionContext } from "./job-execution.js";
import { RedisMonitor } from "./redis-monitor.js";
import { neededRunners, routedRunner, unservedRoutes } from "./routing.js";
import { jitteredPollDelayMs, Wakeup } from "./wakeup.js";

/** Options of a {@link Worker}. */
export interface WorkerOptions {
  config: ResolvedConfig;
  /**
   * Queues to serve (names or keys, each optionally `:weight`, as `--queue`); defaults to
   * `[rrq] queues`, else the configured default queue and every queue named in `[rrq.routing]`
   * (see queuePlan in src/flow/queue-schedule.ts).
   */
  queues?: readonly string[];
  /** Claim from the queues in list order (`--strict-queues`; also `strict_queues`). */
  strictQueues?: boolean;
  /** Exit once no job is ready and nothing runs (`--burst`). */
  burst?: boolean;
  events?: EventBus;
  /** Worker id; defaults to RRQ's `rrq_worker_<pid>_<6 hex>`. */
  workerId?: string;
  /** rrq.job span hooks (see {@link jobTelemetryFromEnv}); none by default. */
  telemetry?: JobTelemetry;
  /**
   * The local wall clock the Redis clock's offset is measured against (tests skew it);
   * `Date.now` by default.
   */
  localNow?: () => number;
  /**
   * SIGTSTP makes the worker quiet, as in Sidekiq (default true; false leaves the signal's
   * default action, e.g. for several workers embedded in one process).
   */
  quietOnSigtstp?: boolean;
  /**
   * Environment the OTLP metrics variables are read from (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`,
   * ...; README "Metrics"); `process.env` by default. The `/metrics` endpoint follows
   * `metrics_port` in the config.
   */
  metricsEnv?: NodeJS.ProcessEnv;
  /**
   * Where the `api.log` lines of rrq.toml's `plugins` go (`rrq worker run` passes its logger);
   * a logger on stdout in `RRQ_LOG_FORMAT` by default.
   */
  pluginLogger?: Logger;
}

/** Polls in a row that claim nothing but park jobs before the loop waits as when idle. */
const MAX_HELD_ONLY_POLLS = 50;

/** Offsets to Redis's clock beyond this are logged (once, and again when they move as much). */
export const CLOCK_SKEW_WARN_MS = 1000;
/** How often a worker with tagged runners requeues jobs parked for their tags. */
const NEEDS_UNPARK_INTERVAL_MS = 1000;

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
      throw new ConfigError("invalid_config", defaultRunnerMissing(config));
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
  private redis: Redis | undefined;
  private store: JobStore | undefined;
  private clock: RedisClock | undefined;
  private readonly localNow: (() => number) | undefined;
  private wakeup: Wakeup | undefined;
  private stopProbe: (() => void) | undefined;
  /** Requeues jobs parked for tags this worker's runners offer (routing by capability). */
  private needsTimer: NodeJS.Timeout | undefined;
  private needsStore: FlowStore | undefined;
  private heartbeat: Heartbeat | undefined;
  private leases: LeaseKeeper | undefined;
  /** Cron, death handlers and the DLQ age trim, each when configured. */
  private clusterTasks: ClusterTasks | undefined;
  /** `/metrics` with the OTLP metrics export, and the dashboard, each when configured. */
  private endpoints: WorkerEndpoints | undefined;
  private readonly metricsEnv: NodeJS.ProcessEnv | undefined;
  private socketDir: string | undefined;
  private stopping = false;
  private resolveStop!: () => void;
  /** Settles when shutdown is requested. */
  private readonly stopRequested = new Promise<void>((resolve) => (this.resolveStop = resolve));
  private abandonWrites = false;
  private readonly monitor: RedisMonitor;
  private readonly groups: RunnerProcessGroups;
  private recovery: Recovery | undefined;
  /** Kills the runner processes if the process exits before drain() stopped them. */
  private readonly exitHook = () => this.groups.killAll();
  /** Claim order (fair, strict or weighted), flow configs, paused queues (src/flow/). */
  private readonly claims: QueueClaims;
  /** Slot releases and breaker records after attempts (src/flow/flow-hooks.ts). */
  private flow: FlowHooks | undefined;
  /** Live jobs' writes (progress, output), built with the first execution context. */
  private live: LiveContext | undefined;
  private statusText = "initializing";
  /** The quiet switch and the cancel channel (src/control/); set once started. */
  private control: WorkerControl | undefined;
  private readonly quietOnSigtstp: boolean;
  private readonly quietHook = () => this.control?.quietBySignal();
  /** Why the worker stops, for `worker:stopping`. */
  private stopReason: string | undefined;
  private readonly pluginLogger: Logger | undefined;

  constructor(options: WorkerOptions) {
    this.config = options.config;
    this.events = options.events ?? new EventBus();
    this.claims = new QueueClaims(this.config, options.queues, options.strictQueues, (message) =>
      this.events.emit("worker:warning", { message }),
    );
    this.queues = this.claims.queues;
    validateWorker(this.config, this.queues);
    this.burst = options.burst ?? false;
    this.monitor = new RedisMonitor(this.events);
    this.groups = new RunnerProcessGroups(this.events);
    this.workerId = options.workerId ?? newWorkerId();
    this.telemetry = options.telemetry ?? noopJobTelemetry;
    this.localNow = options.localNow;
    this.quietOnSigtstp = (options.quietOnSigtstp ?? true) && process.platform !== "win32";
    this.metricsEnv = options.metricsEnv;
    this.pluginLogger = options.pluginLogger;
  }

  /** The worker's metrics once started (undefined when none is configured). */
  get metrics(): WorkerMetrics | undefined {
    return this.endpoints?.metrics;
  }

  /** The dashboard's address once started (undefined when `dashboard_port` is 0). */
  get dashboardUrl(): string | undefined {
    return this.endpoints?.dashboardUrl;
  }

  /** Requests at each runner's processes now. */
  private runnerInFlight(): Map<string, number> {
    return new Map([...this.pools].map(([name, pool]) => [name, pool.inFlight]));
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

  /** True while the worker is quiet: it claims nothing and finishes what it runs. */
  get quiet(): boolean {
    return this.control?.quiet ?? false;
  }

  /** Makes the worker quiet, as SIGTSTP does (also written to its quiet key). */
  quietNow(): void {
    this.control?.quietBySignal();
  }

  /**
   * Asks the worker to stop: no new claims, then the graceful drain of `run()`. `reason` (e.g.
   * the signal) is reported by `worker:stopping`.
   */
  requestShutdown(reason = "shutdown requested"): void {
    if (this.stopping) return;
    this.stopReason = reason;
    this.stopping = true;
    this.resolveStop();
    this.wakeup?.notify();
  }

  /**
   * SIGKILLs every runner process this worker started, synchronously: for a forced exit (a
   * second signal) that cannot wait for the graceful stop. Also done by an `exit` hook.
   */
  killRunnersNow(): void {
    this.groups.killAll();
  }

  /** Pids of the runner processes running now (each leads its own process group). */
  get runnerPids(): readonly number[] {
    return this.groups.alive;
  }

  /**
   * Starts runners and serves until shutdown (or until drained in burst mode). The report lists
   * the jobs whose results could not be written (Redis unreachable at shutdown).
   */
  async run(): Promise<ShutdownReport> {
    process.on("exit", this.exitHook);
    let plugins: LoadedPlugins | undefined;
    try {
      plugins = await this.loadPlugins(); // subscribed before anything is claimed
      await this.start();
    } catch (error) {
      plugins?.dispose();
      this.disposeHooks();
      throw error;
    }
    if (this.quietOnSigtstp) process.on("SIGTSTP", this.quietHook);
    this.events.emit("worker:started", { workerId: this.workerId, queues: this.queues });
    let report: ShutdownReport = { unwritten: [] };
    try {
      await this.serve();
    } finally {
      report = await this.drain();
      plugins.dispose();
    }
    return report;
  }

  /** rrq.toml's `plugins` (docs/middleware.md), connected to this worker's events. */
  private loadPlugins(): Promise<LoadedPlugins> {
    return loadPlugins(this.config.plugins ?? [], {
      events: this.events,
      config: Object.freeze({
        queues: Object.freeze([...this.queues]),
        runners: Object.freeze(Object.keys(this.config.runners)),
        defaultQueue: this.config.defaultQueueName,
      }),
      ...(this.pluginLogger ? { log: pluginLogTo(this.pluginLogger) } : {}),
    });
  }

  /**
   * The claim loop, until it ends or shutdown is requested; then it gets LOOP_STOP_MS to finish
   * its pass (a claim sent to an unreachable Redis waits for it without bound).
   */
  private async serve(): Promise<void> {
    const loop = this.loop();
    const stopped = this.stopRequested.then(() => within(loop, ShutdownTimings.LOOP_STOP_MS));
    await Promise.race([loop, stopped]);
  }

  private disposeHooks(): void {
    process.off("exit", this.exitHook);
    process.off("SIGTSTP", this.quietHook);
    this.groups.dispose();
  }

  /** Warnings worth a line at start: the config's, and the routed queues not served. */
  private startWarnings(): string[] {
    const served = this.queues.map((q) => `'${bareQueueName(q)}'`).join(", ");
    const unserved = unservedRoutes(this.config, this.queues).map(
      ({ queue, runner, configured }) =>
        configured
          ? `queue '${queue}' is routed to runner '${runner}' in [rrq.routing] but this worker ` +
            `serves only ${served} (--queue): its jobs wait until a worker serving it runs`
          : `queue '${queue}' is routed to runner '${runner}' in [rrq.routing], which is not ` +
            `configured here ([rrq.runners.${runner}]): this worker does not serve it`,
    );
    return [...this.config.warnings, ...unserved];
  }

  private setStatus(status: string): void {
    if (status === this.statusText) return;
    this.statusText = status;
    this.events.emit("worker:status", { status });
  }

  private async start(): Promise<void> {
    const config = this.config;
    for (const message of this.startWarnings()) this.events.emit("worker:warning", { message });
    // A command timeout (and a PING probe using it) so a silent link fails commands and is
    // reported instead of leaving claims, renewals and writes waiting without bound
    const commandTimeoutMs = config.redisCommandTimeoutSeconds * 1000;
    this.redis = connectRedis(config.redisDsn, { name: this.workerId, commandTimeoutMs });
    this.monitor.attach(this.redis, "main");
    this.stopProbe = this.monitor.watchSilence(this.redis, "main", {
      intervalMs: Math.min(1000, commandTimeoutMs),
      timeoutMs: commandTimeoutMs,
    });
    this.clock = new RedisClock(this.redis, {
      localNow: this.localNow,
      warnThresholdMs: CLOCK_SKEW_WARN_MS,
      onSkew: (offsetMs) => this.events.emit("worker:warning", { message: skewMessage(offsetMs) }),
    });
    this.store = new JobStore(this.redis, this.clock);
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
          connection: { validate, log, capture: config.runnerCapture.get(name) ?? false },
          helloTimeoutMs: config.runnerHelloTimeoutMs,
          expectHello: config.runnerHello.get(name) ?? false,
          tags: config.runnerTags.get(name),
          onReady: (tags) => this.runnerReady(name, tags),
        }),
      );
    }
    try {
      this.endpoints = await WorkerEndpoints.start(this.companionContext());
      await Promise.all([...this.pools.values()].map((pool) => pool.start()));
      this.claims.routeByTags(config, this.tagSets());
      // Jobs parked for tags by another worker are requeued by the worker that has them: once
      // when its process says hello, then every second (another worker may park them anew).
      if (Object.keys(this.tagSets()).length > 0)
        this.needsTimer = setInterval(() => void this.unparkNeeds(), NEEDS_UNPARK_INTERVAL_MS);
      const subscriber = connectRedis(config.redisDsn, { name: `${this.workerId}:wake` });
      this.monitor.attach(subscriber, "subscriber");
      // a wake-up on a paused queue (its resume publishes one) makes the next poll ask it again
      subscriber.on("message", (channel: string) => this.claims.woken(channel));
      subscriber.on("ready", () => this.claims.reconnected());
      this.wakeup = new Wakeup(subscriber, this.queues);
      this.control = new WorkerControl(subscriber, this.redis, this.workerId, {
        cancel: (jobId) => this.cancelRunning(jobId),
        quietChanged: (quiet, source) => this.quietChanged(quiet, source),
        error: (context, error) => this.events.emit("worker:error", { context, error }),
      });
      // SUBSCRIBE waits for an unreachable Redis without bound: a stop request ends the wait.
      // The clock's first measurement comes before the first claim, so no claim uses a skewed
      // local clock.
      await Promise.race([
        Promise.all([this.wakeup.start(), this.control.start(), this.clock.start()]),
        this.stopRequested,
      ]);
    } catch (error) {
      await Promise.all([...this.pools.values()].map((pool) => pool.close(0)));
      await this.endpoints?.stop();
      await this.closeConnections();
      throw error;
    }
    // Runners are up: the first health record (written as the heartbeat starts) says so, instead
    // of "initializing" until the next tick up to a minute later.
    this.setStatus("running");
    this.flow = new FlowHooks(
      new FlowStore(this.redis, this.store.scripts, this.clock),
      config,
      this.events,
      (what, write) => this.persist(what, write),
    );
    const recovery = new Recovery(this.store, config, this.workerId, this.events, this.flow);
    this.recovery = recovery;
    this.heartbeat = new Heartbeat(
      this.store,
      this.workerId,
      config,
      () => this.snapshot(),
      this.events,
      recovery,
      () => this.control!.refresh(),
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
    // the record says the link is back (and what the outage cost) at once, not a heartbeat later
    this.events.on("redis:up", () => this.heartbeat?.nudge());
    this.clusterTasks = ClusterTasks.start(this.companionContext());
  }

  /** What the endpoints and cluster tasks get from this worker (after its connection is up). */
  private companionContext(): CompanionContext {
    return {
      config: this.config,
      redis: this.redis!,
      events: this.events,
      workerId: this.workerId,
      queues: this.queues,
      clock: this.clock!,
      inFlight: () => this.runnerInFlight(),
      metricsEnv: this.metricsEnv,
    };
  }

  private snapshot() {
    return {
      status: this.statusText,
      activeJobs: this.running.size,
      concurrencyLimit: this.concurrency,
      queues: this.queues,
      clockOffsetMs: this.clock?.synced ? this.clock.offsetMs : undefined,
      partition: this.leases?.partition,
      quiet: this.quiet,
      runners: [...this.pools.values()].map((pool) => pool.status()),
    };
  }

  /**
   * A job was cancelled while this worker may run it (job-cancel-2.lua already wrote CANCELLED
   * and revoked the attempt's fence): stop the attempt, cancel frame, grace, recycle. A job we
   * do not run (finished meanwhile) needs nothing.
   */
  private cancelRunning(jobId: string): void {
    for (const execution of this.running)
      if (execution.jobId === jobId) execution.cancelledByOperator();
  }

  /** The quiet switch flipped: say so, and let the loop claim again (or stop claiming). */
  private quietChanged(quiet: boolean, source: QuietSource): void {
    if (quiet) this.events.emit("worker:quiet", { workerId: this.workerId, source });
    else this.events.emit("worker:resumed", { workerId: this.workerId });
    this.heartbeat?.nudge();
    this.wakeup?.notify();
  }

  /** The capability tag sets of the ready runner processes, by runner (those with tags). */
  private tagSets(): Record<string, string[][]> {
    const sets: Record<string, string[][]> = {};
    for (const [name, pool] of this.pools) {
      const found = pool.tagSets();
      if (found.length > 0) sets[name] = found;
    }
    return sets;
  }

  /**
   * A runner process became ready (issue 23): the claim routes by the new tag sets, and jobs
   * parked for tags it offers are requeued, so they start within a second.
   */
  private runnerReady(runner: string, tags: readonly string[]): void {
    this.claims.routeByTags(this.config, this.tagSets());
    if (tags.length > 0) void this.unparkNeeds(runner);
  }

  /** Requeues the needs-sets the ready processes of `only` (default: every runner) cover. */
  private async unparkNeeds(only?: string): Promise<void> {
    if (!this.redis || !this.store) return;
    this.needsStore ??= new FlowStore(this.redis, this.store.scripts, this.clock);
    try {
      for (const [name, pool] of this.pools) {
        if (only !== undefined && name !== only) continue;
        const sets = pool.tagSets();
        if (sets.length > 0 && (await this.needsStore.unparkNeeds(name, sets, this.workerId)) > 0)
          this.wakeup?.notify();
      }
    } catch (error) {
      this.events.emit("worker:error", {
        context: "requeue jobs waiting for runner tags",
        error: error instanceof Error ? error : new Error(String(error)),
      });
    }
  }

  private executionContext(): ExecutionContext {
    this.live ??= {
      store: new LiveStore(this.redis!, this.store!.scripts),
      config: this.config,
      onError: (error) =>
        this.events.emit("worker:error", {
          context: "live job write",
          error: error instanceof Error ? error : new Error(String(error)),
        }),
      dropped: (jobId, runner, bytes) =>
        this.events.emit("live:output-dropped", { jobId, runner, bytes }),
    };
    return {
      live: this.live,
      config: this.config,
      store: this.store!,
      pools: this.pools,
      events: this.events,
      workerId: this.workerId,
      telemetry: this.telemetry,
      flow: this.flow,
      persist: (what, write, execution) => this.persist(what, write, execution),
      attemptEnded: (execution) => {
        if (this.executing.delete(execution)) this.wakeup?.notify();
      },
      failed: (execution, error) =>
        this.events.emit("worker:error", {
          context: `job ${execution.jobId}`,
          error: error as Error,
          job: execution.jobRef,
        }),
      finished: (execution) => {
        this.running.delete(execution);
        this.executing.delete(execution);
        if (this.running.size === 0) this.heartbeat?.nudge();
        this.wakeup?.notify();
      },
    };
  }

  /**
   * Retries a Redis write with backoff until it succeeds; a claimed job's result is never dropped
   * (only shutdown gives up, see `awaitFinalWrites`). A job's write that waited for Redis to come
   * back is reported (`job:written-after-outage`): otherwise the outcome of a job that finished
   * during an outage would never show in the log (job completions are debug lines).
   */
  private async persist<T>(
    what: string,
    write: () => Promise<T>,
    execution?: JobExecution,
  ): Promise<T> {
    const outages = this.monitor.outages;
    const downAtStart = this.monitor.isDown;
    const started = Date.now();
    let delay = 100;
    for (;;) {
      try {
        const result = await write();
        if (execution && (downAtStart || this.monitor.outages !== outages))
          this.events.emit("job:written-after-outage", {
            ...execution.jobRef,
            write: what,
            result: String(result),
            waitedMs: Date.now() - started,
          });
        return result;
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
    /** Polls in a row that took nothing but found jobs held by flow control. */
    let heldOnly = 0;
    while (!this.stopping) {
      if (this.quiet) {
        // quiet: no claims (the wake-up path included) until resumed; in-flight jobs finish
        if (this.burst && this.running.size === 0) break;
        this.setStatus("quiet");
        await this.wakeup!.wait(Infinity);
        continue;
      }
      const capacity = this.freeCapacity();
      if (capacity <= 0) {
        this.setStatus("idle (concurrency limit)");
        await this.wakeup!.wait(Infinity);
        continue;
      }
      if (this.monitor.isDown) {
        // A claim sent now would wait for the link and then run with the time it was sent (its
        // lease already expired, its start time long past): claim once Redis answers again
        this.setStatus("waiting for redis");
        await this.wakeup!.wait(250);
        continue;
      }
      this.setStatus("polling");
      let result: { fetched: number; nextDueMs: number | undefined; held: boolean };
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
      // jobs parked or re-scored by flow control left the ready set: the ones behind them may
      // be ready (each such claim moves at most 4 × its ask; bounded, so a claim that kept
      // reporting held jobs could not spin the loop)
      heldOnly = result.fetched === 0 && result.held ? heldOnly + 1 : 0;
      if (result.fetched > 0 || (heldOnly > 0 && heldOnly <= MAX_HELD_ONLY_POLLS)) continue;
      if (this.burst && this.running.size === 0) break;
      this.setStatus("idle (no jobs)");
      const untilDue =
        result.nextDueMs === undefined ? Infinity : result.nextDueMs - this.clock!.now();
      await this.wakeup!.wait(
        Math.min(jitteredPollDelayMs(this.config.defaultPollDelaySeconds), untilDue),
      );
    }
  }

  /**
   * One claim pass over the queues, in the order of the worker's strategy (fair, RRQ's rotation,
   * by default; strict; weighted: see src/flow/queue-schedule.ts). Paused queues are skipped
   * until woken; `held` says some claim parked or re-scored jobs (the queue is not drained).
   */
  private async poll(
    capacity: number,
    context: ExecutionContext,
  ): Promise<{ fetched: number; nextDueMs: number | undefined; held: boolean }> {
    const chunk = claimChunk(this.concurrency);
    const leaseMs = this.config.leaseSeconds * 1000;
    let remaining = capacity;
    let nextDueMs: number | undefined;
    let held = false;
    const round = this.claims.round(capacity);
    for (
      let step = round.next(remaining);
      step && !this.stopping && !this.quiet;
      step = round.next(remaining)
    ) {
      const { queue } = step;
      const ask = Math.min(step.count, chunk);
      const flowConfig = this.claims.flowConfig(queue);
      // compared with the head's score: a head due by now but not by the claim's time (a start
      // slot a rate reserved ends within the round trip) still sets the wake-up; one due at
      // the claim's time but not taken (locked elsewhere) does not, or the loop would spin
      const sentAt = this.clock!.now();
      const reply = await this.store!.claim(queue, this.workerId, ask, leaseMs, flowConfig);
      if (this.claims.claimed(round, queue, ask, reply)) held = true;
      const nextScore = reply.nextScore;
      if (nextScore !== undefined && nextScore > sentAt)
        nextDueMs = Math.min(nextDueMs ?? Infinity, nextScore);
      for (const job of reply.claimed) {
        remaining--;
        this.launch(new JobExecution(context, job, queue));
      }
    }
    return { fetched: capacity - remaining, nextDueMs, held };
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
    if (this.running.size === 1) this.heartbeat?.nudge(); // busy now: say so in the record
    this.executing.add(execution);
    if (this.events.has("job:claimed"))
      this.events.emit("job:claimed", {
        ...execution.jobRef,
        waitMs: queueWaitMs(execution.claimed.hash),
      });
    // run() never rejects and removes the execution from `running` itself (context.finished)
    execution.done = execution.run();
  }

  /**
   * Graceful shutdown (rrq-0.11-facts §2.13): wait up to the grace period for running jobs;
   * then send cancels (if cancel hints are on), stop the runners, and give every interrupted
   * job back to its queue without counting an attempt. Bounded even when Redis is unreachable:
   * see {@link ShutdownTimings}; what could not be written is in the report.
   */
  private async drain(): Promise<ShutdownReport> {
    this.stopping = true;
    this.resolveStop();
    this.events.emit("worker:stopping", {
      workerId: this.workerId,
      reason: this.stopReason ?? (this.burst ? "burst: nothing left to run" : "loop ended"),
    });
    await this.clusterTasks?.stop();
    const graceUntil = Date.now() + this.config.workerShutdownGracePeriodSeconds * 1000;
    while (this.running.size > 0 && Date.now() < graceUntil) await sleep(50);
    for (const execution of this.running) {
      execution.interrupted = true;
      if (this.config.runnerEnableInflightCancelHints) execution.cancel();
    }
    const graceMs = this.config.runnerShutdownTermGraceSeconds * 1000;
    await Promise.all([...this.pools.values()].map((pool) => pool.close(graceMs)));
    const unwritten = await this.awaitFinalWrites();
    this.recovery?.stop();
    await within(this.leases?.stop(), ShutdownTimings.TASK_STOP_MS);
    await within(this.heartbeat?.stop(), ShutdownTimings.TASK_STOP_MS);
    // a quiet outliving its worker would only confuse `rrq check`
    this.control?.stop();
    await within(this.control?.clear(), ShutdownTimings.TASK_STOP_MS);
    this.setStatus("stopped");
    await this.endpoints?.stop();
    await this.closeConnections();
    this.disposeHooks();
    if (unwritten.length > 0)
      this.events.emit("worker:unwritten", {
        jobs: unwritten,
        leaseSeconds: this.config.leaseSeconds,
      });
    return { unwritten };
  }

  /** Waits for the results still being written; returns the jobs given up on. */
  private async awaitFinalWrites(): Promise<JobRef[]> {
    if (
      await finalWritesSettled(
        () => new Set([...this.running].map((execution) => execution.done!)),
        () => this.monitor.isDown,
      )
    )
      return [];
    this.abandonWrites = true;
    return [...this.running].map((execution) => execution.jobRef);
  }

  private async closeConnections(): Promise<void> {
    this.stopProbe?.();
    clearInterval(this.needsTimer);
    this.clock?.stop();
    await this.wakeup?.close();
    if (this.redis) await closeRedis(this.redis);
    if (this.socketDir) rmSync(this.socketDir, { recursive: true, force: true });
  }
}

export { ReleaseReasons, ShutdownTimings, type ShutdownReport };

/** The warning for a local clock that is `offsetMs` behind (positive) or ahead of Redis's. */
function skewMessage(offsetMs: number): string {
  const way = offsetMs > 0 ? "behind" : "ahead of";
  return (
    `this host's clock is ${Math.abs(offsetMs)} ms ${way} Redis's clock: leases, ready times ` +
    "and cron use Redis's clock (the offset is in the health record); fix the host's time sync"
  );
}

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
