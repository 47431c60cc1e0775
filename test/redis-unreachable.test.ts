/**
 * The "first hour" report: against a Redis that is not there, CLI commands and producers fail
 * within the connect timeout with a message naming the DSN (never its password), instead of
 * hanging. The bounds below are "does not hang" bounds, not performance assertions.
 */
import { execFile } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProducerError } from "../src/errors.js";
import { Producer } from "../src/producer/producer.js";
import { writeConfig } from "./support/cli-harness.js";

const RRQ = fileURLToPath(new URL("../bin/rrq.js", import.meta.url));

/** Runs the real `rrq` command (dist, as users run it) and reports how it ended. */
function rrq(args: string[], timeoutMs: number) {
  return new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(
      "node",
      [RRQ, ...args],
      { timeout: timeoutMs, encoding: "utf8" },
      (error, _out, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stderr }),
    );
  });
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A server that accepts connections and never answers (a hung server, or not Redis). */
let silent: Server;
const sockets: Socket[] = [];
let silentPort = 0;
let deadPort = 0;

beforeAll(async () => {
  deadPort = await closedPort();
  silent = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  silentPort = (silent.address() as { port: number }).port;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => silent.close(() => resolve()));
});

const GENEROUS_MS = 20_000;

describe("CLI commands against a closed port", () => {
  const commands: string[][] = [
    ["queue", "list"],
    ["check"],
    ["enqueue", "echo", "--params", "{}"],
    ["dlq", "list"],
    ["job", "show", "some-id"],
  ];
  it.each(commands)(
    "rrq %s … exits non-zero naming the DSN, without the password",
    async (...args) => {
      const config = writeConfig(`redis://user:hunter2@127.0.0.1:${deadPort}/0`);
      const started = Date.now();
      const result = await rrq(["--config", config, ...args], GENEROUS_MS);
      expect(Date.now() - started).toBeLessThan(GENEROUS_MS);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `cannot connect to Redis at redis://***@127.0.0.1:${deadPort}/0`,
      );
      expect(result.stderr).not.toContain("hunter2");
      expect(result.stderr).not.toMatch(/^\s+at /m); // one clear line, no stack
    },
  );
});

describe("the TypeScript producer", () => {
  it("rejects enqueue on a closed port with redis_unavailable", async () => {
    const producer = new Producer({ redisDsn: `redis://:pw@127.0.0.1:${deadPort}/0` });
    const error = await producer.enqueue("f", {}).catch((e: unknown) => e);
    await producer.close();
    expect(error).toBeInstanceOf(ProducerError);
    expect(error).toMatchObject({ code: "redis_unavailable" });
    expect((error as Error).message).toContain(`redis://***@127.0.0.1:${deadPort}/0`);
    expect((error as Error).message).not.toContain("pw");
  });

  it("rejects within the connect timeout when the server never answers", async () => {
    const producer = new Producer({
      redisDsn: `redis://127.0.0.1:${silentPort}/0`,
      redisConnectTimeoutSeconds: 0.5,
    });
    const error = await producer.getJobStatus("x").catch((e: unknown) => e);
    await producer.close();
    expect(error).toMatchObject({ code: "redis_unavailable" });
    expect((error as Error).message).toMatch(/no reply to the Redis handshake/);
  });
});
