import type { ResolvedConfig } from "../../config/config.js";

/** The dashboard a worker daemon serves (`dashboard_port`). */
export interface WorkerDashboard {
  /** `http://host:port/`. */
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * Starts the dashboard inside `rrq worker run` when `dashboard_port` is set (0: off, the
 * default), on `dashboard_host` with the configured auth, over a connection of its own (the
 * worker's command timeouts and fail-fast rules stay the worker's). The server's modules load
 * only when it is on. Throws ConfigError for a non-loopback host without auth, so the worker
 * refuses to start rather than expose job data.
 */
export async function startWorkerDashboard(
  config: ResolvedConfig,
): Promise<WorkerDashboard | undefined> {
  if (!config.dashboardPort) return undefined;
  const [{ startDashboardServer, checkExposure }, { RrqApi }] = await Promise.all([
    import("./server.js"),
    import("../../api/index.js"),
  ]);
  checkExposure(config.dashboardHost, { config });
  const api = RrqApi.fromConfig(config);
  try {
    const running = await startDashboardServer({
      api,
      config,
      host: config.dashboardHost,
      port: config.dashboardPort,
    });
    return {
      url: running.url,
      stop: async () => {
        await running.close();
        await api.close();
      },
    };
  } catch (error) {
    await api.close();
    throw error;
  }
}
