/**
 * Orchestrator plugins (docs/middleware.md "Plugins"): rrq.toml's `plugins` are loaded before
 * the first claim of a real Worker with the Node runner; they receive the documented events and
 * a read-only config view; a throwing or rejecting handler is logged as worker:error and never
 * affects a job; a plugin that cannot be loaded stops the worker with a config error naming it.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Writable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { ConfigError } from "../src/errors.js";
import { Worker } from "../src/orchestrator/worker.js";
import { Producer } from "../src/producer/producer.js";
import { EventBus, type OrchestratorEvents } from "../src/telemetry/events.js";
import { createLogger } from "../src/telemetry/logger.js";
import { runCli } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { jobSettled, testConfig, waitFor } from "./support/worker-harness.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/plugins/", import.meta.url));
const plugin = (name: string) => join(FIXTURES, name);

interface Record_ {
  events: { name: string; payload: Record<string, unknown> }[];
  config: { queues: string[]; runners: string[]; defaultQueue: string } | null;
}
const store = globalThis as { __rrqPluginRecord?: Record_ };

let redis: TestRedis;
let producer: Producer;
beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
});
afterAll(async () => {
  await producer?.close();
  await redis?.stop();
});
beforeEach(async () => {
  await redis.flush();
  delete store.__rrqPluginRecord;
});

/** What `worker.run()` rejects with for `plugins`. */
async function startFailure(plugins: string[]): Promise<ConfigError> {
  const worker = new Worker({
    config: testConfig(redis.url, { plugins }),
    quietOnSigtstp: false,
    pluginLogger: createLogger("json", "info", new Writable({ write: (_c, _e, done) => done() })),
  });
  const error = await worker.run().then(
    () => expect.fail("the worker must not start"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).code).toBe("invalid_config");
  return error as ConfigError;
}

describe("orchestrator plugins with a real worker", () => {
  it("delivers the events, the config view and log lines; a failing handler never affects jobs", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const config = testConfig(redis.url, {
      plugins: [plugin("throwing.mjs"), plugin("recorder.mjs")],
    });
    const events = new EventBus();
    const errors: OrchestratorEvents["worker:error"][] = [];
    events.on("worker:error", (e) => void errors.push(e));
    const worker = new Worker({
      config,
      events,
      quietOnSigtstp: false,
      pluginLogger: createLogger("json", "info", sink),
    });
    const done = worker.run();
    await waitFor(() => worker.status !== "initializing", 30_000, "worker start");
    try {
      const ok = await producer.enqueue("echo", { hello: "plugin" });
      const dead = await producer.enqueue("fail_permanently", {}, { maxRetries: 0 });
      expect((await jobSettled(redis.client, ok)).status).toBe("COMPLETED");
      expect((await jobSettled(redis.client, dead)).status).toBe("FAILED");
      const record = store.__rrqPluginRecord!;
      await waitFor(() => record.events.some((e) => e.name === "job:dlq"), 10_000, "job:dlq");
      const names = record.events.map((e) => e.name);
      expect(names[0]).toBe("worker:started");
      const completed = record.events.find((e) => e.name === "job:completed")!.payload;
      expect(completed).toMatchObject({ jobId: ok, functionName: "echo", runner: "node" });
      expect(
        record.events.filter((e) => e.name === "job:claimed").map((e) => e.payload.jobId),
      ).toEqual(expect.arrayContaining([ok, dead]));
      expect(record.events.find((e) => e.name === "job:dlq")!.payload).toMatchObject({
        jobId: dead,
      });
      expect(record.config).toEqual({
        queues: ["rrq:queue:default"],
        runners: ["node"],
        defaultQueue: "rrq:queue:default",
      });
      expect(Object.isFrozen(record.config)).toBe(true);

      // the throwing plugin's sync throw and rejection were reported, with its file
      const context = `plugin ${plugin("throwing.mjs")}`;
      await waitFor(
        // two claims threw, the one completion rejected (the dead job has no job:completed)
        () => errors.filter((e) => e.context === context).length >= 3,
        10_000,
        "plugin errors",
      );
      const messages = errors.filter((e) => e.context === context).map((e) => e.error.message);
      expect(new Set(messages)).toEqual(
        new Set(["plugin handler threw", "plugin handler rejected"]),
      );

      const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(logged).toContainEqual(
        expect.objectContaining({
          msg: "recorder plugin loaded",
          events: 6,
          "rrq.plugin": plugin("recorder.mjs"),
        }),
      );
    } finally {
      worker.requestShutdown();
      await done;
    }
    const names = store.__rrqPluginRecord!.events.map((e) => e.name);
    expect(names).toContain("worker:stopping");
    // after the run the plugin's handlers are unsubscribed
    const count = names.length;
    events.emit("worker:started", { workerId: "x", queues: [] });
    expect(store.__rrqPluginRecord!.events).toHaveLength(count);
  });

  it("a plugin path that does not load stops the worker with an error naming the file", async () => {
    const missing = join(FIXTURES, "no-such-plugin.mjs");
    const error = await startFailure([missing]);
    expect(error.message).toContain(`plugin ${missing} failed to load`);
  });

  it("a default export that is not a function, or a failing setup, stops the worker", async () => {
    const notFn = await startFailure([plugin("not-a-function.mjs")]);
    expect(notFn.message).toBe(
      `plugin ${plugin("not-a-function.mjs")} must export a function as its default export (got object)`,
    );
    const unknown = await startFailure([plugin("recorder.mjs"), plugin("unknown-event.mjs")]);
    expect(unknown.message).toMatch(/failed to start: unknown plugin event 'runner:log'/);
    // the recorder loaded first was unsubscribed again: nothing reaches it
    expect(store.__rrqPluginRecord!.events).toEqual([]);
  });
});

describe("plugins in rrq.toml", () => {
  it("resolves paths against the rrq.toml's directory and keeps unresolvable names", () => {
    const dir = mkdtempSync(join(tmpdir(), "rrq-plugins-"));
    mkdirSync(join(dir, "plugins"));
    const path = join(dir, "rrq.toml");
    writeFileSync(
      path,
      '[rrq]\nplugins = ["./plugins/audit.mjs", "../elsewhere/x.mjs", "no-such-rrq-plugin-pkg"]\n',
    );
    const { config } = loadConfig({ path, env: {} });
    expect(config.plugins).toEqual([
      join(dir, "plugins", "audit.mjs"),
      join(dir, "..", "elsewhere", "x.mjs"),
      "no-such-rrq-plugin-pkg",
    ]);
  });

  it("rejects a plugins value that is not a list of strings", () => {
    const dir = mkdtempSync(join(tmpdir(), "rrq-plugins-"));
    const path = join(dir, "rrq.toml");
    writeFileSync(path, '[rrq]\nplugins = "./audit.mjs"\n');
    expect(() => loadConfig({ path, env: {} })).toThrow(/plugins/);
  });

  it("`rrq worker run` exits with a clear error for a bad plugin path", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rrq-plugins-"));
    const path = join(dir, "rrq.toml");
    writeFileSync(
      path,
      [
        "[rrq]",
        `redis_dsn = "${redis.url}"`,
        'plugins = ["./missing.mjs"]',
        'default_runner_name = "node"',
        "[rrq.runners.node]",
        `cmd = ["${process.execPath}", "-e", "0"]`,
      ].join("\n"),
    );
    const result = await runCli(path, ["worker", "run"]);
    expect(result.code).not.toBe(0);
    expect(result.err).toContain(`plugin ${join(dir, "missing.mjs")} failed to load`);
  });
});
