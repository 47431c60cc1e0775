import type { Command } from "commander";
import { RrqApi } from "../../api/index.js";
import { ExitCode, intArgument, loadCli, say, type CliContext } from "./shared.js";

interface DashboardFlags {
  host?: string;
  port?: number;
  readOnly?: boolean;
  basePath?: string;
}

/**
 * `rrq dashboard`: serves the web dashboard until SIGINT/SIGTERM. Host, auth and the trace link
 * come from rrq.toml and the environment (README "Dashboard"); a non-loopback host without auth
 * is refused before anything listens.
 */
async function dashboard(ctx: CliContext, flags: DashboardFlags): Promise<number> {
  const { config, source } = loadCli(ctx);
  const { startDashboardServer, DEFAULT_DASHBOARD_PORT, checkExposure } =
    await import("../../dashboard/server/index.js");
  const host = flags.host ?? config.dashboardHost;
  checkExposure(host, { config });
  const api = RrqApi.fromConfig(config);
  let running;
  try {
    running = await startDashboardServer({
      api,
      config,
      host,
      port: flags.port ?? (config.dashboardPort || DEFAULT_DASHBOARD_PORT),
      readOnly: flags.readOnly ?? false,
      ...(flags.basePath ? { basePath: flags.basePath } : {}),
    });
  } catch (error) {
    await api.close();
    throw error;
  }
  say(ctx, `Loaded RRQ settings from ${source.kind} (${source.path}).`);
  const auth = config.dashboardAuth;
  const authText = auth
    ? [auth.token ? "token" : "", auth.basic ? "basic auth" : ""].filter(Boolean).join(" or ")
    : "none (loopback only)";
  say(
    ctx,
    `rrq dashboard on ${running.url}${flags.readOnly ? " (read-only)" : ""}; auth: ${authText}`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await running.close();
  await api.close();
  return ExitCode.ok;
}

/** `rrq dashboard`. */
export function registerDashboard(program: Command, ctx: CliContext): void {
  program
    .command("dashboard")
    .description("serve the web dashboard (queues, jobs, DLQ, workers, cron; actions)")
    .option("--host <host>", "bind address (default: dashboard_host, else 127.0.0.1)")
    .option("--port <port>", "port (default: dashboard_port, else 8310)", intArgument("--port"))
    .option("--read-only", "show everything, allow no action")
    .option("--base-path <path>", "serve under this path prefix, e.g. /rrq")
    .action((flags: DashboardFlags) => ctx.run(() => dashboard(ctx, flags)));
}
