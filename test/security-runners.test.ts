/**
 * Loopback-only TCP for every runtime (security.test.ts covers the Node runner and the rest):
 * the Python and Rust runners refuse a non-loopback --tcp-socket unless RRQ_RUNNER_ALLOW_REMOTE=1,
 * and an external runner on a remote host must be listed in allowed_hosts.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import { conformanceRunners } from "../chaos/lib/paths.js";

describe("TCP runners bind loopback only unless allowed", () => {
  const others = conformanceRunners().filter((r) => r.name !== "node");

  it.each(others.map((r) => [r.name, r.cmd] as const))(
    "the %s runner refuses 0.0.0.0",
    (_name, cmd) => {
      const refused = spawnSync(cmd[0]!, [...cmd.slice(1), "--tcp-socket", "0.0.0.0:45996"], {
        encoding: "utf8",
        timeout: 20_000,
        env: { ...process.env, RRQ_RUNNER_ALLOW_REMOTE: "" },
      });
      expect(refused.status).toBe(2);
      expect(refused.stderr).toMatch(/loopback/);
    },
  );

  it("an external runner on a non-loopback host must be in allowed_hosts", () => {
    const runner = { transport: "tcp", tcp_host: "10.1.2.3", tcp_port: 9000 };
    expect(() =>
      resolveConfig({ runner_management_mode: "external", runners: { r: runner } }),
    ).toThrow(/runners\.r\.tcp_host '10\.1\.2\.3' is not loopback/);
    expect(() =>
      resolveConfig({
        runner_management_mode: "external",
        runners: { r: { ...runner, allowed_hosts: ["10.1.2.3"] } },
      }),
    ).not.toThrow();
  });
});
