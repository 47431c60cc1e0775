/**
 * `rrq dashboard` and the worker's `dashboard_port`: the command serves until SIGTERM and says
 * where, a non-loopback host without auth is refused before anything listens (exit 2), auth from
 * the environment is used and never printed; a worker serves the dashboard while it runs.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
const TOKEN = "cli-secret-token";

let redis: TestRedis;
let configPath: string;

beforeAll(async () => {
  redis = await startRedis();
  configPath = writeConfig(redis.url);
});
afterAll(async () => {
  await redis?.stop();
});

/** A port free right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts `rrq dashboard <args>` from source; resolves with its URL once it listens. */
function startCommand(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", MAIN, "--config", configPath, "dashboard", ...args],
    { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /rrq dashboard on (http:\/\/\S+\/)/.exec(out);
      if (match) resolve(match[1]!);
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  return { child, url, exited, output: () => out + err };
}

describe("rrq dashboard", () => {
  it("refuses a non-loopback host without auth (exit 2, clear message)", async () => {
    const result = await runCli(configPath, ["dashboard", "--host", "0.0.0.0", "--port", "0"]);
    expect(result.code).toBe(2);
    expect(result.err).toMatch(/refusing to serve the dashboard on 0\.0\.0\.0.*without auth/);
  });

  it("serves on loopback until SIGTERM", async () => {
    const run = startCommand(["--port", "0", "--read-only", "--base-path", "/ops"]);
    const url = await run.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ops\/$/);
    const res = await fetch(new URL("api/config", url));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ readOnly: true, basePath: "/ops" });
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
  });

  it("uses auth from the environment on an exposed host and never prints it", async () => {
    const run = startCommand(["--port", "0", "--host", "0.0.0.0"], { RRQ_DASHBOARD_TOKEN: TOKEN });
    const url = (await run.url).replace("0.0.0.0", "127.0.0.1");
    expect((await fetch(new URL("api/config", url))).status).toBe(401);
    const ok = await fetch(new URL("api/config", url), {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.status).toBe(200);
    run.child.kill("SIGTERM");
    await run.exited;
    expect(run.output()).toMatch(/auth: token/);
    expect(run.output()).not.toContain(TOKEN);
  });
});

describe("dashboard_port in a worker", () => {
  it("serves the dashboard while the worker runs, and stops with it", async () => {
    const port = await freePort();
    const worker = await new RunningWorker(testConfig(redis.url, { dashboard_port: port })).start();
    const url = worker.worker.dashboardUrl!;
    expect(url).toBe(`http://127.0.0.1:${port}/`);
    // its health record and the dashboard's first worker scan race at start: poll
    await waitFor(async () => {
      const res = await fetch(new URL("api/workers", url));
      const body = (await res.json()) as { workers: Array<{ id: string }> };
      return body.workers.some((w) => w.id === worker.worker.workerId);
    }, 10_000);
    await worker.stop();
    await expect(fetch(new URL("api/config", url))).rejects.toThrow();
  });

  it("a worker refuses to start with an exposed dashboard and no auth", async () => {
    const config = testConfig(redis.url, { dashboard_port: 1, dashboard_host: "0.0.0.0" });
    await expect(new RunningWorker(config).start()).rejects.toThrow(/without auth/);
  });
});
