import type { Redis } from "ioredis";
import type { Clock } from "../clock/redis-clock.js";
import type { ResolvedConfig } from "../config/config.js";
import {
  startWorkerDashboard,
  type WorkerDashboard,
} from "../dashboard/server/worker-dashboard.js";
import { DeathHandlers } from "../deaths/death-handlers.js";
import { FlowSweeper } from "../flow/index.js";
import { startWorkerMetrics, type WorkerMetrics } from "../metrics/worker-metrics.js";
import { DlqRetention } from "../retention/dlq-retention.js";
import { FlowStore } from "../store/flow-store.js";
import { registerScripts } from "../store/scripts.js";
import type { EventBus } from "../telemetry/events.js";
import { within } from "./bounded.js";
import { startCron, type CronScheduler } from "./cron.js";
import { ShutdownTimings } from "./shutdown.js";

/** What the worker's companions need from it. */
export interface CompanionContext {
  config: ResolvedConfig;
  redis: Redis;
  events: EventBus;
  workerId: string;
  queues: readonly string[];
  clock: Clock;
  /** Requests at each runner's processes now (for the in-flight gauge). */
  inFlight: () => Map<string, number>;
  /** Environment the OTLP metrics exporter reads (tests pass their own). */
  metricsEnv?: NodeJS.ProcessEnv;
}

/**
 * The endpoints a worker serves beside its work, each optional by config: the Prometheus
 * `/metrics` endpoint with the OTLP metrics export, and the dashboard. Started before the
 * runners (a port in use fails the start early, before any process is spawned).
 */
export class WorkerEndpoints {
  private constructor(
    readonly metrics: WorkerMetrics | undefined,
    private readonly dashboard: WorkerDashboard | undefined,
  ) {}

  /** Starts what the config asks for; on a failure, stops what was started and throws. */
  static async start(ctx: CompanionContext): Promise<WorkerEndpoints> {
    const metrics = await startWorkerMetrics({
      metricsPort: ctx.config.metricsPort,
      metricsHost: ctx.config.metricsHost,
      events: ctx.events,
      redis: ctx.redis,
      queues: ctx.queues,
      inFlight: ctx.inFlight,
      now: () => ctx.clock.now(),
      env: ctx.metricsEnv,
    });
    try {
      return new WorkerEndpoints(metrics, await startWorkerDashboard(ctx.config));
    } catch (error) {
      await metrics?.stop();
      throw error;
    }
  }

  /** The dashboard's address (undefined when `dashboard_port` is 0). */
  get dashboardUrl(): string | undefined {
    return this.dashboard?.url;
  }

  /** Closes both endpoints (the last OTLP export included), each within the task-stop bound. */
  async stop(): Promise<void> {
    await within(this.metrics?.stop(), ShutdownTimings.TASK_STOP_MS);
    await within(this.dashboard?.stop(), ShutdownTimings.TASK_STOP_MS);
  }
}

/**
 * The periodic tasks that serve the whole deployment rather than this worker's own jobs, each
 * only when configured: cron entries, death handlers and the DLQ age trim; and always the flow
 * sweeper (jobs carry their own concurrency and session keys without any config; a round costs
 * one EXISTS while nothing is parked). Any number of orchestrators may run them at once (each
 * one coordinates through Redis).
 */
export class ClusterTasks {
  private constructor(
    private readonly cron: CronScheduler | undefined,
    private readonly deathHandlers: DeathHandlers | undefined,
    private readonly dlqRetention: DlqRetention | undefined,
    private readonly flowSweeper: FlowSweeper,
  ) {}

  /** Starts the configured tasks. */
  static start(ctx: CompanionContext): ClusterTasks {
    const { redis, config, workerId, events } = ctx;
    const cron = startCron(redis, config, events, ctx.clock);
    const deaths = DeathHandlers.enabled(config)
      ? new DeathHandlers(redis, config, workerId, events)
      : undefined;
    const retention = DlqRetention.enabled(config)
      ? new DlqRetention(redis, config, workerId, events)
      : undefined;
    const flow = new FlowStore(redis, registerScripts(redis), ctx.clock);
    const sweeper = new FlowSweeper(redis, flow, config, workerId, events);
    deaths?.start();
    retention?.start();
    sweeper.start();
    return new ClusterTasks(cron, deaths, retention, sweeper);
  }

  /** Stops them, each within the task-stop bound (a run in progress is waited for). */
  async stop(): Promise<void> {
    await within(this.cron?.stop(), ShutdownTimings.TASK_STOP_MS);
    await within(this.deathHandlers?.stop(), ShutdownTimings.TASK_STOP_MS);
    await within(this.dlqRetention?.stop(), ShutdownTimings.TASK_STOP_MS);
    await within(this.flowSweeper.stop(), ShutdownTimings.TASK_STOP_MS);
  }
}
