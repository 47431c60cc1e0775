import { createConnection, createServer, type Server, type Socket } from "node:net";

/**
 * What the proxy does to the traffic of every connection through it:
 * - `pass`: forwards both ways untouched;
 * - `blackhole`: sockets stay open and nothing flows either way; bytes sent meanwhile are held
 *   (as TCP retransmission would deliver them) and flow, in order, once the mode changes;
 * - `latency`: every chunk is delayed `ms` each way (order kept);
 * - `reset`: forwards, and destroys every open connection (RST to the client) every
 *   `everyMs[0]`–`everyMs[1]` ms, at a random point of that range each time.
 */
export type FaultMode =
  | { kind: "pass" }
  | { kind: "blackhole" }
  | { kind: "latency"; ms: number }
  | { kind: "reset"; everyMs: [number, number] };

/** Where the proxy forwards to. */
export interface ProxyTarget {
  host?: string;
  port: number;
}

/** Called on every reset the proxy causes, with the number of connections it destroyed. */
export type ResetListener = (connections: number, at: number) => void;

/** One direction of one connection: an ordered queue of chunks with their release times. */
class Link {
  private readonly queue: Array<{ due: number; chunk: Buffer }> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly to: Socket,
    private readonly proxy: FaultProxy,
  ) {}

  push(chunk: Buffer): void {
    const mode = this.proxy.currentMode;
    const delay = mode.kind === "latency" ? mode.ms : 0;
    this.queue.push({ due: Date.now() + delay, chunk });
    this.drain();
  }

  /** Writes every chunk that is due, unless blackholed; re-arms itself for the next one. */
  drain(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.proxy.currentMode.kind === "blackhole" || this.to.destroyed) return;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now)
      this.to.write(this.queue.shift()!.chunk);
    if (this.queue.length > 0)
      this.timer = setTimeout(() => this.drain(), this.queue[0]!.due - now);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.queue.length = 0;
  }
}

/** A client connection, its upstream connection to Redis, and the two directions between them. */
interface Pair {
  client: Socket;
  upstream: Socket;
  up: Link;
  down: Link;
}

/**
 * A TCP proxy in front of one orchestrator's Redis, for the chaos suite: point that
 * orchestrator's `redis_dsn` at {@link FaultProxy.url} and switch {@link FaultProxy.mode} while
 * it runs. Only the connections through the proxy see the fault; everyone else talks to Redis
 * directly.
 *
 * ```ts
 * const proxy = new FaultProxy({ port: redis.port });
 * const port = await proxy.listen();
 * proxy.mode({ kind: "reset", everyMs: [100, 400] });
 * await proxy.close();
 * ```
 */
export class FaultProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<Pair>();
  private resetTimer: NodeJS.Timeout | undefined;
  private readonly listeners: ResetListener[] = [];
  private readonly random: () => number;
  private trap: { match: (chunk: Buffer) => boolean; left: number } | undefined;
  /** The mode in force. */
  currentMode: FaultMode = { kind: "pass" };
  /** Resets so far (one per reset event, however many connections it closed). */
  resets = 0;
  /** Connections destroyed so far by resets and traps. */
  connectionsReset = 0;
  /** Connections accepted so far. */
  accepted = 0;

  constructor(
    private readonly target: ProxyTarget,
    options: { random?: () => number } = {},
  ) {
    this.random = options.random ?? Math.random;
  }

  /** Starts listening on 127.0.0.1 (a free port unless given); resolves with the port. */
  listen(port = 0): Promise<number> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        const address = server.address();
        resolve(typeof address === "object" && address ? address.port : port);
      });
    });
  }

  /** The port it listens on (after {@link listen}). */
  get port(): number {
    const address = this.server?.address();
    if (!address || typeof address !== "object") throw new Error("FaultProxy is not listening");
    return address.port;
  }

  /** A `redis://` DSN through the proxy. */
  url(db = 0): string {
    return `redis://127.0.0.1:${this.port}/${db}`;
  }

  /** Open connections through the proxy. */
  get connections(): number {
    return this.pairs.size;
  }

  /** Switches the fault mode; held bytes flow again when leaving `blackhole`. */
  mode(mode: FaultMode): this {
    this.currentMode = mode;
    if (this.resetTimer) clearTimeout(this.resetTimer);
    this.resetTimer = undefined;
    if (mode.kind === "reset") this.scheduleReset(mode.everyMs);
    for (const pair of this.pairs) {
      pair.up.drain();
      pair.down.drain();
    }
    return this;
  }

  /** Calls `listener` on every reset (the chaos scenario records them as faults). */
  onReset(listener: ResetListener): this {
    this.listeners.push(listener);
    return this;
  }

  /** Destroys every open connection now (RST to the client); returns how many. */
  resetAll(): number {
    const count = this.pairs.size;
    for (const pair of [...this.pairs]) this.destroy(pair);
    this.resets++;
    this.connectionsReset += count;
    const at = Date.now();
    for (const listener of this.listeners) listener(count, at);
    return count;
  }

  /**
   * The next `times` client chunks that `match` are forwarded to Redis, and then that
   * connection is reset before any reply can reach the client: a command that ran whose reply
   * was lost. Pass mode otherwise.
   */
  resetAfter(match: (chunk: Buffer) => boolean, times = 1): this {
    this.trap = { match, left: times };
    return this;
  }

  /** Traps of {@link resetAfter} not sprung yet. */
  get trapsLeft(): number {
    return this.trap?.left ?? 0;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    if (this.resetTimer) clearTimeout(this.resetTimer);
    this.resetTimer = undefined;
    for (const pair of [...this.pairs]) this.destroy(pair);
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private scheduleReset(range: [number, number]): void {
    const ms = range[0] + Math.floor(this.random() * (range[1] - range[0] + 1));
    this.resetTimer = setTimeout(() => {
      this.resetAll();
      if (this.currentMode.kind === "reset") this.scheduleReset(range);
    }, ms);
  }

  private accept(client: Socket): void {
    this.accepted++;
    const upstream = createConnection({
      host: this.target.host ?? "127.0.0.1",
      port: this.target.port,
    });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pair: Pair = {
      client,
      upstream,
      up: new Link(upstream, this),
      down: new Link(client, this),
    };
    this.pairs.add(pair);
    client.on("data", (chunk: Buffer) => this.fromClient(pair, chunk));
    upstream.on("data", (chunk: Buffer) => pair.down.push(chunk));
    // Either side closing or failing closes the other: the proxy never half-opens a link.
    for (const socket of [client, upstream]) {
      socket.on("error", () => this.destroy(pair));
      socket.on("close", () => this.destroy(pair));
    }
  }

  private fromClient(pair: Pair, chunk: Buffer): void {
    const trap = this.trap;
    if (trap && trap.left > 0 && this.currentMode.kind === "pass" && trap.match(chunk)) {
      trap.left--;
      // Deliver the command, close the upstream side gracefully (Redis still runs it), and
      // reset the client before the reply can come back.
      pair.down.stop();
      pair.upstream.end(chunk);
      this.pairs.delete(pair);
      pair.up.stop();
      pair.client.resetAndDestroy();
      this.connectionsReset++;
      for (const listener of this.listeners) listener(1, Date.now());
      return;
    }
    pair.up.push(chunk);
  }

  private destroy(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.up.stop();
    pair.down.stop();
    if (!pair.client.destroyed) pair.client.resetAndDestroy();
    if (!pair.upstream.destroyed) pair.upstream.destroy();
  }
}
