import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { ConfigError } from "../errors.js";
import { resolveConfig, rrqTable, type ConfigOverrides, type ResolvedConfig } from "./config.js";
import { observabilityEnv } from "./observability.js";
import { isTable } from "./values.js";

/** Where a configuration file was found. */
export interface ConfigSource {
  /** "--config", "RRQ_CONFIG" or "working directory". */
  kind: "--config" | "RRQ_CONFIG" | "working directory";
  path: string;
}

/** Exact RRQ wording, so scripts that grep for it keep working. */
export const CONFIG_NOT_FOUND =
  "RRQ config not found. Provide --config, set RRQ_CONFIG, or add rrq.toml.";

/**
 * Finds the config file: an explicit path, else `RRQ_CONFIG` (if set and non-empty), else
 * `./rrq.toml` (if it is a file). Throws `config_not_found` otherwise.
 */
export function findConfigFile(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): ConfigSource {
  if (explicit) return requireFile({ kind: "--config", path: resolve(cwd, explicit) });
  const fromEnv = env.RRQ_CONFIG?.trim();
  if (fromEnv) return requireFile({ kind: "RRQ_CONFIG", path: resolve(cwd, fromEnv) });
  const local = resolve(cwd, "rrq.toml");
  if (existsSync(local) && statSync(local).isFile())
    return { kind: "working directory", path: local };
  throw new ConfigError("config_not_found", CONFIG_NOT_FOUND);
}

function requireFile(source: ConfigSource): ConfigSource {
  if (!existsSync(source.path) || !statSync(source.path).isFile()) {
    throw new ConfigError(
      "config_not_found",
      `RRQ config file not found: ${source.path} (from ${source.kind})`,
    );
  }
  return source;
}

/** Parses a TOML document; syntax errors become `invalid_config` with the position. */
export function parseConfigText(text: string, path: string): Record<string, unknown> {
  try {
    const document = parseToml(text) as unknown;
    if (!isTable(document)) throw new Error("the document is not a table");
    return document;
  } catch (error) {
    throw new ConfigError("invalid_config", `cannot parse ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Environment overrides RRQ honours: RRQ_REDIS_DSN and RRQ_CAPTURE_RUNNER_OUTPUT; plus rrqkit's
 * RRQ_STRICT_FRAMES, RRQ_REDIS_CONNECT_TIMEOUT (seconds), RRQ_DASHBOARD_TOKEN and
 * RRQ_DASHBOARD_BASIC_AUTH.
 */
export function envOverrides(env: NodeJS.ProcessEnv = process.env): ConfigOverrides {
  const overrides: ConfigOverrides = observabilityEnv(env);
  if (env.RRQ_REDIS_DSN) overrides.redisDsn = env.RRQ_REDIS_DSN;
  if (env.RRQ_REDIS_CONNECT_TIMEOUT?.trim())
    overrides.redisConnectTimeoutSeconds = env.RRQ_REDIS_CONNECT_TIMEOUT;
  const capture = env.RRQ_CAPTURE_RUNNER_OUTPUT;
  if (capture)
    overrides.captureRunnerOutput = ["1", "true", "yes"].includes(capture.trim().toLowerCase());
  if (env.RRQ_STRICT_FRAMES) overrides.strictFrames = env.RRQ_STRICT_FRAMES === "1";
  return overrides;
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Explicit path (`--config`). */
  path?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Overrides from CLI flags; applied after the environment. */
  overrides?: ConfigOverrides;
  /** Load `.env` from the working directory first, without overriding set variables (RRQ does). */
  loadDotEnv?: boolean;
}

/** `job_catalog` is relative to the directory of the rrq.toml that names it. */
function withAbsoluteCatalog(config: ResolvedConfig, path: string): ResolvedConfig {
  const catalog = config.jobCatalog;
  if (catalog === undefined || isAbsolute(catalog)) return config;
  return Object.freeze({ ...config, jobCatalog: resolve(dirname(path), catalog) });
}

/**
 * `plugins`: a path (`./x.mjs`, `../x`, absolute) is made absolute against the rrq.toml's
 * directory; a package name is resolved from there. A name that does not resolve stays as
 * written, so loading the plugin fails with an error naming it.
 */
function withResolvedPlugins(config: ResolvedConfig, path: string): ResolvedConfig {
  if (config.plugins.length === 0) return config;
  const from = createRequire(resolve(path));
  const plugins = config.plugins.map((entry) => {
    if (isAbsolute(entry) || /^\.\.?([/\\]|$)/.test(entry)) return resolve(dirname(path), entry);
    try {
      return from.resolve(entry);
    } catch {
      return entry;
    }
  });
  return Object.freeze({ ...config, plugins: Object.freeze(plugins) });
}

/** Resolves, reads and validates the configuration once. */
export function loadConfig(options: LoadConfigOptions = {}): {
  config: ResolvedConfig;
  source: ConfigSource;
} {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  if (options.loadDotEnv && env === process.env && existsSync(resolve(cwd, ".env"))) {
    process.loadEnvFile(resolve(cwd, ".env"));
  }
  const source = findConfigFile(options.path, env, cwd);
  const document = parseConfigText(readFileSync(source.path, "utf8"), source.path);
  const config = resolveConfig(rrqTable(document), { ...envOverrides(env), ...options.overrides });
  return {
    config: withResolvedPlugins(withAbsoluteCatalog(config, source.path), source.path),
    source,
  };
}
