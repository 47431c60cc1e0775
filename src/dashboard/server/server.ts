import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError } from "../../errors.js";
import { createDashboardHandler, type DashboardHandler, type DashboardOptions } from "./handler.js";
import { hasAuth, isLoopback } from "./security.js";

/** Default port of `rrq dashboard`. */
export const DEFAULT_DASHBOARD_PORT = 8310;
/** Default bind address: loopback only. */
export const DEFAULT_DASHBOARD_BIND = "127.0.0.1";

/** Options of {@link startDashboardServer}. */
export interface DashboardServerOptions extends DashboardOptions {
  /** Bind address (default 127.0.0.1). A non-loopback one requires `auth`. */
  readonly host?: string;
  /** Port (default 8310; 0 picks a free one). */
  readonly port?: number;
}

/** A running dashboard server. */
export interface RunningDashboard {
  readonly server: Server;
  readonly handler: DashboardHandler;
  /** `http://host:port<base>/` (the address it listens on). */
  readonly url: string;
  /** Stops listening, ends live streams and open connections, closes what it opened. */
  close(): Promise<void>;
}

/**
 * Refuses a non-loopback bind address without auth: anyone on the network could otherwise
 * read job params and act on jobs. Throws ConfigError `invalid_config`.
 */
export function checkExposure(host: string, options: DashboardOptions): void {
  const auth = options.auth ?? options.config?.dashboardAuth;
  if (!isLoopback(host) && !hasAuth(auth))
    throw new ConfigError(
      "invalid_config",
      `refusing to serve the dashboard on ${host} (not loopback) without auth: set ` +
        "dashboard_auth_token or dashboard_basic_auth (or RRQ_DASHBOARD_TOKEN / " +
        "RRQ_DASHBOARD_BASIC_AUTH), or bind 127.0.0.1",
    );
}

/** Serves the dashboard on its own node:http server. */
export async function startDashboardServer(
  options: DashboardServerOptions,
): Promise<RunningDashboard> {
  const host = options.host ?? options.config?.dashboardHost ?? DEFAULT_DASHBOARD_BIND;
  const port = options.port ?? DEFAULT_DASHBOARD_PORT;
  checkExposure(host, options);
  const handler = createDashboardHandler(options);
  const server = createServer(handler);
  server.keepAliveTimeout = 5000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await handler.close();
    throw error;
  }
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const base = options.basePath ? `/${options.basePath.replace(/^\/+|\/+$/g, "")}` : "";
  return {
    server,
    handler,
    url: `http://${shownHost}:${address.port}${base}/`,
    close: async () => {
      await handler.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
