import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "../../src/runner/ports.js";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port }, () => {
      socket.end();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * A private redis-server for one scenario, on a fixed port and directory so it can be killed
 * with SIGKILL and started again in place. With `aof`, every write is fsynced before Redis
 * acknowledges it (`--appendfsync always`), so acknowledged writes survive the kill.
 */
export class ChaosRedis {
  readonly url: string;
  /** A client for checks; it waits (offline queue) while the server is down. */
  readonly client: Redis;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  restarts = 0;

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly aof: boolean,
  ) {
    this.url = `redis://127.0.0.1:${port}/0`;
    this.client = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: null,
      retryStrategy: () => 50,
    });
  }

  static async start(options: { aof?: boolean } = {}): Promise<ChaosRedis> {
    const dir = mkdtempSync(join(tmpdir(), "rrq-chaos-redis-"));
    const redis = new ChaosRedis(await freePort(), dir, options.aof ?? false);
    await redis.spawn();
    await redis.client.connect();
    return redis;
  }

  private async spawn(): Promise<void> {
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir];
    args.push("--save", "", "--protected-mode", "no");
    if (this.aof) args.push("--appendonly", "yes", "--appendfsync", "always");
    else args.push("--appendonly", "no");
    const child = spawn("redis-server", args, { stdio: ["ignore", "ignore", "inherit"] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const deadline = Date.now() + 20_000;
    while (!(await portOpen(this.port))) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode})`);
      if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${this.port}`);
      await sleep(20);
    }
  }

  /** The server's pid. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** SIGKILLs the server and waits for it to be gone. */
  async kill9(): Promise<void> {
    this.child?.kill("SIGKILL");
    await this.exited;
  }

  /** Starts the server again on the same port and directory (it reloads its AOF). */
  async restart(): Promise<void> {
    await this.spawn();
    this.restarts++;
    // Wait until the AOF is loaded and commands are served.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        if ((await this.client.ping()) === "PONG") return;
      } catch {
        // LOADING
      }
      if (Date.now() > deadline) throw new Error("redis-server did not come back");
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    this.client.disconnect();
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
