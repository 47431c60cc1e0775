import { readFileSync, existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ChainableCommander, Redis } from "ioredis";

/** Lua scripts live in src/store/lua, both when running from source and from dist/. */
function scriptDir(): string {
  for (const candidate of ["./lua/", "../../../src/store/lua/"]) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new Error("cannot find the Lua scripts directory (src/store/lua)");
}

/**
 * The scripts, by name; the file name `<name>-<keys>.lua` carries the key count, and
 * `<name>-n.lua` marks a script whose key count varies (passed as EVAL's numkeys per call).
 */
export type ScriptName =
  | "enqueue"
  | "enqueue-batch"
  | "enqueue-rate-limited"
  | "enqueue-debounced"
  | "enqueue-fields"
  | "claim-ready"
  | "renew-leases"
  | "complete-success"
  | "complete-success-batch"
  | "retry-job"
  | "snooze-job"
  | "move-to-dlq"
  | "release-claim"
  | "recover-job"
  // rrqkit operator scripts (src/api, src/orchestrator/cron.ts)
  | "job-cancel"
  | "job-delete"
  | "job-reschedule"
  | "dlq-take"
  | "dlq-compact"
  | "dlq-trim-age"
  | "cron-fire"
  // rrqkit flow control (src/store/flow-store.ts)
  | "flow-release"
  | "flow-sweep"
  | "breaker-record"
  | "queue-pause"
  // rrqkit live jobs (src/store/live-store.ts)
  | "live-hash"
  | "flow-needs-unpark";

interface LoadedScript {
  lua: string;
  /** Key count; undefined for a `-n` script. */
  keys: number | undefined;
}

/**
 * A script's source with each `-- @include <file>` line replaced by lua/lib/<file> (helpers
 * that several scripts share; Redis scripts cannot load modules).
 */
function withIncludes(dir: string, lua: string): string {
  return lua.replace(/^-- @include (\S+)$/gm, (_, file: string) =>
    readFileSync(`${dir}lib/${file}`, "utf8"),
  );
}

function loadAll(): Map<string, LoadedScript> {
  const dir = scriptDir();
  const scripts = new Map<string, LoadedScript>();
  for (const file of readdirSync(dir)) {
    const match = /^(.+)-(\d+|n)\.lua$/.exec(file);
    if (match)
      scripts.set(match[1]!, {
        lua: withIncludes(dir, readFileSync(dir + file, "utf8")),
        keys: match[2] === "n" ? undefined : Number(match[2]),
      });
  }
  return scripts;
}

let loaded: Map<string, LoadedScript> | undefined;

/**
 * Registers every script on a connection (ioredis runs them by SHA and reloads them after a
 * NOSCRIPT), and returns a typed caller usable on the connection or on a pipeline.
 */
export function registerScripts(redis: Redis): ScriptCaller {
  loaded ??= loadAll();
  for (const [name, script] of loaded) {
    if (!(name in redis)) redis.defineCommand(name, { lua: script.lua, numberOfKeys: script.keys });
  }
  return new ScriptCaller(loaded);
}

type Runnable = Redis | ChainableCommander;
type ScriptMethod = (...args: (string | number)[]) => Promise<unknown>;

/** Calls registered scripts with keys and arguments, checking the key count. */
export class ScriptCaller {
  constructor(private readonly scripts: Map<string, LoadedScript>) {}

  /** Runs `name`; on a pipeline the result arrives with `exec()`. */
  run<T = unknown>(
    on: Runnable,
    name: ScriptName,
    keys: string[],
    args: (string | number)[],
  ): Promise<T> {
    const script = this.scripts.get(name);
    if (!script) throw new Error(`unknown Lua script '${name}'`);
    if (script.keys !== undefined && keys.length !== script.keys)
      throw new Error(`script ${name} takes ${script.keys} keys, got ${keys.length}`);
    const method = (on as unknown as Record<string, ScriptMethod>)[name];
    if (!method) throw new Error(`script ${name} is not registered on this connection`);
    // a variable-key script takes numkeys first (ioredis defineCommand without numberOfKeys)
    const head = script.keys === undefined ? [keys.length] : [];
    return method.call(on, ...head, ...keys, ...args) as Promise<T>;
  }
}
