/**
 * Log hygiene (issue 19, item 5): a Redis error logged by the worker names the command but
 * never its arguments (job params, results) nor the Lua source ioredis sends with EVAL after a
 * NOSCRIPT, and no line is longer than the cap. Before, pino's default error serializer copied
 * `ReplyError.command.args` into the line.
 */
import { Writable } from "node:stream";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exitCodeFor, type CliIo } from "../src/cli/commands/shared.js";
import { ProducerError } from "../src/errors.js";
import { EventBus } from "../src/telemetry/events.js";
import { MAX_LOG_LINE } from "../src/telemetry/log-safety.js";
import { attachLogging, createLogger } from "../src/telemetry/logger.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

const SECRET = "sk_live_" + "S3CRET".repeat(400); // a ~2.4 KB secret-looking param
const LUA_MARK = "lua-source-marker-do-not-log";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => redis.stop());

/** A JSON logger whose lines are collected, with the worker's event logging attached. */
function capture() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  const events = new EventBus();
  attachLogging(events, createLogger("json", "info", sink));
  return { lines, events };
}

/** A script error from Redis, after a NOSCRIPT made ioredis resend it with EVAL and its source. */
async function failingScriptError(client: Redis): Promise<Error> {
  const conn = client.duplicate();
  conn.defineCommand("boomScript", {
    numberOfKeys: 1,
    lua: `-- ${LUA_MARK}\nreturn redis.error_reply("ERR refused: " .. KEYS[1])`,
  });
  await conn.script("FLUSH");
  const call = (conn as unknown as Record<string, (...a: string[]) => Promise<unknown>>)
    .boomScript!;
  try {
    await call.call(conn, "rrq:job:abc", SECRET, JSON.stringify({ result: SECRET }));
    throw new Error("the script should have failed");
  } catch (error) {
    return error as Error;
  } finally {
    conn.disconnect();
  }
}

describe("log lines never carry command arguments", () => {
  it("a failing script: the command name is logged, its args and Lua source are not", async () => {
    const error = await failingScriptError(redis.client);
    // the error object does carry them: this is what must not reach the log
    const carried = JSON.stringify((error as Error & { command?: unknown }).command);
    expect(carried).toContain("S3CRET");
    const { lines, events } = capture();
    events.emit("worker:error", { context: "complete", error });
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).not.toContain("S3CRET");
    expect(line).not.toContain(LUA_MARK);
    expect(line.length).toBeLessThanOrEqual(MAX_LOG_LINE + 1);
    const parsed = JSON.parse(line) as { err: { command: { name: string; args: number } } };
    expect(parsed.err.command.name).toMatch(/^eval(sha)?$/);
    expect(parsed.err.command.args).toBeGreaterThan(2);
  });

  it("every line is capped, with a marker, and stays one JSON object", () => {
    const { lines, events } = capture();
    events.emit("runner:log", {
      runner: "py",
      index: 0,
      stream: "stderr",
      line: "x".repeat(10_000),
    });
    const many = Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`f${i}`, "y".repeat(900)]),
    );
    events.emit("runner:log", {
      runner: "py",
      index: 0,
      stream: "stdout",
      line: JSON.stringify({ message: "hello", ...many }),
    });
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line.length).toBeLessThanOrEqual(MAX_LOG_LINE + 1);
      expect(() => JSON.parse(line) as unknown).not.toThrow();
    }
    expect(lines[0]).toMatch(/more chars cut/);
    expect(JSON.parse(lines[1]!)).toMatchObject({ msg: "hello", truncated: expect.any(Number) });
  });
});

describe("rrq CLI error lines", () => {
  function io(): CliIo & { text: string } {
    const out = { text: "" } as CliIo & { text: string };
    out.err = (t: string) => void (out.text += t);
    return out;
  }

  it("a Redis error prints its message, not its command arguments, capped", async () => {
    const error = await failingScriptError(redis.client);
    const target = io();
    exitCodeFor(error, target);
    expect(target.text).not.toContain("S3CRET");
    expect(target.text).not.toContain(LUA_MARK);
    expect(target.text).toContain("refused");
  });

  it("a very long error message is cut to the cap", () => {
    const target = io();
    exitCodeFor(new ProducerError("redis_error", "z".repeat(50_000)), target);
    expect(target.text.length).toBeLessThanOrEqual(MAX_LOG_LINE + 80);
    expect(target.text).toMatch(/more chars cut/);
  });
});
