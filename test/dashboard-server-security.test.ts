/**
 * The dashboard server's security rules: loopback by default and refusal of an exposed host
 * without auth; token (header, `?token=` once then a cookie) and basic auth; CSRF double-submit
 * and same-origin checks on actions; read-only mode; the CSP and other headers; static files
 * confined to the UI directory; no secrets in answers; mounting under a base path and in an
 * Express-style app.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsFrom } from "../src/api/settings.js";
import { resolveConfig } from "../src/config/config.js";
import { isLoopback, safeEqual } from "../src/dashboard/server/security.js";
import {
  createDashboardHandler,
  RrqApi,
  startDashboardServer,
  type DashboardHandler,
  type RunningDashboard,
} from "../src/index.js";
import { Producer } from "../src/producer/producer.js";
import { DashboardClient, fakeUiDir } from "./support/dashboard-client.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

interface ErrorJson {
  error: { code: string; message: string };
}

const TOKEN = "s3cret-token-value";
const PASSWORD = "pa:ss-word";

let redis: TestRedis;
let api: RrqApi;
let uiDir: string;
let jobId: string;
const running: RunningDashboard[] = [];

const serve = async (options: Parameters<typeof startDashboardServer>[0]) => {
  const dashboard = await startDashboardServer({ api, port: 0, uiDir, ...options });
  running.push(dashboard);
  return dashboard;
};

beforeAll(async () => {
  redis = await startRedis();
  const config = resolveConfig({ redis_dsn: redis.url });
  api = new RrqApi(redis.client.duplicate(), apiSettingsFrom(config), true);
  uiDir = fakeUiDir();
  const producer = new Producer({ redisDsn: redis.url });
  jobId = await producer.enqueue("echo", { x: 1 }, { queueName: "q" });
  await producer.close();
});

afterAll(async () => {
  for (const d of running) await d.close();
  await api?.close();
  await redis?.stop();
});

describe("exposure", () => {
  it("binds loopback by default", async () => {
    const dashboard = await serve({});
    expect(dashboard.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it("refuses a non-loopback host without auth, and starts with it", async () => {
    await expect(serve({ host: "0.0.0.0" })).rejects.toThrow(/not loopback\) without auth/);
    const withAuth = await serve({ host: "0.0.0.0", auth: { token: TOKEN } });
    expect(withAuth.url).toMatch(/:\d+\/$/);
  });

  it("tells loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
      expect(isLoopback(h)).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com"])
      expect(isLoopback(h)).toBe(false);
    expect(safeEqual("a", "a")).toBe(true);
    expect(safeEqual("a", "ab")).toBe(false);
  });
});

describe("authentication", () => {
  let base: string;
  beforeAll(async () => {
    base = (await serve({ auth: { token: TOKEN, basic: { user: "ops", password: PASSWORD } } }))
      .url;
  });

  it("answers 401 without credentials, with a basic-auth challenge", async () => {
    const res = await new DashboardClient(base).raw("api/overview");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
    expect(await res.text()).not.toContain(TOKEN);
    expect((await new DashboardClient(base).raw("")).status).toBe(401);
  });

  it("accepts a bearer token, and refuses a wrong one", async () => {
    const ok = new DashboardClient(base, { authorization: `Bearer ${TOKEN}` });
    expect((await ok.get("api/queues")).status).toBe(200);
    const wrong = new DashboardClient(base, { authorization: `Bearer ${TOKEN}x` });
    expect((await wrong.raw("api/queues")).status).toBe(401);
  });

  it("?token= once sets a session cookie (not the token) and redirects without it", async () => {
    const browser = new DashboardClient(base);
    const res = await browser.raw(`?token=${TOKEN}&x=1`);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/?x=1");
    const session = browser.cookies.get("rrq_session");
    expect(session).toBeDefined();
    expect(session).not.toContain(TOKEN);
    expect(res.headers.getSetCookie().join(";")).toMatch(/HttpOnly/);
    expect((await browser.get("api/overview")).status).toBe(200);
    expect((await new DashboardClient(base).raw(`?token=wrong`)).status).toBe(401);
    // no open redirect through a protocol-relative path
    const sneaky = await fetch(`${base}/evil.example/x?token=${TOKEN}`, { redirect: "manual" });
    expect(sneaky.headers.get("location")).toBe("/evil.example/x");
  });

  it("accepts basic auth (a password with ':') and refuses a wrong password", async () => {
    const basic = (user: string, password: string) =>
      `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    const ok = new DashboardClient(base, { authorization: basic("ops", PASSWORD) });
    expect((await ok.get("api/workers")).status).toBe(200);
    const bad = new DashboardClient(base, { authorization: basic("ops", "nope") });
    expect((await bad.raw("api/workers")).status).toBe(401);
  });

  it("actions still need the CSRF token when authenticated", async () => {
    const ok = new DashboardClient(base, { authorization: `Bearer ${TOKEN}` });
    const res = await ok.raw(`api/jobs/${jobId}/cancel`, { method: "POST" });
    expect(res.status).toBe(403);
  });
});

describe("CSRF and same-origin checks on actions", () => {
  let base: string;
  beforeAll(async () => {
    base = (await serve({})).url;
  });

  it("sets a readable SameSite=Strict CSRF cookie on page load", async () => {
    const browser = new DashboardClient(base);
    const res = await browser.raw("");
    expect(res.status).toBe(200);
    const line = res.headers.getSetCookie().find((c) => c.startsWith("rrq_csrf="))!;
    expect(line).toMatch(/SameSite=Strict/);
    expect(line).not.toMatch(/HttpOnly/);
  });

  it("refuses a POST without the header, with a wrong one, or from another origin", async () => {
    const browser = new DashboardClient(base);
    await browser.raw("api/config");
    const path = `api/jobs/${jobId}/reschedule`;
    const body = JSON.stringify({ at: Date.now() + 60_000 });
    const noHeader = await browser.raw(path, { method: "POST", body });
    expect(noHeader.status).toBe(403);
    expect(((await noHeader.json()) as ErrorJson).error.code).toBe("csrf");
    const wrong = await browser.raw(path, {
      method: "POST",
      body,
      headers: { "x-csrf-token": "forged", "content-type": "application/json" },
    });
    expect(wrong.status).toBe(403);
    const crossSite = await browser.post(path, { at: 1 }, { origin: "https://evil.example" });
    expect(crossSite.status).toBe(403);
    const crossReferer = await browser.post(path, { at: 1 }, { referer: "https://evil.example/x" });
    expect(crossReferer.status).toBe(403);
    const before = await redis.client.zscore("rrq:queue:q", jobId);
    expect(Number(before)).toBeLessThan(Date.now() + 1000);
    // pausing a queue is an action like the others
    const pause = "api/queues/q/pause";
    expect((await browser.raw(pause, { method: "POST" })).status).toBe(403);
    expect((await browser.post(pause, {}, { origin: "https://evil.example" })).status).toBe(403);
    expect(await redis.client.exists("rrq:paused:q")).toBe(0);
  });

  it("accepts a same-origin POST with the matching token", async () => {
    const browser = new DashboardClient(base);
    const at = Date.now() + 60_000;
    const res = await browser.post(
      `api/jobs/${jobId}/reschedule`,
      { at },
      { origin: base.slice(0, -1) },
    );
    expect(res.status).toBe(200);
    expect(Number(await redis.client.zscore("rrq:queue:q", jobId))).toBe(at);
  });

  it("refuses other methods and non-JSON bodies", async () => {
    const browser = new DashboardClient(base);
    expect((await browser.raw("api/queues", { method: "DELETE" })).status).toBe(405);
    await browser.raw("api/config");
    const res = await browser.raw(`api/jobs/${jobId}/reschedule`, {
      method: "POST",
      body: "at=1",
      headers: { "x-csrf-token": browser.cookies.get("rrq_csrf")!, "content-type": "text/plain" },
    });
    expect(res.status).toBe(415);
  });
});

describe("read-only mode", () => {
  it("says so in config and refuses every action with 403", async () => {
    const browser = new DashboardClient((await serve({ readOnly: true })).url);
    expect((await browser.get("api/config")).body.readOnly).toBe(true);
    for (const path of [
      `api/jobs/${jobId}/cancel`,
      "api/dlq/purge",
      "api/workers/w/quiet",
      "api/queues/q/pause",
      "api/queues/q/resume",
    ]) {
      const res = await browser.post<ErrorJson>(path, { confirm: true });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe("read_only");
    }
    expect(await redis.client.hget(`rrq:job:${jobId}`, "status")).toBe("PENDING");
    expect(await redis.client.exists("rrq:paused:q")).toBe(0);
  });
});

describe("headers, static files and secrets", () => {
  let browser: DashboardClient;
  beforeAll(async () => {
    browser = new DashboardClient((await serve({})).url);
  });

  it("every answer carries the CSP and the other security headers", async () => {
    for (const path of ["", "app.js", "api/overview", "api/jobs/nope", "missing.js"]) {
      const res = await browser.raw(path);
      expect(res.headers.get("content-security-policy")).toBe(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
          "connect-src 'self'; frame-ancestors 'none'",
      );
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("referrer-policy")).toBe("same-origin");
    }
  });

  it("serves the UI's files with their types and nothing outside the directory", async () => {
    const index = await browser.raw("");
    expect(index.headers.get("content-type")).toMatch(/^text\/html/);
    expect((await browser.raw("app.js")).headers.get("content-type")).toMatch(/javascript/);
    expect((await browser.raw("style.css")).headers.get("content-type")).toMatch(/^text\/css/);
    for (const path of [
      ".secret",
      "%2e%2e/package.json",
      "..%2fpackage.json",
      "x.ts",
      "a/../../b.js",
    ])
      expect((await browser.raw(path)).status).toBe(404);
  });

  it("no answer holds the Redis DSN", async () => {
    const secretApi = new RrqApi(
      redis.client.duplicate(),
      { ...api.settings, redisDsn: "redis://:hunter2@db.internal:6379/0" },
      true,
    );
    const dashboard = await serve({ api: secretApi });
    const client = new DashboardClient(dashboard.url);
    for (const path of [
      "api/config",
      "api/overview",
      "api/queues",
      "api/workers",
      "api/cron",
      "api/dlq",
      `api/jobs/${jobId}`,
    ]) {
      const text = await (await client.raw(path)).text();
      expect(text).not.toContain("hunter2");
      expect(text).not.toContain("db.internal");
    }
    await dashboard.close();
    await secretApi.close();
  });

  it("Redis down: 503 redis_unavailable, nothing about the server in the answer", async () => {
    const down = RrqApi.fromConfig(
      resolveConfig({
        redis_dsn: "redis://:hunter2@127.0.0.1:1/0",
        redis_connect_timeout_seconds: 1,
      }),
    );
    const errors: unknown[] = [];
    const dashboard = await serve({ api: down, onError: (error) => errors.push(error) });
    const res = await new DashboardClient(dashboard.url).raw("api/overview");
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({
      error: { code: "redis_unavailable", message: "Redis is unavailable" },
    });
    expect(text).not.toContain("hunter2");
    expect(errors.length).toBeGreaterThan(0);
    await dashboard.close();
    await down.close();
  });

  it("a missing UI build is a clear 503, the API still answers", async () => {
    const client = new DashboardClient((await serve({ uiDir: "/nonexistent/ui" })).url);
    const res = await client.raw("");
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/npm run build/);
    expect((await client.get("api/config")).status).toBe(200);
  });
});

describe("mounting", () => {
  let server: Server;
  let handler: DashboardHandler;
  let origin: string;
  afterAll(async () => {
    await handler?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  it("answers under basePath in node:http and passes other paths to next()", async () => {
    handler = createDashboardHandler({ api, basePath: "/rrq/", uiDir });
    const express = createDashboardHandler({ api, uiDir });
    server = createServer((req, res) => {
      if (req.url?.startsWith("/app/")) {
        // an Express-style mount: the prefix stripped, baseUrl keeping it
        const mountedReq = Object.assign(req, { baseUrl: "/app/rrq", originalUrl: req.url });
        mountedReq.url = req.url.slice("/app/rrq".length) || "/";
        return express(mountedReq, res);
      }
      handler(req, res, () => {
        res.statusCode = 418;
        res.end("next");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = new DashboardClient(`${origin}/rrq/`);
    const first = await client.raw("");
    expect(first.status).toBe(200);
    expect(first.headers.getSetCookie().join(";")).toMatch(/Path=\/rrq\//);
    const config = await client.get("api/config");
    expect(config.body.basePath).toBe("/rrq");
    const bare = await fetch(`${origin}/rrq`, { redirect: "manual" });
    expect(bare.status).toBe(308);
    expect(bare.headers.get("location")).toBe("/rrq/");
    const other = await fetch(`${origin}/elsewhere`);
    expect(other.status).toBe(418);
  });

  it("works behind an Express-style mount (baseUrl set, prefix stripped)", async () => {
    const client = new DashboardClient(`${origin}/app/rrq/`);
    expect((await client.get("api/queues")).status).toBe(200);
    const bare = await fetch(`${origin}/app/rrq`, { redirect: "manual" });
    expect(bare.status).toBe(308);
    expect(bare.headers.get("location")).toBe("/app/rrq/");
  });
});
