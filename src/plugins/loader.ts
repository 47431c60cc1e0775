/**
 * Loads rrq.toml's `plugins` and connects them to a worker's event bus. A plugin that cannot
 * be loaded stops the worker (a `ConfigError` naming the file); a plugin's event handler can
 * never affect a job: it is called inside a try, its promise is not awaited, and both a throw
 * and a rejection become `worker:error` with context `plugin <file>`.
 */
import { isAbsolute } from "node:path";
import { pathToFileURL } from "node:url";
import type { Logger } from "pino";
import { coerceError, ConfigError } from "../errors.js";
import type { EventBus } from "../telemetry/events.js";
import {
  PLUGIN_EVENTS,
  type PluginApi,
  type PluginConfigView,
  type PluginEventName,
  type PluginHandler,
  type PluginLogLevel,
  type PluginLogSink,
  type RrqPlugin,
} from "./api.js";

/** What {@link loadPlugins} needs from the worker. */
export interface PluginHost {
  readonly events: EventBus;
  readonly config: PluginConfigView;
  /**
   * Where `api.log` lines go; by default a logger on stdout in the format `RRQ_LOG_FORMAT`
   * picks (pino is loaded only then, so a worker without plugins never loads it here).
   */
  readonly log?: PluginLogSink;
}

/** The loaded plugins of one worker run. */
export interface LoadedPlugins {
  /** The plugin files, in load order. */
  readonly files: readonly string[];
  /** Unsubscribes every plugin handler (the worker stopped; watch mode starts a new one). */
  dispose(): void;
}

/** A {@link PluginLogSink} writing to a pino logger, the plugin's file as `rrq.plugin`. */
export function pluginLogTo(logger: Logger): PluginLogSink {
  return (plugin, level, message, fields) =>
    logger[level]({ ...fields, "rrq.plugin": plugin }, message);
}

/** The sink of a worker given no logger (embedded in a program). */
async function defaultPluginLog(): Promise<PluginLogSink> {
  const { createLogger, resolveLogFormat } = await import("../telemetry/logger.js");
  return pluginLogTo(createLogger(resolveLogFormat()));
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/** The module's default export as a plugin function (also a CommonJS `exports.default`). */
async function importPlugin(file: string): Promise<RrqPlugin> {
  let module: { default?: unknown };
  try {
    // A path is imported by URL; a package name left unresolved by loadConfig fails here.
    module = (await import(isAbsolute(file) ? pathToFileURL(file).href : file)) as {
      default?: unknown;
    };
  } catch (error) {
    throw new ConfigError("invalid_config", `plugin ${file} failed to load: ${message(error)}`, {
      cause: error,
    });
  }
  let plugin = module.default;
  // CommonJS compiled from ESM syntax puts the function at exports.default
  if (typeof plugin === "object" && plugin !== null && "default" in plugin) plugin = plugin.default;
  if (typeof plugin !== "function")
    throw new ConfigError(
      "invalid_config",
      `plugin ${file} must export a function as its default export (got ${describe(plugin)})`,
    );
  return plugin as RrqPlugin;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describe(value: unknown): string {
  if (value === undefined) return "no default export";
  return value === null ? "null" : typeof value;
}

/** The API one plugin gets; its subscriptions are added to `unsubscribe`. */
function apiFor(
  file: string,
  host: PluginHost,
  log: PluginLogSink,
  unsubscribe: (() => void)[],
): PluginApi {
  const fail = (error: unknown) =>
    host.events.emit("worker:error", { context: `plugin ${file}`, error: coerceError(error) });
  return {
    config: host.config,
    log(level: PluginLogLevel, text: string, fields: Record<string, unknown> = {}) {
      log(file, level, text, fields);
    },
    on<E extends PluginEventName>(name: E, handler: PluginHandler<E>) {
      if (!(PLUGIN_EVENTS as readonly string[]).includes(name))
        throw new TypeError(`unknown plugin event '${name}'; one of ${PLUGIN_EVENTS.join(", ")}`);
      if (typeof handler !== "function")
        throw new TypeError(`the handler of '${name}' must be a function`);
      const off = host.events.on(name, (payload) => {
        try {
          const result = handler(payload);
          // never awaited: the worker goes on at once; a rejection is only reported
          if (isThenable(result)) result.then(undefined, fail);
        } catch (error) {
          fail(error);
        }
      });
      unsubscribe.push(off);
    },
  };
}

/**
 * Imports each plugin file in order and calls its default export with its {@link PluginApi}
 * (awaited). Any failure — the module does not load, its default export is not a function, or
 * the call throws — undoes the subscriptions made so far and throws a `ConfigError`
 * (`invalid_config`) naming the file.
 */
export async function loadPlugins(
  files: readonly string[],
  host: PluginHost,
): Promise<LoadedPlugins> {
  const unsubscribe: (() => void)[] = [];
  if (files.length === 0) return { files: [], dispose: () => {} };
  const log = host.log ?? (await defaultPluginLog());
  const dispose = () => {
    for (const off of unsubscribe.splice(0)) off();
  };
  try {
    for (const file of files) {
      const plugin = await importPlugin(file);
      try {
        await plugin(apiFor(file, host, log, unsubscribe));
      } catch (error) {
        throw new ConfigError(
          "invalid_config",
          `plugin ${file} failed to start: ${message(error)}`,
          {
            cause: error,
          },
        );
      }
    }
  } catch (error) {
    dispose();
    throw error;
  }
  return { files: [...files], dispose };
}
