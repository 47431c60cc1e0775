import { fileURLToPath } from "node:url";
import type { ExecutionRequest } from "@rrqkit/runner/protocol";
import type { Redis } from "ioredis";
import { resolveConfig, type ResolvedConfig } from "../../src/config/config.js";
import { Worker, type ShutdownReport } from "../../src/orchestrator/worker.js";
import { EventBus, type EventName, type OrchestratorEvents } from "../../src/telemetry/events.js";
import type { JobTelemetry } from "../../src/telemetry/otel.js";
import { LiveStore, type OutputPage } from "../../src/store/live-store.js";
import { registerScripts } from "../../src/store/scripts.js";

/** The compiled Node conformance runner. */
export const NODE_RUNNER = fileURLToPath(
  new URL("../../runners/node/dist/examples/conformance-runner.js", import.meta.url),
);

/** RRQ's cross-language golden settings (rrq-0.11-facts §9.1). */
export const GOLDEN_SETTINGS = {
  default_job_timeout_seconds: 1,
  default_result_ttl_seconds: 10,
  default_max_retries: 3,
  base_retry_delay_seconds: 0.01,
  max_retry_delay_seconds: 0.05,
  default_unique_job_lock_ttl_seconds: 1,
};

/** A config with the Node runner as "node" (default) plus `extra` keys and runners. */
export function testConfig(
  redisUrl: string,
  extra: Record<string, unknown> = {},
  runners: Record<string, unknown> = {},
): ResolvedConfig {
  return harnessConfig(
    redisUrl,
    { node: { cmd: [process.execPath, NODE_RUNNER], pool_size: 1, max_in_flight: 8 }, ...runners },
    { default_runner_name: "node", ...extra },
  );
}

/** The raw-frame runner: speaks the live frames by hand (test/fixtures/live-raw-runner.mjs). */
export const RAW_RUNNER = fileURLToPath(
  new URL("../fixtures/live-raw-runner.mjs", import.meta.url),
);

/** A random port for a tcp runner (20000–39999: clear of the ephemeral range). */
export const tcpPort = (): number => 20000 + Math.floor(Math.random() * 20000);

/**
 * A config with the raw-frame runner as "raw" (default) over tcp, `env` in its environment,
 * a 20 s job timeout and `extra` keys.
 */
export function rawRunnerConfig(
  redisUrl: string,
  extra: Record<string, unknown> = {},
  env?: Record<string, string>,
): ResolvedConfig {
  const raw = { cmd: [process.execPath, RAW_RUNNER], transport: "tcp", tcp_port: tcpPort() };
  return harnessConfig(
    redisUrl,
    { raw: { ...raw, pool_size: 1, max_in_flight: 8, ...(env ? { env } : {}) } },
    { default_runner_name: "raw", default_job_timeout_seconds: 20, ...extra },
  );
}

/** The settings every harness config shares (short grace periods), then `extra` keys. */
function harnessConfig(
  redisUrl: string,
  runners: Record<string, unknown>,
  extra: Record<string, unknown>,
): ResolvedConfig {
  return resolveConfig({
    redis_dsn: redisUrl,
    worker_shutdown_grace_period_seconds: 2,
    runner_shutdown_term_grace_seconds: 1,
    runner_cancel_grace_seconds: 1,
    runners,
    ...extra,
  });
}

/**
 * A request for job `job-<id>` (attempt 1, function "f"), for a runner connection fed by hand;
 * `extra` fields are added or replace these.
 */
export function executionRequest(
  id: string,
  extra: Partial<ExecutionRequest> = {},
): ExecutionRequest {
  return {
    request_id: id,
    job_id: `job-${id}`,
    function_name: "f",
    params: {},
    context: {
      job_id: `job-${id}`,
      attempt: 1,
      enqueue_time: "2026-01-01T00:00:00Z",
      queue_name: "q",
    },
    ...extra,
  };
}

/** A worker running in this process, with every event it emitted recorded. */
export class RunningWorker {
  readonly events = new EventBus();
  readonly seen: Array<{ name: EventName; payload: unknown }> = [];
  readonly worker: Worker;
  private done: Promise<ShutdownReport> | undefined;

  constructor(config: ResolvedConfig, queues?: string[], burst = false, telemetry?: JobTelemetry) {
    this.worker = new Worker({ config, queues, burst, events: this.events, telemetry });
    const names: EventName[] = [
      "runner:spawn",
      "runner:ready",
      "runner:exit",
      "runner:respawn",
      "runner:recycle",
      "job:claimed",
      "job:dispatched",
      "job:completed",
      "job:retry",
      "job:dlq",
      "job:released",
      "job:fenced",
      "recovery:done",
      "worker:error",
    ];
    for (const name of names) this.events.on(name, (payload) => this.seen.push({ name, payload }));
  }

  /** Starts the worker and resolves once its runners are ready. */
  async start(): Promise<this> {
    this.done = this.worker.run();
    let failed: unknown;
    this.done.catch((error: unknown) => (failed = error ?? new Error("worker failed")));
    await waitFor(
      () => failed !== undefined || this.worker.status !== "initializing",
      30_000,
      "worker start",
    );
    if (failed !== undefined) throw failed as Error;
    return this;
  }

  /** Events of one kind, in order. */
  of<E extends EventName>(name: E): OrchestratorEvents[E][] {
    return this.seen.filter((e) => e.name === name).map((e) => e.payload as OrchestratorEvents[E]);
  }

  /** Requests shutdown and waits for the drain to finish. */
  async stop(): Promise<void> {
    await this.stopWithReport();
  }

  /** Requests shutdown and resolves with the worker's shutdown report. */
  stopWithReport(): Promise<ShutdownReport> {
    this.worker.requestShutdown();
    return this.done!;
  }

  /** Resolves when run() finishes by itself (burst mode). */
  finished(): Promise<ShutdownReport> {
    return this.done!;
  }
}

/** The job hash once the job is COMPLETED or FAILED (polls; throws after 20 s). */
export function jobSettled(client: Redis, id: string): Promise<Record<string, string>> {
  return waitFor(
    async () => {
      const hash = await client.hgetall(`rrq:job:${id}`);
      return ["COMPLETED", "FAILED"].includes(hash.status ?? "") ? hash : undefined;
    },
    20_000,
    `job ${id} to finish`,
  );
}

/**
 * The output of attempt `run` of job `id` once its closed marker is stored: the marker is
 * written just after the outcome, so a job seen final may not have it yet.
 */
export async function outputClosed(client: Redis, id: string, run = 1): Promise<OutputPage> {
  const store = new LiveStore(client, registerScripts(client));
  return waitFor(
    async () => {
      const page = await store.readOutput(id, run, "0", 100_000);
      return page.closed ? page : undefined;
    },
    10_000,
    `output of job ${id} attempt ${run} to close`,
  );
}

/** Polls `check` until it returns truthy; throws after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 15_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
