import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "../runner/ports.js";

/**
 * A private, throw-away redis-server: one process on a free loopback port with persistence
 * off. The conformance harness gives each cell a database of its own; the test suite
 * (test/support/redis-server.ts) wraps it to use database 0.
 */
export interface TestRedis {
  port: number;
  /** The DSN of one database. */
  url(database: number): string;
  /** A client on one database (one per database, closed by stop()). */
  client(database: number): Redis;
  /** The server process (for fault injection). */
  process: ChildProcess;
  /** Disconnects the clients, kills the server and removes its directory. */
  stop(): Promise<void>;
}

/** Options of {@link startRedis}. */
export interface RedisServerOptions {
  /** More redis-server arguments (e.g. `["--maxmemory", "0"]`). */
  extraArgs?: readonly string[];
  /** How many databases (default 64, so parallel conformance cells never share one). */
  databases?: number;
  /** How long to wait for the port to accept connections (default 15 s). */
  startTimeoutMs?: number;
  /** A fixed port; by default a free one, and another one when a parallel starter takes it. */
  port?: number;
}

/** Keeps the last few KiB of the server's stderr for error messages. */
const STDERR_TAIL = 4096;

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port }, () => {
      socket.end();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Another process's server answered on the port this one was meant to listen on. */
class PortTakenError extends Error {}

/** Fresh ports tried before giving up (each lost race costs one). */
const START_ATTEMPTS = 5;

/**
 * Whether the redis-server answering on `port` is the one started with `--dir dir`: a free port
 * is only free until someone binds it, and parallel test files start servers at the same time.
 * A server that lost the race exits with "Address already in use" while the winner answers, so
 * accepting connections alone does not prove the server is ours.
 */
async function answersFrom(port: number, dir: string): Promise<boolean> {
  const probe = new Redis({
    port,
    host: "127.0.0.1",
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    // A foreign listener may never answer in RESP.
    connectTimeout: 5000,
    commandTimeout: 5000,
  });
  probe.on("error", () => {}); // a refused or foreign connection is an answer, not a crash
  try {
    await probe.connect();
    const reply = (await probe.config("GET", "dir")) as string[];
    return reply[1] === realpathSync(dir);
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/**
 * Starts `redis-server` (from PATH; REDIS_SERVER overrides it) and resolves once it accepts
 * connections and is confirmed to be the server answering on its port (a port taken by a
 * parallel starter is retried with a fresh one). Fails with the server's stderr when it cannot
 * start or exits early.
 */
export async function startRedis(options: RedisServerOptions = {}): Promise<TestRedis> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      const retry = error instanceof PortTakenError && options.port === undefined;
      if (!retry || attempt >= START_ATTEMPTS) throw error;
    }
  }
}

async function startOnce(options: RedisServerOptions): Promise<TestRedis> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "rrq-redis-"));
  const program = process.env.REDIS_SERVER ?? "redis-server";
  const child = spawn(
    program,
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--databases",
      String(options.databases ?? 64),
      ...(options.extraArgs ?? []),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.on(
    "data",
    (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-STDERR_TAIL)),
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let spawnError: Error | undefined;
  child.once("error", (error) => (spawnError = error));
  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
  while (!(await listening(port))) {
    const gone = spawnError ?? (child.exitCode !== null ? `exited with ${child.exitCode}` : null);
    if (gone || Date.now() > deadline) {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      const why = gone ? String(gone instanceof Error ? gone.message : gone) : "timed out";
      throw new Error(`cannot start ${program} on port ${port} (${why}): ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (!(await answersFrom(port, dir))) {
    child.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw new PortTakenError(`another server answers on port ${port}: ${stderr.trim()}`);
  }
  const clients = new Map<number, Redis>();
  return {
    port,
    process: child,
    url: (database) => `redis://127.0.0.1:${port}/${database}`,
    client: (database) => {
      let client = clients.get(database);
      if (!client) {
        client = new Redis({ port, host: "127.0.0.1", db: database, maxRetriesPerRequest: 1 });
        clients.set(database, client);
      }
      return client;
    },
    stop: async () => {
      for (const client of clients.values()) client.disconnect();
      clients.clear();
      child.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
