/**
 * The live testing helper of `rrqkit/testing` (docs/testing.md): a private redis-server on a free
 * port and a real orchestrator (an in-process Worker) for one test, with a real Producer.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AnyRegistry, JobTypes, Untyped } from "@rrqkit/runner";
import { JobCatalog } from "@rrqkit/runner/contracts";
import { resolveConfig, type ResolvedConfig } from "../config/config.js";
import { startRedis } from "../conformance/redis-server.js";
import { Worker } from "../orchestrator/worker.js";
import { Producer, producerConfigFrom } from "../producer/producer.js";
import { EventBus } from "../telemetry/events.js";

/** Options of {@link startLiveRrq}. */
export interface LiveRrqOptions {
  /**
   * The `[rrq]` settings as a table with rrq.toml's snake_case keys (`redis_dsn` is set to the
   * private server; `runners` merge with {@link runners}). Default: RRQ's defaults.
   */
  config?: Record<string, unknown>;
  /** Handlers served in the orchestrator's process, as the runner `testing` (the default). */
  registry?: AnyRegistry;
  /** More `[rrq.runners.<name>]` tables (e.g. a Python runner's `cmd`). */
  runners?: Record<string, Record<string, unknown>>;
}

/** What {@link startLiveRrq} started; `stop()` ends all of it. */
export interface LiveRrq<C extends JobTypes<C> = Untyped> {
  /** A real producer on the private server, with the config's defaults and catalog. */
  producer: Producer<C>;
  /** The private server's DSN (database 0). */
  redisUrl: string;
  /** The orchestrator's resolved config. */
  config: ResolvedConfig;
  /** The running orchestrator. */
  worker: Worker;
  /** Stops the worker (draining running jobs), closes the producer, kills the server. */
  stop(): Promise<void>;
}

/** The name the `registry` is served under. */
export const LIVE_RUNNER = "testing";

/**
 * A module file the in-process runner can load that exports `registry` (the runner's
 * `handlers` setting names a module; the registry object reaches it through a global).
 */
function registryModule(registry: AnyRegistry, dir: string, key: string): string {
  (globalThis as Record<symbol, unknown>)[Symbol.for(key)] = registry;
  const path = join(dir, "registry.mjs");
  writeFileSync(path, `export default globalThis[Symbol.for(${JSON.stringify(key)})];\n`);
  return path;
}

/** The [rrq] table of the orchestrator: the test's settings with the server and runners. */
function settings(
  options: LiveRrqOptions,
  redisUrl: string,
  dir: string,
  key: string,
): Record<string, unknown> {
  const given = options.config ?? {};
  const runners: Record<string, unknown> = {
    ...(given.runners as Record<string, unknown> | undefined),
    ...options.runners,
  };
  if (options.registry)
    runners[LIVE_RUNNER] = {
      transport: "inprocess",
      handlers: registryModule(options.registry, dir, key),
    };
  const table: Record<string, unknown> = { ...given, redis_dsn: redisUrl, runners };
  if (options.registry && table.default_runner_name === undefined)
    table.default_runner_name = LIVE_RUNNER;
  return table;
}

/**
 * Starts a private `redis-server` (from PATH; `REDIS_SERVER` overrides it) on a free port and an
 * orchestrator in this process serving `registry` (and `runners`), and resolves once the
 * worker is running. Always `await live.stop()` (e.g. in `afterAll`).
 *
 * ```ts
 * const live = await startLiveRrq({ registry });
 * const id = await live.producer.enqueue("echo", { a: 1 });
 * expect((await live.producer.waitForCompletion(id))!.status).toBe("COMPLETED");
 * await live.stop();
 * ```
 */
export async function startLiveRrq<C extends JobTypes<C> = Untyped>(
  options: LiveRrqOptions = {},
): Promise<LiveRrq<C>> {
  const server = await startRedis({ databases: 1 });
  const dir = mkdtempSync(join(tmpdir(), "rrqkit-live-"));
  const key = `rrqkit.testing.registry.${randomUUID()}`;
  const cleanup = async () => {
    delete (globalThis as Record<symbol, unknown>)[Symbol.for(key)];
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  let config: ResolvedConfig;
  try {
    config = resolveConfig(settings(options, server.url(0), dir, key));
  } catch (error) {
    await cleanup();
    throw error;
  }
  const worker = new Worker({ config, events: new EventBus(), quietOnSigtstp: false });
  const done = worker.run();
  let failed: unknown;
  done.catch((error: unknown) => (failed = error ?? new Error("worker failed")));
  while (failed === undefined && worker.status === "initializing")
    await new Promise((resolve) => setTimeout(resolve, 20));
  if (failed !== undefined) {
    await cleanup();
    throw failed as Error;
  }
  const catalog =
    config.jobCatalog === undefined ? undefined : { catalog: JobCatalog.load(config.jobCatalog) };
  const producer = new Producer<C>({ ...producerConfigFrom(config), ...catalog });
  return {
    producer,
    redisUrl: server.url(0),
    config,
    worker,
    stop: async () => {
      await producer.close();
      worker.requestShutdown();
      await done.catch(() => undefined);
      await cleanup();
    },
  };
}
