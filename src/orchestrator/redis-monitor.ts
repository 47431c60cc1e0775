import type { Redis } from "ioredis";
import type { EventBus } from "../telemetry/events.js";

/** The first repeat of an outage's log line comes this long after the first line; then doubling. */
const FIRST_REPEAT_MS = 10_000;
/** Repeats of an outage's log line are at most this far apart. */
const MAX_REPEAT_MS = 60_000;

const CLOSED = "connection closed";

/** How a silent link is probed (see {@link RedisMonitor.watchSilence}). */
export interface SilenceProbe {
  /** Milliseconds between PINGs. */
  intervalMs: number;
  /** A PING unanswered this long means the link is silent (the connection's command timeout). */
  timeoutMs: number;
}

/** The reason logged for a link that is open but answers nothing. */
export function silentReason(timeoutMs: number): string {
  return `no reply within ${timeoutMs / 1000}s (connection open but silent)`;
}

/**
 * A connection failure as one short line: the error code and address for socket errors
 * (`ECONNREFUSED 127.0.0.1:6391`), else the message with any credentials in a URL masked.
 * Never a stack, never a password.
 */
export function describeRedisError(error: Error | undefined): string {
  if (!error) return CLOSED;
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e.code && e.address)
    return `${e.code} ${e.address}${e.port === undefined ? "" : `:${e.port}`}`;
  return error.message.replace(/(\/\/[^/@\s]*:)[^/@\s]*@/g, "$1***@");
}

/**
 * Watches the worker's Redis connections and turns their failures into one `redis:down` event
 * per outage (with the delay before the next attempt), repeated at a doubling interval (10 s
 * up to 60 s) while it lasts or whenever the reason changes, and one `redis:up` when every
 * connection answers again. ioredis reports each failed reconnect (every 2 s at most), which
 * logged a stack trace every few seconds.
 */
export class RedisMonitor {
  /** Connections currently down. */
  private readonly down = new Set<string>();
  private downSince: number | undefined;
  private failures = 0;
  private lastError = new Map<string, Error>();
  private lastLogged = 0;
  private lastReason = "";
  private repeatMs = FIRST_REPEAT_MS;
  /** Outages begun so far (a write spanning a change of this number waited for Redis). */
  outages = 0;

  constructor(
    private readonly events: EventBus,
    private readonly now: () => number = Date.now,
  ) {}

  /** True while some connection is down. */
  get isDown(): boolean {
    return this.down.size > 0;
  }

  /** Milliseconds since the current outage began; 0 when Redis is up. */
  get downForMs(): number {
    return this.downSince === undefined ? 0 : this.now() - this.downSince;
  }

  /** Follows one connection (`name` tells connections apart). */
  attach(redis: Redis, name: string): void {
    redis.on("error", (error: Error) => this.lastError.set(name, error));
    // ioredis: "error" (if any), "close", then "reconnecting" with the delay it will wait.
    redis.on("reconnecting", (delayMs: number) => this.failed(name, delayMs));
    redis.on("ready", () => this.recovered(name));
  }

  /**
   * Detects a silent link, which raises no error event (a partition: the socket stays open and
   * no bytes flow): a PING every `intervalMs` on `redis`, whose command timeout fails it after
   * `timeoutMs`. An unanswered PING while the connection is up (or mid-handshake) starts an
   * outage like a refused connection does, and drops the connection so that it reconnects:
   * whatever was sent on the silent socket is then discarded, not run late when the link comes
   * back. Returns a function that stops the probe.
   */
  watchSilence(redis: Redis, name: string, probe: SilenceProbe): () => void {
    let pending = false;
    const timer = setInterval(() => {
      if (pending) return;
      pending = true;
      redis
        .ping()
        .then(
          () => undefined,
          () => {
            // refused or reconnecting: the connection's own events tell
            if (redis.status !== "ready" && redis.status !== "connect") return;
            this.lastError.set(name, new Error(silentReason(probe.timeoutMs)));
            this.failed(name, 0);
            // mid-handshake nothing but the handshake was sent: let it finish when the link does
            if (redis.status === "ready") redis.disconnect(true);
          },
        )
        .finally(() => (pending = false));
    }, probe.intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  private failed(name: string, retryInMs: number): void {
    const now = this.now();
    if (this.down.size === 0) {
      this.downSince = now;
      this.failures = 0;
      this.lastLogged = 0;
      this.lastReason = "";
      this.repeatMs = FIRST_REPEAT_MS;
      this.outages++;
    }
    this.down.add(name);
    this.failures++;
    let reason = describeRedisError(this.lastError.get(name));
    this.lastError.delete(name);
    // the close that follows a silent link's drop says nothing new
    if (reason === CLOSED && this.lastReason.startsWith("no reply")) reason = this.lastReason;
    // A dropped connection says nothing about why; the reconnect attempt's failure does (or it
    // succeeds, and redis:up tells)
    if (reason === CLOSED && this.lastLogged === 0) return;
    const first = this.lastLogged === 0;
    const due = first || now - this.lastLogged >= this.repeatMs;
    // a new reason is news at once; a connection merely closing (the other one, say) is not
    if (!due && (reason === this.lastReason || reason === CLOSED)) return;
    if (!first && due) this.repeatMs = Math.min(this.repeatMs * 2, MAX_REPEAT_MS);
    this.lastLogged = now;
    this.lastReason = reason;
    this.events.emit("redis:down", {
      first,
      reason,
      retryInMs,
      downForMs: now - (this.downSince ?? now),
      failures: this.failures,
    });
  }

  private recovered(name: string): void {
    if (!this.down.delete(name) || this.down.size > 0) return;
    const downForMs = this.now() - (this.downSince ?? this.now());
    this.downSince = undefined;
    this.events.emit("redis:up", { downForMs });
  }
}
