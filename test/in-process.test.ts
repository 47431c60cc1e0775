/**
 * In-process Node runners (`transport = "inprocess"`): the handler module is loaded into the
 * orchestrator and served over an in-memory channel, with the outcomes a runner process would
 * give (JSON round trip of results, unencodable results, timeouts that abort the handler).
 */
import { mkdtempSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConfig, type ResolvedConfig } from "../src/config/config.js";
import { ConfigError, RunnerError } from "../src/errors.js";
import { Producer } from "../src/producer/producer.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { GOLDEN_SETTINGS, jobSettled, RunningWorker, waitFor } from "./support/worker-harness.js";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const HANDLERS = fixture("in-process-handlers.mjs");
const aborted = () =>
  ((globalThis as Record<string, unknown>).__rrqkitInProcessAborted ?? new Map()) as Map<
    string,
    string
  >;

let redis: TestRedis;
let producer: Producer;

function config(runner: Record<string, unknown>): ResolvedConfig {
  return resolveConfig({
    redis_dsn: redis.url,
    default_runner_name: "local",
    worker_shutdown_grace_period_seconds: 2,
    ...GOLDEN_SETTINGS,
    runners: { local: runner },
  });
}

const settled = (id: string) => jobSettled(redis.client, id);

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url, maxRetries: 0, jobTimeoutSeconds: 1 });
});
afterAll(async () => {
  await producer.close();
  await redis.stop();
});

describe("in-process runner", () => {
  let worker: RunningWorker;
  beforeAll(async () => {
    const resolved = config({
      transport: "inprocess",
      handlers: HANDLERS,
      pool_size: 2,
      max_in_flight: 8,
    });
    expect(resolved.runners.local).toMatchObject({ transport: "inprocess", handlers: HANDLERS });
    worker = await new RunningWorker(resolved).start();
  });
  afterAll(async () => {
    await worker.stop();
  });

  it("runs handlers inside the orchestrator process, one ready slot per pool_size", async () => {
    const id = await producer.enqueue("pid", {});
    expect(await settled(id)).toMatchObject({
      status: "COMPLETED",
      result: JSON.stringify({ pid: process.pid }),
    });
    expect(worker.of("runner:spawn")).toEqual([
      expect.objectContaining({ index: 0, pid: process.pid, transport: "inprocess" }),
      expect.objectContaining({ index: 1, pid: process.pid, transport: "inprocess" }),
    ]);
    expect(worker.of("runner:ready")[0]?.features).toContain("cancel_by_job");
  });

  it("stores what the wire would carry: a JSON round trip of the result", async () => {
    const echo = await producer.enqueue("echo", { nested: { list: [1, "two", null] } });
    const when = await producer.enqueue("when", {});
    expect(await settled(echo)).toMatchObject({
      status: "COMPLETED",
      result: '{"nested":{"list":[1,"two",null]}}',
    });
    expect(await settled(when)).toMatchObject({
      status: "COMPLETED",
      result: '{"at":"1970-01-01T00:00:00.000Z"}',
    });
  });

  it("an unencodable result becomes an OutcomeNotEncodable error, as over a socket", async () => {
    const id = await producer.enqueue("bigint", {});
    const hash = await settled(id);
    expect(hash.status).toBe("FAILED");
    expect(hash.last_error).toMatch(/^Outcome could not be sent: not_encodable/);
  });

  it("a thrown error fails the job with its message", async () => {
    const id = await producer.enqueue("boom", {});
    expect(await settled(id)).toMatchObject({ status: "FAILED", last_error: "boom in process" });
  });

  it("a timeout aborts the handler's signal and fails the job", async () => {
    const id = await producer.enqueue("wait_for_abort", {});
    expect(await settled(id)).toMatchObject({
      status: "FAILED",
      last_error: "Job timed out after 1s.",
    });
    // The runtime's deadline (TimeoutError) or the orchestrator's cancel (AbortError), whichever
    // fires first: either way the handler hears about it.
    await waitFor(() => aborted().has(id), 5_000, "the handler's abort");
    expect(["TimeoutError", "AbortError"]).toContain(aborted().get(id));
  });
});

describe("in-process runner configuration", () => {
  const expectConfigError = (runner: Record<string, unknown>, message: RegExp) => {
    expect(() => config(runner)).toThrow(ConfigError);
    expect(() => config(runner)).toThrow(message);
  };

  it("needs a handlers module and takes no process settings", () => {
    expectConfigError({ transport: "inprocess" }, /runners\.local\.handlers is required/);
    expectConfigError(
      { transport: "inprocess", handlers: HANDLERS, cmd: ["node", "x.js"] },
      /runners\.local\.cmd does not apply to transport = "inprocess"/,
    );
    expectConfigError(
      { transport: "inprocess", handlers: HANDLERS, encoding: "msgpack" },
      /runners\.local\.encoding does not apply/,
    );
    expectConfigError(
      { cmd: ["node", "x.js"], handlers: HANDLERS },
      /runners\.local\.handlers is only used with transport = "inprocess"/,
    );
    expectConfigError({ transport: "inprocess", handlers: "" }, /runners\.local\.handlers/);
  });

  it("a module that cannot be loaded, or exports no Registry, stops the start naming it", async () => {
    for (const [handlers, message] of [
      [fixture("missing.mjs"), /cannot load handlers module .*missing\.mjs/],
      [fixture("not-a-registry.mjs"), /not-a-registry\.mjs exports no @rrqkit\/runner Registry/],
    ] as const) {
      const attempt = new RunningWorker(config({ transport: "inprocess", handlers })).start();
      await expect(attempt).rejects.toThrow(RunnerError);
      await expect(attempt).rejects.toThrow(message);
    }
  });

  it("a restarted worker loads an edited module again (rrq worker watch)", async () => {
    // Duck-typed registry (get + names): the file lives outside the repository's node_modules.
    const path = join(mkdtempSync(join(tmpdir(), "rrq-inproc-")), "handlers.mjs");
    const write = (version: string, mtime: number) => {
      writeFileSync(
        path,
        `export default { get: (name) => name === "version" ? () => "${version}" : undefined, names: () => ["version"] };\n`,
      );
      utimesSync(path, mtime, mtime);
    };
    const runOnce = async () => {
      const worker = await new RunningWorker(
        config({ transport: "inprocess", handlers: path }),
      ).start();
      try {
        return (await jobSettled(redis.client, await producer.enqueue("version", {}))).result;
      } finally {
        await worker.stop();
      }
    };
    write("one", 1_000_000);
    expect(await runOnce()).toBe('"one"');
    write("two", 2_000_000);
    expect(await runOnce()).toBe('"two"');
  });
});
