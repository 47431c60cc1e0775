import { Redis, type RedisOptions } from "ioredis";
import { redactDsn } from "../errors.js";

/** Options for {@link connectRedis}. */
export interface ConnectOptions {
  /** Connection name shown by CLIENT LIST. */
  name?: string;
  /** Queue commands while disconnected (default true); the subscriber turns it off. */
  offlineQueue?: boolean;
  /** Batch commands issued in the same tick into one round trip. */
  autoPipelining?: boolean;
}

/**
 * Parses a Redis DSN into ioredis options: `redis://`, `rediss://` (TLS) with user, password
 * and db; `unix:///path?db=N` and `redis+unix:///path?db=N` for Unix sockets.
 */
export function redisOptionsFromDsn(dsn: string): RedisOptions {
  const url = new URL(dsn);
  const db = Number(url.searchParams.get("db") ?? (url.pathname.replace(/^\//, "") || 0));
  const auth: RedisOptions = {};
  if (url.username) auth.username = decodeURIComponent(url.username);
  if (url.password) auth.password = decodeURIComponent(url.password);
  switch (url.protocol) {
    case "unix:":
    case "redis+unix:":
      return {
        ...auth,
        path: decodeURIComponent(url.pathname),
        db: Number(url.searchParams.get("db") ?? 0),
      };
    case "redis:":
    case "rediss:":
      return {
        ...auth,
        host: url.hostname.replace(/^\[|\]$/g, "") || "localhost",
        port: url.port ? Number(url.port) : 6379,
        db: Number.isInteger(db) ? db : 0,
        ...(url.protocol === "rediss:" ? { tls: { servername: url.hostname } } : {}),
      };
    default:
      throw new Error(`unsupported Redis DSN scheme '${url.protocol}' in ${redactDsn(dsn)}`);
  }
}

/**
 * Opens a Redis connection that reconnects with capped exponential backoff and never gives
 * up on a command because of a reconnect (commands wait in the offline queue).
 */
export function connectRedis(dsn: string, options: ConnectOptions = {}): Redis {
  return new Redis({
    ...redisOptionsFromDsn(dsn),
    connectionName: options.name,
    lazyConnect: false,
    enableOfflineQueue: options.offlineQueue ?? true,
    enableAutoPipelining: options.autoPipelining ?? false,
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    reconnectOnError: (error) => /READONLY|LOADING/.test(error.message),
  });
}
