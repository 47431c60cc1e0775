/** Configuration resolution (rrq-0.11-facts §8): defaults, tables, env overrides, errors. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultRunnerMissing, resolveConfig } from "../src/config/config.js";
import { findConfigFile, loadConfig } from "../src/config/load.js";
import { ConfigError } from "../src/errors.js";

const runner = { cmd: ["node", "r.js"] };

describe("defaults", () => {
  it("are RRQ 0.11's", () => {
    const c = resolveConfig({});
    expect(c).toMatchObject({
      redisDsn: "redis://localhost:6379/0",
      defaultQueueName: "rrq:queue:default",
      defaultDlqName: "rrq:dlq:default",
      defaultMaxRetries: 5,
      defaultJobTimeoutSeconds: 300,
      defaultLockTimeoutExtensionSeconds: 60,
      defaultResultTtlSeconds: 86400,
      defaultPollDelaySeconds: 0.1,
      runnerConnectTimeoutMs: 15000,
      runnerShutdownTermGraceSeconds: 5,
      runnerEnableInflightCancelHints: false,
      captureRunnerOutput: false,
      defaultUniqueJobLockTtlSeconds: 21600,
      defaultRunnerName: "python",
      runnerManagementMode: "managed",
      workerHealthCheckIntervalSeconds: 60,
      workerHealthCheckTtlBufferSeconds: 10,
      baseRetryDelaySeconds: 5,
      maxRetryDelaySeconds: 3600,
      workerShutdownGracePeriodSeconds: 10,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("RRQ-style runner tables (tcp_port) default to tcp; others to unix; max_in_flight 1", () => {
    const c = resolveConfig({ runners: { a: { ...runner, tcp_port: 9000 }, b: runner } });
    expect(c.runners.a).toMatchObject({
      transport: "tcp",
      tcpPort: 9000,
      tcpHost: "127.0.0.1",
      maxInFlight: 1,
      encoding: "json",
    });
    expect(c.runners.b).toMatchObject({ transport: "unix", tcpPort: undefined });
  });

  it("normalizes queue names and accepts [rrq.routing] as runner_routes", () => {
    const c = resolveConfig({
      default_queue_name: "jobs",
      routing: { fast: "rust", "rrq:queue:slow": "py" },
    });
    expect(c.defaultQueueName).toBe("rrq:queue:jobs");
    expect(c.runnerRoutes).toEqual({ "rrq:queue:fast": "rust", "rrq:queue:slow": "py" });
  });

  it("a non-positive connect timeout means 15000 ms; ignored RRQ keys are accepted", () => {
    expect(
      resolveConfig({ runner_connect_timeout_ms: 0, worker_concurrency: 10, expected_job_ttl: 30 })
        .runnerConnectTimeoutMs,
    ).toBe(15000);
  });
});

describe("errors name the key and what it accepts", () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      "unknown top-level key",
      { heartbeat_interval: 3 },
      /unknown key 'heartbeat_interval'; valid keys are: .*worker_health_check_interval_seconds/,
    ],
    [
      "wrong type",
      { default_max_retries: "5" },
      /default_max_retries must be an integer >= 0, got "5"/,
    ],
    [
      "timeout 0",
      { default_job_timeout_seconds: 0 },
      /default_job_timeout_seconds must be an integer >= 1/,
    ],
    [
      "bad mode",
      { runner_management_mode: "auto" },
      /runner_management_mode must be one of "managed", "external"/,
    ],
    [
      "max_in_flight over 64",
      { runners: { a: { ...runner, max_in_flight: 65 } } },
      /runners\.a\.max_in_flight must be an integer >= 1 and <= 64/,
    ],
    [
      "missing cmd",
      { runners: { a: { tcp_port: 9000 } } },
      /runners\.a\.cmd is required in managed mode/,
    ],
    [
      "tcp without port",
      { runners: { a: { ...runner, transport: "tcp" } } },
      /runners\.a\.tcp_port is required when transport = "tcp"/,
    ],
    [
      "port range overflow",
      { runners: { a: { ...runner, tcp_port: 65535, pool_size: 2 } } },
      /exceeds port 65535/,
    ],
    [
      "bad transport",
      { runners: { a: { ...runner, transport: "pipe" } } },
      /transport must be one of "stdio", "unix", "tcp"/,
    ],
    [
      "bad encoding",
      { runners: { a: { ...runner, encoding: "cbor" } } },
      /encoding must be one of "json", "msgpack"/,
    ],
    [
      "unknown runner key",
      { runners: { a: { ...runner, poolsize: 2 } } },
      /unknown key 'runners\.a\.poolsize'/,
    ],
    [
      "negative grace",
      { runner_shutdown_term_grace_seconds: -1 },
      /runner_shutdown_term_grace_seconds must be a number >= 0/,
    ],
    [
      "cron without schedule",
      { cron_jobs: [{ function_name: "f" }] },
      /cron_jobs\[0\] needs function_name and schedule/,
    ],
    [
      "both routing tables",
      { routing: {}, runner_routes: {} },
      /either runner_routes or \[rrq\.routing\]/,
    ],
  ];
  it.each(cases)("%s", (_name, raw, message) => {
    expect(() => resolveConfig(raw)).toThrow(ConfigError);
    expect(() => resolveConfig(raw)).toThrow(message);
  });
});

describe("resolution order", () => {
  const dir = mkdtempSync(join(tmpdir(), "rrq-conf-"));
  const explicit = join(dir, "explicit.toml");
  const fromEnv = join(dir, "env.toml");
  writeFileSync(explicit, 'redis_dsn = "redis://explicit:1/0"\n');
  writeFileSync(fromEnv, '[rrq]\nredis_dsn = "redis://env:2/0"\n[other]\nignored = true\n');
  writeFileSync(join(dir, "rrq.toml"), '[rrq]\nredis_dsn = "redis://cwd:3/0"\n');

  it("explicit path, then RRQ_CONFIG, then ./rrq.toml", () => {
    expect(
      loadConfig({ path: explicit, env: { RRQ_CONFIG: fromEnv }, cwd: dir }).config.redisDsn,
    ).toBe("redis://explicit:1/0");
    const viaEnv = loadConfig({ env: { RRQ_CONFIG: fromEnv }, cwd: dir });
    expect(viaEnv.config.redisDsn).toBe("redis://env:2/0");
    expect(viaEnv.source.kind).toBe("RRQ_CONFIG");
    expect(loadConfig({ env: { RRQ_CONFIG: "" }, cwd: dir }).source.kind).toBe("working directory");
  });

  it("RRQ_REDIS_DSN and RRQ_CAPTURE_RUNNER_OUTPUT override the file", () => {
    const c = loadConfig({
      path: explicit,
      env: { RRQ_REDIS_DSN: "redis://override:4/0", RRQ_CAPTURE_RUNNER_OUTPUT: "yes" },
      cwd: dir,
    }).config;
    expect(c.redisDsn).toBe("redis://override:4/0");
    expect(c.captureRunnerOutput).toBe(true);
  });

  it("reports a missing file and a TOML syntax error", () => {
    const empty = mkdtempSync(join(tmpdir(), "rrq-none-"));
    expect(() => findConfigFile(undefined, {}, empty)).toThrow(
      "RRQ config not found. Provide --config, set RRQ_CONFIG, or add rrq.toml.",
    );
    expect(() => findConfigFile(join(empty, "nope.toml"), {}, empty)).toThrow(
      /not found: .*nope\.toml \(from --config\)/,
    );
    const broken = join(dir, "broken.toml");
    writeFileSync(broken, "[rrq\nredis_dsn = 1\n");
    expect(() => loadConfig({ path: broken, env: {}, cwd: dir })).toThrow(
      /cannot parse .*broken\.toml/,
    );
  });
});

describe("the first-hour report (config)", () => {
  it("warns that worker_concurrency is ignored and says what to use; warnings are always present", () => {
    expect(resolveConfig({}).warnings).toEqual([]);
    const { warnings } = resolveConfig({ worker_concurrency: 1 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/worker_concurrency .*ignored.*pool_size × max_in_flight/);
  });

  it("reports every problem at once, not only the first", () => {
    const raw = {
      default_max_retries: -1,
      default_job_timeout_seconds: "x",
      runners: { a: { cmd: ["x"], pool_size: 0 }, b: { cmd: [] } },
    };
    expect(() => resolveConfig(raw)).toThrow(ConfigError);
    let message = "";
    try {
      resolveConfig(raw);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^4 problems in the configuration:/);
    for (const part of [
      "default_max_retries",
      "default_job_timeout_seconds",
      "runners.a.pool_size",
      "runners.b.cmd",
    ])
      expect(message).toContain(part);
  });

  it("suggests the key a misspelt one was meant to be, in [rrq] and in runner tables", () => {
    expect(() => resolveConfig({ default_max_retires: 3 })).toThrow(
      /unknown key 'default_max_retires'; valid keys are: .*did you mean 'default_max_retries'\?/,
    );
    expect(() => resolveConfig({ runners: { a: { ...runner, poolsize: 2 } } })).toThrow(
      /unknown key 'runners\.a\.poolsize'.*did you mean 'pool_size'\?/,
    );
    expect(() => resolveConfig({ completely_different: 1 })).not.toThrow(/did you mean/);
  });

  it("refuses a DSN without a scheme while loading, suggesting redis://host:port/0", () => {
    expect(() => resolveConfig({ redis_dsn: "localhost:6391" })).toThrow(ConfigError);
    expect(() => resolveConfig({ redis_dsn: "localhost:6391" })).toThrow(
      /redis_dsn "localhost:6391" has no scheme; use a URL such as redis:\/\/localhost:6391\/0/,
    );
    expect(() => resolveConfig({ redis_dsn: "http://h:1" })).toThrow(/unsupported scheme 'http'/);
    expect(() => resolveConfig({ redis_dsn: "redis://:s3cret@h:1/zero" })).toThrow(
      /database 'zero'/,
    );
    expect(() => resolveConfig({ redis_dsn: "redis://:s3cret@h:1/zero" })).not.toThrow(/s3cret/);
    expect(() => resolveConfig({}, { redisDsn: "h:1" })).toThrow(
      /RRQ_REDIS_DSN "h:1" has no scheme/,
    );
    for (const ok of ["redis://h:1/2", "rediss://u:p@h/0", "unix:///tmp/r.sock?db=3", "redis://h"])
      expect(resolveConfig({ redis_dsn: ok }).redisDsn).toBe(ok);
  });

  it("says where a missing default runner's name came from and what to do", () => {
    const implicit = resolveConfig({ runners: { node: runner } });
    expect(implicit.defaultRunnerNameExplicit).toBe(false);
    expect(implicit.warnings).toEqual([]);
    expect(defaultRunnerMissing(implicit)).toMatch(
      /default runner 'python' \(RRQ's built-in default_runner_name = "python"; this config does not set it\) is not configured \(configured runners: node\).*set default_runner_name = "node"/,
    );
    const explicit = resolveConfig({ default_runner_name: "nodejs", runners: { node: runner } });
    expect(defaultRunnerMissing(explicit)).toMatch(/'nodejs' \(set by default_runner_name\)/);
  });

  it("takes the Redis connect timeout from rrq.toml and RRQ_REDIS_CONNECT_TIMEOUT", () => {
    expect(resolveConfig({}).redisConnectTimeoutSeconds).toBe(5);
    expect(resolveConfig({ redis_connect_timeout_seconds: 1.5 }).redisConnectTimeoutSeconds).toBe(
      1.5,
    );
    expect(() => resolveConfig({ redis_connect_timeout_seconds: 0 })).toThrow(
      /redis_connect_timeout_seconds must be a number > 0 and <= \d+, got 0/,
    );
    const dir = mkdtempSync(join(tmpdir(), "rrq-cfg-"));
    writeFileSync(join(dir, "rrq.toml"), "redis_connect_timeout_seconds = 9\n");
    const load = (value: string) =>
      loadConfig({ env: { RRQ_REDIS_CONNECT_TIMEOUT: value }, cwd: dir }).config;
    expect(load("2").redisConnectTimeoutSeconds).toBe(2);
    expect(() => load("soon")).toThrow(
      /RRQ_REDIS_CONNECT_TIMEOUT must be a number > 0.*got "soon"/,
    );
  });
});
