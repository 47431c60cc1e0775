import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { Redis, type RedisOptions } from "ioredis";
import { RrqError, redactDsn } from "../errors.js";

/** Options for {@link connectRedis}. */
export interface ConnectOptions {
  /** Connection name shown by CLIENT LIST. */
  name?: string;
  /** Queue commands while disconnected (default true); the subscriber turns it off. */
  offlineQueue?: boolean;
  /**
   * Connection errors (refused, reset, auth). Commands are retried after reconnects, and a
   * command that fails reports its own error, so the default is to stay quiet.
   */
  onError?: (error: Error) => void;
  /**
   * Fail fast instead of waiting for Redis (CLI commands and producers; never the worker daemon,
   * which must ride out outages). A command then fails with {@link RrqError} `redis_unavailable`
   * as soon as one connection attempt fails: at once when the port refuses, after
   * `connectTimeoutSeconds` when the host does not answer or the server never completes the
   * handshake. The client keeps reconnecting in the background, so a later command works again
   * once Redis is back.
   */
  failFast?: { connectTimeoutSeconds: number };
  /**
   * Fail a command sent on a ready connection that has had no reply for this long ("Command
   * timed out"): a link that went silent (a partition: the socket stays open, no bytes flow)
   * otherwise leaves the caller waiting without bound. Commands waiting for a connection (in
   * the offline queue) wait as before, and are timed from when they are sent. A command that
   * timed out is never sent again (as ioredis' re-send after a reconnect): its caller has
   * already been told it failed.
   */
  commandTimeoutMs?: number;
}

/** Default of `redis_connect_timeout_seconds` / `RRQ_REDIS_CONNECT_TIMEOUT`. */
export const DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS = 5;

/**
 * TLS options of a `rediss://` DSN. Query parameters (redis-py's names): `ssl_ca_certs` (CA bundle
 * path), `ssl_certfile` and `ssl_keyfile` (client certificate), `ssl_cert_reqs=none` (do not
 * verify the server; also redis-rs's `#insecure` fragment).
 */
function tlsOptions(url: URL): ConnectionOptions {
  const read = (name: string) => {
    const path = url.searchParams.get(name);
    return path ? readFileSync(path) : undefined;
  };
  const insecure = url.searchParams.get("ssl_cert_reqs") === "none" || url.hash === "#insecure";
  const tls: ConnectionOptions = { servername: isIP(url.hostname) ? undefined : url.hostname };
  const ca = read("ssl_ca_certs");
  const cert = read("ssl_certfile");
  const key = read("ssl_keyfile");
  if (ca) tls.ca = ca;
  if (cert) tls.cert = cert;
  if (key) tls.key = key;
  if (insecure) tls.rejectUnauthorized = false;
  return tls;
}

const SCHEMES = ["redis:", "rediss:", "unix:", "redis+unix:"];

/**
 * What is wrong with a Redis DSN, in words (with a corrected form when one is obvious), or
 * undefined when {@link redisOptionsFromDsn} accepts it. The DSN is shown without its password.
 */
export function redisDsnProblem(dsn: string): string | undefined {
  const shown = redactDsn(dsn);
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    return `${JSON.stringify(shown)} is not a Redis URL; ${suggestion(dsn)}`;
  }
  if (!SCHEMES.includes(url.protocol)) {
    const hostPort = /^[a-z0-9.-]+:\d+(\/\d+)?$/i.test(dsn);
    return hostPort
      ? `${JSON.stringify(shown)} has no scheme; ${suggestion(dsn)}`
      : `${JSON.stringify(shown)} has the unsupported scheme '${url.protocol.slice(0, -1)}'; ` +
          "use redis://, rediss:// (TLS), unix:// or redis+unix://";
  }
  const unix = url.protocol === "unix:" || url.protocol === "redis+unix:";
  if (unix && !url.pathname) return `${JSON.stringify(shown)} names no socket path`;
  const db = url.searchParams.get("db") ?? (unix ? "0" : url.pathname.replace(/^\//, "") || "0");
  if (!/^\d+$/.test(db))
    return `${JSON.stringify(shown)} names the database '${db}'; a database is a number (redis://host:6379/0)`;
  return undefined;
}

/** "use redis://host:port/0" for a DSN that lacks its scheme. */
function suggestion(dsn: string): string {
  const bare = dsn.replace(/^\/+/, "").replace(/^[^@/]*@/, "");
  const [hostPort, db] = bare.split("/");
  const fixed = `redis://${hostPort || "localhost:6379"}/${db && /^\d+$/.test(db) ? db : "0"}`;
  return `use a URL such as ${fixed} (or rediss:// for TLS, unix:///path/redis.sock?db=0)`;
}

/**
 * Parses a Redis DSN into ioredis options: `redis://`, `rediss://` (TLS, see {@link tlsOptions})
 * with user (Redis ACL), password and db; `unix:///path?db=N` and `redis+unix:///path?db=N`.
 * A DSN {@link redisDsnProblem} refuses throws `invalid_config`.
 */
export function redisOptionsFromDsn(dsn: string): RedisOptions {
  const problem = redisDsnProblem(dsn);
  if (problem) throw new RrqError("invalid_config", `redis_dsn ${problem}`);
  const url = new URL(dsn);
  const db = Number(url.searchParams.get("db") ?? (url.pathname.replace(/^\//, "") || 0));
  const auth: RedisOptions = {};
  if (url.username) auth.username = decodeURIComponent(url.username);
  if (url.password) auth.password = decodeURIComponent(url.password);
  if (url.protocol === "unix:" || url.protocol === "redis+unix:") {
    return {
      ...auth,
      path: decodeURIComponent(url.pathname),
      db: Number(url.searchParams.get("db") ?? 0),
    };
  }
  return {
    ...auth,
    host: url.hostname.replace(/^\[|\]$/g, "") || "localhost",
    port: url.port ? Number(url.port) : 6379,
    db,
    ...(url.protocol === "rediss:" ? { tls: tlsOptions(url) } : {}),
  };
}

/**
 * Opens a Redis connection that reconnects with capped exponential backoff. By default a command
 * never gives up because of a reconnect (commands wait in the offline queue), which is what the
 * worker daemon needs; with `failFast` commands fail with `redis_unavailable` instead (see
 * {@link ConnectOptions.failFast}).
 */
export function connectRedis(dsn: string, options: ConnectOptions = {}): Redis {
  const base: RedisOptions = {
    ...redisOptionsFromDsn(dsn),
    connectionName: options.name,
    lazyConnect: false,
    enableOfflineQueue: options.offlineQueue ?? true,
    // No auto-pipelining: ioredis then builds a Pipeline object per event-loop turn, which cost
    // more than it saved once the hot paths sent one script call per batch (measured: single
    // enqueues +30 % with 1 and with 50 callers, burn-downs +12-40 % without it). Bulk paths
    // pipeline explicitly.
    enableAutoPipelining: false,
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    reconnectOnError: (error) => /READONLY|LOADING/.test(error.message),
  };
  if (!options.failFast) {
    const redis =
      options.commandTimeoutMs === undefined
        ? new Redis(base)
        : new TimedRedis(base, Math.max(1, options.commandTimeoutMs));
    redis.on("error", options.onError ?? (() => {}));
    return redis;
  }
  return connectFailFast(dsn, base, options.failFast.connectTimeoutSeconds, options.onError);
}

/** ioredis' message for a command timeout. */
const TIMED_OUT = "Command timed out";

/**
 * A client whose commands time out once written to a ready connection (see
 * {@link ConnectOptions.commandTimeoutMs}). ioredis' own `commandTimeout` also runs while a
 * command waits in the offline queue (every write during a refused outage failed, and was
 * retried, every few seconds), and it still sends a command that timed out there once the
 * connection is ready, or re-sends one that was in flight when the connection closed: run with
 * nobody waiting for its reply (a claim run that way strands its jobs until their leases
 * expire). This one does neither.
 */
class TimedRedis extends Redis {
  constructor(
    options: RedisOptions,
    private readonly timeoutMs: number,
  ) {
    super(options);
  }

  override sendCommand(
    ...args: Parameters<Redis["sendCommand"]>
  ): ReturnType<Redis["sendCommand"]> {
    const command = args[0] as {
      reject: (error: Error) => void;
      setTimeout: (ms: number) => void;
      promise: ReturnType<Redis["sendCommand"]>;
      isResolved: boolean;
      guarded?: boolean;
      failed?: boolean;
    };
    if (command.failed) return command.promise;
    if (!command.guarded) {
      command.guarded = true;
      const reject = command.reject;
      const fail = (error: Error) => {
        command.failed = true;
        reject(error);
      };
      // A timeout is final only once the socket has been read: after a pause (SIGSTOP, a
      // blocked event loop) timers run before I/O, and a reply already received would lose
      // to its own timeout.
      command.reject = (error: Error) =>
        error.message === TIMED_OUT
          ? setImmediate(() => command.isResolved || command.failed || fail(error))
          : fail(error);
    }
    // armed once, when the command is written (not while it waits for a connection)
    if (this.status === "ready") command.setTimeout(this.timeoutMs);
    return super.sendCommand(...args);
  }
}

/** Why the last connection attempt of a fail-fast client failed, for its error messages. */
const lastFailure = new WeakMap<Redis, Error>();

function connectFailFast(
  dsn: string,
  base: RedisOptions,
  timeoutSeconds: number,
  onError: ((error: Error) => void) | undefined,
): Redis {
  const timeoutMs = Math.max(1, Math.round(timeoutSeconds * 1000));
  const redis = new FailFastRedis(redactDsn(dsn), timeoutSeconds, {
    ...base,
    // Bounds the TCP connect (a host that drops packets); measured: a refused port fails in
    // ~20 ms, a dropped SYN after exactly this long.
    connectTimeout: timeoutMs,
    // A queued command fails as soon as one connection attempt fails, instead of waiting for
    // the reconnects that follow (which keep going in the background).
    maxRetriesPerRequest: 0,
  });
  redis.on("error", (error: Error) => {
    lastFailure.set(redis, error);
    onError?.(error);
  });
  watchHandshake(redis, timeoutMs);
  return redis;
}

/**
 * A server that accepts the connection but never answers (a wrong service, a hung Redis) is
 * not covered by ioredis' connectTimeout, which ends at the TCP connect: the handshake gets the
 * same budget, then the socket is dropped, which fails the queued commands.
 */
function watchHandshake(redis: Redis, timeoutMs: number): void {
  let timer: NodeJS.Timeout | undefined;
  const clear = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  redis.on("connect", () => {
    clear();
    timer = setTimeout(() => {
      timer = undefined;
      if (redis.status === "ready") return;
      const error = new Error(`no reply to the Redis handshake within ${timeoutMs / 1000} s`);
      lastFailure.set(redis, error);
      redis.stream?.destroy();
    }, timeoutMs);
    timer.unref();
  });
  redis.on("ready", clear);
  redis.on("close", clear);
}

/** ioredis' errors for a command that could not be sent because no connection came up. */
const UNAVAILABLE = /max retries per request|Connection is closed|Stream isn't writeable/i;

/**
 * A client whose commands fail with {@link RrqError} `redis_unavailable` naming the DSN
 * (password redacted) and the connection error, instead of ioredis' generic messages.
 */
class FailFastRedis extends Redis {
  constructor(
    private readonly shownDsn: string,
    private readonly timeoutSeconds: number,
    options: RedisOptions,
  ) {
    super(options);
  }

  override sendCommand(
    ...args: Parameters<Redis["sendCommand"]>
  ): ReturnType<Redis["sendCommand"]> {
    const command = args[0] as { reject: (error: Error) => void; failFastMapped?: boolean };
    if (!command.failFastMapped) {
      command.failFastMapped = true;
      const reject = command.reject;
      command.reject = (error: Error) => reject(this.unavailable(error));
    }
    return super.sendCommand(...args);
  }

  private unavailable(error: Error): Error {
    if (!UNAVAILABLE.test(error.message)) return error;
    return redisUnavailable(this.shownDsn, this.timeoutSeconds, lastFailure.get(this), error);
  }
}

/** The `redis_unavailable` error: which Redis, why, and how to wait longer. */
export function redisUnavailable(
  shownDsn: string,
  timeoutSeconds: number,
  reason: Error | undefined,
  cause?: unknown,
): RrqError {
  const why = reason ? `: ${reason.message}` : "";
  return new RrqError(
    "redis_unavailable",
    `cannot connect to Redis at ${shownDsn}${why} (connect timeout ${timeoutSeconds} s; ` +
      "set redis_connect_timeout_seconds in rrq.toml or RRQ_REDIS_CONNECT_TIMEOUT to change it)",
    { cause: cause ?? reason },
  );
}

/** Wraps a handler so it runs at most once per `intervalMs` (for repetitive connection errors). */
export function throttled<T>(handler: (value: T) => void, intervalMs = 5000): (value: T) => void {
  let last = -Infinity;
  return (value) => {
    const now = Date.now();
    if (now - last < intervalMs) return;
    last = now;
    handler(value);
  };
}
