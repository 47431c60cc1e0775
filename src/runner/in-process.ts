import { statSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { RunnerRuntime, telemetryFromEnv, type Registry } from "@rrqkit/runner";
import { memoryChannelPair } from "@rrqkit/runner/protocol";
import { RunnerError } from "../errors.js";
import type { EventBus } from "../telemetry/events.js";
import { RunnerConnection, type RunnerConnectionOptions } from "./runner-connection.js";
import type { EndpointExit, RunnerEndpoint } from "./runner-process.js";

/** How one in-process runner slot is set up. */
export interface InProcessPlan {
  runner: string;
  index: number;
  /** The handler module, as configured (`handlers`), and the directory it is relative to. */
  handlers: string;
  cwd: string | undefined;
  connectTimeoutMs: number;
  connection: RunnerConnectionOptions;
}

function isRegistry(value: unknown): value is Registry {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Registry).get === "function" &&
    typeof (value as Registry).names === "function"
  );
}

/** Imports the handler module at `path` and returns its Registry (default, else `registry`). */
async function loadRegistry(plan: InProcessPlan, path: string): Promise<Registry> {
  let module: Record<string, unknown>;
  try {
    // The file's mtime in the URL: Node caches modules by URL for the life of the process, so
    // a worker restarted by `rrq worker watch` loads an edited module again (the modules it
    // imports stay cached), while respawned slots of an unchanged one share the first load.
    const url = pathToFileURL(path);
    url.searchParams.set("mtime", String(statSync(path).mtimeMs));
    module = (await import(url.href)) as Record<string, unknown>;
  } catch (error) {
    throw new RunnerError(
      "runner_spawn_failed",
      `runner '${plan.runner}': cannot load handlers module ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const registry = isRegistry(module.default) ? module.default : module.registry;
  if (!isRegistry(registry)) {
    throw new RunnerError(
      "runner_spawn_failed",
      `runner '${plan.runner}': ${path} exports no @rrqkit/runner Registry (as default or 'registry')`,
    );
  }
  return registry;
}

/**
 * An in-process runner: the `@rrqkit/runner` runtime serving the configured handler module
 * inside the orchestrator, over an in-memory channel pair that carries the same frames a socket
 * would (so matching, deadlines, cancels and outcome checks behave as with a runner process).
 * What it saves is the process and the socket hops, about a fifth of the CPU of a no-op job
 * (bench/RESULTS.md). What it gives up: a handler that blocks the event loop blocks the orchestrator
 * (claims, lease renewals), and one that crashes the process takes the orchestrator with it.
 * "Stopping" it closes the connection, which aborts its requests; a replacement gets a fresh
 * runtime over the same (cached) module.
 */
export async function startInProcessRunner(
  plan: InProcessPlan,
  events: EventBus,
): Promise<RunnerEndpoint> {
  const path = resolve(plan.cwd ?? process.cwd(), plan.handlers);
  const registry = await loadRegistry(plan, path);
  const telemetry = await telemetryFromEnv();
  const runtime = new RunnerRuntime(registry, {
    telemetry,
    hello: true,
    log: (line) =>
      events.emit("runner:log", { runner: plan.runner, index: plan.index, stream: "stderr", line }),
  });
  const [runnerSide, orchestratorSide] = memoryChannelPair();
  runtime.serve(runnerSide);
  const connection = new RunnerConnection(orchestratorSide, plan.connection);
  const exited = new Promise<EndpointExit>((resolve) =>
    connection.onClose(() => resolve({ code: null, signal: null })),
  );
  events.emit("runner:spawn", {
    runner: plan.runner,
    index: plan.index,
    pid: process.pid,
    transport: "inprocess",
    command: [path],
  });
  const stop = async () => {
    runtime.closeAll();
    connection.close();
    await exited;
    await telemetry.shutdown().catch(() => {});
  };
  const hello = await connection.waitForHello(plan.connectTimeoutMs);
  if (!hello) {
    await stop();
    throw new RunnerError(
      "runner_spawn_failed",
      `in-process runner '${plan.runner}' sent no hello within ${plan.connectTimeoutMs} ms`,
    );
  }
  return { pid: process.pid, connection, exited, stop };
}
