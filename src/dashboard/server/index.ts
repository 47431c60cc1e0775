/**
 * The web dashboard's server side (README "Dashboard"): a request handler to mount in node:http
 * or Express, and a standalone server (`rrq dashboard`, `dashboard_port` in a worker).
 */
export { createDashboardHandler, type DashboardHandler, type DashboardOptions } from "./handler.js";
export {
  startDashboardServer,
  checkExposure,
  DEFAULT_DASHBOARD_PORT,
  type DashboardServerOptions,
  type RunningDashboard,
} from "./server.js";
export { type DashboardAuth } from "./security.js";
