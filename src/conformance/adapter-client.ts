import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { CommandSpec } from "./runner-session.js";

/** One reply of a producer adapter (PRODUCER_ADAPTER.md). */
export type AdapterReply =
  | { id: unknown; ok: true; result: unknown }
  | { id: unknown; ok: false; error: { code: string; message: string; field?: string } };

/** The adapter broke its own contract (no reply, wrong id, not JSON). */
export class AdapterError extends Error {
  override readonly name = "AdapterError";
}

/**
 * A producer adapter process: JSON commands in on stdin, one JSON reply per command out on
 * stdout, strictly in order.
 */
export class AdapterClient {
  private nextId = 0;
  private readonly replies: string[] = [];
  private waiter: (() => void) | undefined;
  private stderrTail = "";
  private ended = false;
  /** The previous call, so that calls run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Ids of commands that timed out: their late replies are dropped. */
  private readonly abandoned = new Set<number>();

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      this.replies.push(line);
      this.waiter?.();
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on(
      "data",
      (text: string) => (this.stderrTail = (this.stderrTail + text).slice(-2000)),
    );
    child.once("exit", () => {
      this.ended = true;
      this.waiter?.();
    });
    child.on("error", () => {
      this.ended = true;
      this.waiter?.();
    });
  }

  /** Starts an adapter with extra environment and a working directory. */
  static start(
    command: CommandSpec,
    env: Record<string, string> = {},
    cwd?: string,
  ): AdapterClient {
    const [program, ...args] = command.argv;
    const child = spawn(program!, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...command.env, ...env },
      cwd: cwd ?? command.cwd,
    });
    child.stdin?.on("error", () => {});
    return new AdapterClient(child);
  }

  /**
   * Sends one command and waits for its reply. Calls are serialized (the contract is strictly
   * one reply per command, in order), and a reply that arrives after its command timed out is
   * dropped rather than taken for the next command's.
   */
  call(op: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<AdapterReply> {
    const reply = this.queue.then(() => this.exchange(op, args, timeoutMs));
    this.queue = reply.catch(() => undefined);
    return reply;
  }

  private async exchange(
    op: string,
    args: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<AdapterReply> {
    const id = ++this.nextId;
    this.child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.replies.length === 0) {
        if (this.ended)
          throw new AdapterError(
            `the adapter exited without replying to ${op}: ${this.stderrTail.trim()}`,
          );
        const left = deadline - Date.now();
        if (left <= 0) {
          this.abandoned.add(id);
          throw new AdapterError(`no reply to ${op} within ${timeoutMs} ms`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          this.waiter = () => {
            clearTimeout(timer);
            this.waiter = undefined;
            resolve();
          };
        });
      }
      const line = this.replies.shift()!;
      let reply: AdapterReply;
      try {
        reply = JSON.parse(line) as AdapterReply;
      } catch {
        throw new AdapterError(`the adapter's reply to ${op} is not JSON: ${line.slice(0, 200)}`);
      }
      if (typeof reply.id === "number" && this.abandoned.delete(reply.id)) continue;
      if (reply.id !== id)
        throw new AdapterError(`reply id ${JSON.stringify(reply.id)} for command id ${id}`);
      return reply;
    }
  }

  /** Closes stdin and waits for the adapter to exit (killed after 5 s). */
  async close(): Promise<void> {
    if (this.ended) return;
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await new Promise<void>((resolve) => {
      if (this.ended) resolve();
      else this.child.once("exit", () => resolve());
    });
    clearTimeout(timer);
  }
}
