/**
 * Flow control in the dashboard, in a real headless Chromium against a real Redis: the queues
 * page's Pause button pauses the queue in Redis (as `rrq queue pause` does) and the row shows the
 * paused badge; Resume lifts it.
 */
import type { Browser, Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboardServer, type RunningDashboard } from "../src/dashboard/server/index.js";
import { Producer } from "../src/producer/producer.js";
import {
  ensureUiBuilt,
  launchBrowser,
  recordPageProblems,
  screenshotPath,
} from "./support/chromium.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { testConfig, waitFor } from "./support/worker-harness.js";

let redis: TestRedis;
let producer: Producer;
let dashboard: RunningDashboard;
let browser: Browser;
let page: Page;
const problems: string[] = [];

beforeAll(async () => {
  ensureUiBuilt();
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
  // no worker: the job waits in its queue, and the queue is listed
  await producer.enqueue("work", {}, { queueName: "mail" });
  dashboard = await startDashboardServer({ config: testConfig(redis.url), port: 0 });
  browser = await launchBrowser();
  page = await browser.newPage();
  recordPageProblems(page, problems);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await dashboard?.close();
  await producer?.close();
  await redis?.stop();
});

/** The state cell of the `mail` queue's row. */
const MAIL = '.queue-state[data-queue="rrq:queue:mail"]';

describe("queue pause from the dashboard", { timeout: 120_000 }, () => {
  it("Pause shows the paused badge and pauses the queue in Redis; Resume lifts it", async () => {
    await page.goto(`${dashboard.url}#/queues`, { waitUntil: "domcontentloaded" });
    await page.waitForSelector(`${MAIL} button[data-action="pause-queue"]`, { timeout: 15_000 });
    expect(await page.$(`${MAIL} [data-field="paused"]`)).toBeNull();

    await page.click(`${MAIL} button[data-action="pause-queue"]`);
    await page.waitForSelector('.overlay button[data-confirm="yes"]');
    await page.click('.overlay button[data-confirm="yes"]');
    await page.waitForSelector(`${MAIL} [data-field="paused"]`, { timeout: 10_000 });
    // source text: the tests' tsconfig has no DOM types
    const badge = `document.querySelector('${MAIL} [data-field="paused"]').textContent`;
    expect(await page.evaluate(badge)).toBe("paused");
    const stored = JSON.parse((await redis.client.get("rrq:paused:mail")) ?? "null") as {
      since: number;
      reason?: string;
    } | null;
    expect(stored?.reason).toBe("paused from the dashboard");
    await page.screenshot({ path: screenshotPath("dashboard-queue-paused"), fullPage: true });

    await page.click(`${MAIL} button[data-action="resume-queue"]`);
    await page.waitForSelector(`${MAIL} button[data-action="pause-queue"]`, { timeout: 10_000 });
    await waitFor(
      async () => (await redis.client.exists("rrq:paused:mail")) === 0,
      10_000,
      "resume from the UI",
    );
    expect(await page.$(`${MAIL} [data-field="paused"]`)).toBeNull();
  });

  it("no script error on the page", () => {
    expect(problems).toEqual([]);
  });
});
