import type { ChildProcess } from "node:child_process";
import type { Redis } from "ioredis";
import { startRedis as startServer } from "../../src/conformance/redis-server.js";

/**
 * A private redis-server for one test file, on database 0. The server itself is the one
 * `rrq conformance` uses (src/conformance/redis-server.ts); this keeps the tests' simpler shape.
 */
export interface TestRedis {
  url: string;
  port: number;
  /** A client for assertions (closed by stop()). */
  client: Redis;
  flush(): Promise<void>;
  stop(): Promise<void>;
  /** The server process (for fault injection). */
  process: ChildProcess;
}

/** Starts `redis-server` (from PATH) on a free port with persistence off. */
export async function startRedis(extraArgs: string[] = []): Promise<TestRedis> {
  const server = await startServer({ extraArgs, databases: 16 });
  const client = server.client(0);
  return {
    url: server.url(0),
    port: server.port,
    client,
    process: server.process,
    flush: async () => {
      await client.flushall();
    },
    stop: () => server.stop(),
  };
}
