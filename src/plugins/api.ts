/**
 * Orchestrator plugins (docs/middleware.md "Plugins"): modules named by rrq.toml's `plugins`
 * whose default export receives a {@link PluginApi} once, when `rrq worker run` starts, before
 * the first claim. The API is deliberately small: a documented subset of the worker's events,
 * a logger, and a read-only view of the configuration.
 */
import type { OrchestratorEvents } from "../telemetry/events.js";

/** The events a plugin can subscribe to, by name, with the worker's payloads. */
export const PLUGIN_EVENTS = [
  "job:claimed",
  "job:completed",
  "job:retry",
  "job:dlq",
  "job:cancelled",
  "job:expired",
  "job:snoozed",
  "worker:started",
  "worker:stopping",
] as const;

/** The name of an event a plugin can subscribe to. */
export type PluginEventName = (typeof PLUGIN_EVENTS)[number];

/** The payload of each plugin event (the same objects the worker's logging sees). */
export type PluginEvents = Pick<OrchestratorEvents, PluginEventName>;

/** A plugin's event handler: it is called, never awaited; a throw or rejection is only logged. */
export type PluginHandler<E extends PluginEventName> = (
  payload: Readonly<PluginEvents[E]>,
) => void | Promise<void>;

/** Levels of {@link PluginApi.log}. */
export type PluginLogLevel = "debug" | "info" | "warn" | "error";

/** The part of the resolved configuration a plugin sees (frozen). */
export interface PluginConfigView {
  /** The queues this worker claims from, in its order (full keys, `rrq:queue:...`). */
  readonly queues: readonly string[];
  /** The names of the configured runners (`[rrq.runners.<name>]`). */
  readonly runners: readonly string[];
  /** The default queue (full key). */
  readonly defaultQueue: string;
}

/** What a plugin's default export receives. */
export interface PluginApi {
  /**
   * Subscribes `handler` to `name`, one of {@link PLUGIN_EVENTS}. Handlers run on the worker's
   * event path, so keep them cheap: a slow sync handler delays the worker; long work belongs
   * in a promise (which is not awaited). A throw or rejection is logged as `worker:error`
   * (context `plugin <file>`) and never affects a job.
   * @throws TypeError for a name outside {@link PLUGIN_EVENTS}.
   */
  on<E extends PluginEventName>(name: E, handler: PluginHandler<E>): void;
  /** Writes a line to the worker's log, tagged with the plugin's file (`rrq.plugin`). */
  log(level: PluginLogLevel, message: string, fields?: Record<string, unknown>): void;
  /** Read-only view of the worker's configuration. */
  readonly config: PluginConfigView;
}

/**
 * A plugin module's default export: called once with the {@link PluginApi} before the worker
 * claims anything. A throw or rejection here stops the worker with a config error.
 *
 * ```ts
 * // plugins/audit.mjs
 * export default function audit(api) {
 *   api.on("job:dlq", (e) => api.log("warn", "job dead", { job_id: e.jobId, error: e.error }));
 * }
 * ```
 */
export type RrqPlugin = (api: PluginApi) => void | Promise<void>;

/** Where plugin log lines go: the worker's logger in `rrq worker run`. */
export type PluginLogSink = (
  plugin: string,
  level: PluginLogLevel,
  message: string,
  fields: Record<string, unknown>,
) => void;
