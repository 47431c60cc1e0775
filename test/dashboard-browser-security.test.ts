/**
 * The dashboard's safety rules in a real headless Chromium: read-only mode hides every action
 * and the server refuses them; a non-loopback bind needs auth, and with auth a browser sees
 * nothing without the token (or basic credentials); actions need the CSRF header.
 */
import type { Browser, Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboardServer, type RunningDashboard } from "../src/dashboard/server/index.js";
import { ensureUiBuilt, launchBrowser, screenshotPath } from "./support/chromium.js";
import { seedOrchestrator, type Seeded } from "./support/dashboard-seed.js";
import { waitFor } from "./support/worker-harness.js";

let seeded: Seeded;
let browser: Browser;
const servers: RunningDashboard[] = [];

beforeAll(async () => {
  ensureUiBuilt();
  seeded = await seedOrchestrator();
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  for (const server of servers) await server.close();
  await seeded?.stop();
});

async function serve(options: Parameters<typeof startDashboardServer>[0]) {
  const running = await startDashboardServer({ config: seeded.config, port: 0, ...options });
  servers.push(running);
  return running;
}

/** The loopback URL of a server bound to 0.0.0.0. */
const loopback = (running: RunningDashboard) => running.url.replace("0.0.0.0", "127.0.0.1");

const inPage = <T>(page: Page, expression: string): Promise<T> =>
  page.evaluate(expression) as Promise<T>;

/** A POST from inside the page, as the UI sends it (CSRF header from the cookie unless told). */
const postFromPage = (page: Page, path: string, withCsrf = true) =>
  inPage<number>(
    page,
    `(async () => {
      const token = (document.cookie.match(/(?:^|; )rrq_csrf=([^;]*)/) || [])[1] || "";
      const headers = { "Content-Type": "application/json" };
      if (${withCsrf}) headers["X-CSRF-Token"] = decodeURIComponent(token);
      const res = await fetch(${JSON.stringify(path)}, { method: "POST", headers, body: "{}" });
      return res.status;
    })()`,
  );

async function visit(page: Page, url: string): Promise<void> {
  await page.goto("about:blank");
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#main[data-rendered]", { timeout: 15_000 });
}

const actionButtons = (page: Page) =>
  inPage<string[]>(
    page,
    `[...document.querySelectorAll("button[data-action]")].map((b) => b.dataset.action)`,
  );

describe("dashboard security in Chromium", { timeout: 120_000 }, () => {
  it("read-only mode shows no action and the server refuses them", async () => {
    const running = await serve({ readOnly: true });
    const page = await browser.newPage();
    const { jobs } = seeded;
    for (const hash of [
      `#/jobs/${jobs.pending}`,
      `#/jobs/${jobs.failed}`,
      `#/jobs/${jobs.completed}`,
      "#/dlq",
      "#/workers",
      "#/cron",
    ]) {
      await visit(page, `${running.url}${hash}`);
      expect(await actionButtons(page), hash).toEqual([]);
      expect(await inPage<string>(page, `document.getElementById("mode").textContent`)).toBe(
        "read-only",
      );
    }
    await visit(page, `${running.url}#/jobs/${jobs.pending}`);
    await page.screenshot({ path: screenshotPath("dashboard-read-only"), fullPage: true });
    expect(await postFromPage(page, `api/jobs/${jobs.pending}/cancel`)).toBe(403);
    expect(await seeded.redis.client.hget(`rrq:job:${jobs.pending}`, "status")).toBe("PENDING");
    await page.close();
  });

  it("actions need the CSRF header", async () => {
    const running = await serve({});
    const page = await browser.newPage();
    await visit(page, `${running.url}#/jobs/${seeded.jobs.pending}`);
    expect(await actionButtons(page)).toContain("cancel");
    expect(await postFromPage(page, `api/jobs/${seeded.jobs.pending}/cancel`, false)).toBe(403);
    expect(await seeded.redis.client.hget(`rrq:job:${seeded.jobs.pending}`, "status")).toBe(
      "PENDING",
    );
    await page.close();
  });

  it("works under a base path, and quiets and resumes a worker from the UI", async () => {
    const running = await serve({ basePath: "/ops/rrq" });
    expect(running.url).toMatch(/\/ops\/rrq\/$/);
    const page = await browser.newPage();
    await visit(page, `${running.url}#/workers`);
    const workerId = seeded.worker.worker.workerId;
    expect(await inPage<string>(page, `document.getElementById("main").textContent`)).toContain(
      workerId,
    );
    await page.click('button[data-action="quiet"]');
    await page.click('.overlay button[data-confirm="yes"]');
    // the page reloads its data after the action: the button turns into Resume
    await page.waitForSelector('button[data-action="resume"]', { timeout: 10_000 });
    expect(await seeded.redis.client.exists(`rrq:quiet:worker:${workerId}`)).toBe(1);
    await waitFor(() => seeded.worker.worker.quiet, 10_000, "the worker to go quiet");
    await page.click('button[data-action="resume"]');
    await page.waitForSelector('button[data-action="quiet"]', { timeout: 10_000 });
    expect(await seeded.redis.client.exists(`rrq:quiet:worker:${workerId}`)).toBe(0);
    await waitFor(() => !seeded.worker.worker.quiet, 10_000, "the worker to resume");
    await page.close();
  });

  it("a non-loopback host without auth does not start", async () => {
    await expect(serve({ host: "0.0.0.0" })).rejects.toThrow(/not loopback/);
  });

  it("with a token, a browser sees nothing without it and everything with it", async () => {
    const token = "dashboard-test-token-1f9c";
    const running = await serve({ host: "0.0.0.0", auth: { token } });
    const base = loopback(running);
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    expect((await page.goto(base))?.status()).toBe(401);
    expect((await page.goto(`${base}api/overview`))?.status()).toBe(401);
    expect((await page.goto(`${base}?token=wrong-token`))?.status()).toBe(401);
    await visit(page, `${base}?token=${token}#/`);
    expect(page.url()).not.toContain(token);
    expect(await inPage<string>(page, `document.getElementById("main").dataset.page`)).toBe(
      "overview",
    );
    // the session cookie carries on: the API answers and actions work
    await visit(page, `${base}#/workers`);
    expect(await inPage<string>(page, `document.getElementById("main").textContent`)).toContain(
      seeded.worker.worker.workerId,
    );
    await context.close();
    const fresh = await browser.createBrowserContext();
    const other = await fresh.newPage();
    expect((await other.goto(`${base}api/overview`))?.status()).toBe(401);
    await fresh.close();
  });

  it("with basic auth, the browser's credentials open it", async () => {
    const basic = { user: "ops", password: "p@ss word" };
    const running = await serve({ host: "0.0.0.0", auth: { basic } });
    const base = loopback(running);
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    // (headless Chromium turns an unanswered basic challenge into a network error: ask Node)
    const challenge = await fetch(base);
    expect(challenge.status).toBe(401);
    expect(challenge.headers.get("www-authenticate")).toMatch(/^Basic /);
    await page.authenticate({ username: basic.user, password: basic.password });
    await visit(page, `${base}#/dlq`);
    expect(await inPage<string>(page, `document.getElementById("main").textContent`)).toContain(
      "fail_permanently",
    );
    await context.close();
  });
});
