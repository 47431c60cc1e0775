import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "smol-toml";
import { resolveConfig } from "../../src/config/config.js";
import { ConfigError } from "../../src/errors.js";
import { RRQ_BIN } from "../lib/paths.js";
import type { Rng } from "../lib/rng.js";

/** What the malformed-config check found. */
export interface ConfigFuzzReport {
  configs: number;
  accepted: number;
  rejected: number;
  /** Rejections whose message does not name the broken key. */
  unnamed: number;
  /** Anything but a ConfigError (a crash of the loader). */
  crashes: number;
  /** Malformed config files given to the real CLI: it must exit non-zero naming the key. */
  cli_checked: number;
  cli_failures: number;
  problems: Array<{ key: string; value: string; got: string }>;
}

const SECRET = "chaos-Secret-pw-93";

/** A valid config touching every section, so each key can be broken in place. */
function baseConfig(): Record<string, unknown> {
  return {
    redis_dsn: `redis://user:${SECRET}@127.0.0.1:6379/0`,
    default_runner_name: "work",
    default_max_retries: 5,
    default_job_timeout_seconds: 30,
    default_result_ttl_seconds: 3600,
    default_poll_delay_seconds: 0.1,
    runner_connect_timeout_ms: 5000,
    runner_shutdown_term_grace_seconds: 1,
    base_retry_delay_seconds: 0.5,
    max_retry_delay_seconds: 10,
    worker_shutdown_grace_period_seconds: 5,
    lease_seconds: 10,
    lease_renew_interval_seconds: 2,
    max_job_recoveries: 3,
    runner_cancel_grace_seconds: 2,
    runners: {
      work: { cmd: ["node", "runner.js"], pool_size: 2, max_in_flight: 4, env: { A: "1" } },
      tcp: { cmd: ["node", "runner.js"], transport: "tcp", tcp_port: 9100, encoding: "msgpack" },
    },
    runner_routes: { special: "tcp" },
    cron_jobs: [{ function_name: "tick", schedule: "*/5 * * * *", params: {} }],
  };
}

/** Every dotted path to a leaf (or a table, or an array) of a config. */
function paths(value: unknown, prefix: string[] = []): string[][] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return [prefix];
  const out: string[][] = prefix.length > 0 ? [prefix] : [];
  for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  return out;
}

function setPath(root: Record<string, unknown>, path: string[], value: unknown): void {
  let node = root;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
  node[path[path.length - 1]!] = value;
}

const WRONG: Array<(rng: Rng) => unknown> = [
  () => "",
  () => "   ",
  () => "many",
  () => -1,
  () => 0,
  () => 1.5,
  () => 1e300,
  () => -1e300,
  () => 2 ** 53,
  () => true,
  () => [],
  () => [1, "a"],
  () => ({}),
  () => ({ nested: { deeper: 1 } }),
  () => new Date(0),
  (rng) => "x".repeat(rng.int(1, 3000)),
];

/**
 * Malformed configurations: each run breaks one key of a valid config (a wrong type, a value
 * out of range, an empty string, a table where a scalar goes...) or adds an unknown key. The
 * loader must accept the value or throw a ConfigError naming that key (its dotted path); any
 * other exception is a crash. A few broken files also go through the real CLI, which must exit
 * with an error naming the key and never print the Redis password.
 */
export function fuzzConfig(rng: Rng, count: number, cliCount: number): ConfigFuzzReport {
  const report: ConfigFuzzReport = {
    configs: 0,
    accepted: 0,
    rejected: 0,
    unnamed: 0,
    crashes: 0,
    cli_checked: 0,
    cli_failures: 0,
    problems: [],
  };
  const all = paths(baseConfig());
  const broken: Array<{ doc: Record<string, unknown>; key: string }> = [];
  for (let i = 0; i < count; i++) {
    const doc = baseConfig();
    let path = rng.pick(all);
    let value = rng.pick(WRONG)(rng);
    if (rng.chance(0.1)) {
      // An unknown key beside a real one.
      path = [...path.slice(0, -1), `bogus_${rng.int(0, 99)}`];
      value = 1;
    }
    setPath(doc, path, value);
    const key = path.join(".");
    report.configs++;
    try {
      resolveConfig(doc);
      report.accepted++;
    } catch (error) {
      if (!(error instanceof ConfigError)) {
        report.crashes++;
        report.problems.push({ key, value: shown(value), got: String((error as Error).stack) });
        continue;
      }
      report.rejected++;
      const named = error.message.includes(key);
      if (!named || error.message.includes(SECRET)) {
        report.unnamed++;
        report.problems.push({ key, value: shown(value), got: error.message.slice(0, 300) });
      } else if (broken.length < cliCount && typeof value !== "object") {
        broken.push({ doc, key });
      }
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "rrq-chaos-config-"));
  try {
    for (const [n, { doc, key }] of broken.entries()) {
      const file = join(dir, `bad-${n}.toml`);
      writeFileSync(file, stringify({ rrq: doc }));
      const run = spawnSync(process.execPath, [RRQ_BIN, "--config", file, "worker", "run"], {
        encoding: "utf8",
        timeout: 20_000,
      });
      report.cli_checked++;
      const output = `${run.stdout}${run.stderr}`;
      const leaf = key.split(".").pop()!;
      if (
        run.status === 0 ||
        run.status === null ||
        !output.includes(leaf) ||
        output.includes(SECRET)
      ) {
        report.cli_failures++;
        report.problems.push({
          key,
          value: "(cli)",
          got: `exit ${run.status} signal ${run.signal}: ${output.slice(0, 300)}`,
        });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

function shown(value: unknown): string {
  const text = value instanceof Date ? value.toISOString() : JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
