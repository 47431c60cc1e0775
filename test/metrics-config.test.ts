import { describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import { envOverrides } from "../src/config/load.js";
import { ConfigError } from "../src/errors.js";

describe("observability config keys", () => {
  it("defaults: metrics and dashboard off, loopback host, no auth", () => {
    const config = resolveConfig({});
    expect(config.metricsPort).toBe(0);
    expect(config.dashboardPort).toBe(0);
    expect(config.dashboardHost).toBe("127.0.0.1");
    expect(config.dashboardAuth).toBeUndefined();
    expect(config.dashboardTraceUrl).toBeUndefined();
  });

  it("reads the file keys", () => {
    const config = resolveConfig({
      metrics_port: 9464,
      dashboard_port: 8310,
      dashboard_host: "0.0.0.0",
      dashboard_auth_token: "s3cret",
      dashboard_basic_auth: "admin:pa:ss",
      dashboard_trace_url: "https://tempo/trace/{trace_id}",
    });
    expect(config.metricsPort).toBe(9464);
    expect(config.dashboardPort).toBe(8310);
    expect(config.dashboardHost).toBe("0.0.0.0");
    expect(config.dashboardAuth).toEqual({
      token: "s3cret",
      basic: { user: "admin", password: "pa:ss" },
    });
    expect(config.dashboardTraceUrl).toBe("https://tempo/trace/{trace_id}");
  });

  it("the environment overrides the file's secrets", () => {
    const overrides = envOverrides({
      RRQ_DASHBOARD_TOKEN: "from-env",
      RRQ_DASHBOARD_BASIC_AUTH: "u:p",
    });
    const config = resolveConfig({ dashboard_auth_token: "from-file" }, overrides);
    expect(config.dashboardAuth).toEqual({
      token: "from-env",
      basic: { user: "u", password: "p" },
    });
  });

  it("reports bad values without echoing secrets", () => {
    let error: unknown;
    try {
      resolveConfig({
        metrics_port: 70000,
        dashboard_basic_auth: "no-colon-secret",
        dashboard_trace_url: "https://tempo/",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain("metrics_port");
    expect(message).toContain("dashboard_basic_auth");
    expect(message).toContain("dashboard_trace_url");
    expect(message).not.toContain("no-colon-secret");
  });
});
