/**
 * The dashboard in a real headless Chromium (Debian's package, driven by puppeteer-core) against
 * a real orchestrator with jobs in every state: every page renders (screenshots go to
 * test-results/), actions from the UI change Redis as the CLI would, hostile data stays text,
 * live updates arrive without a reload.
 */
import type { Browser, Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboardServer, type RunningDashboard } from "../src/dashboard/server/index.js";
import {
  ensureUiBuilt,
  launchBrowser,
  recordPageProblems,
  screenshotPath,
} from "./support/chromium.js";
import { HOSTILE, seedOrchestrator, TRACE_ID, type Seeded } from "./support/dashboard-seed.js";
import { waitFor } from "./support/worker-harness.js";

let seeded: Seeded;
let dashboard: RunningDashboard;
let browser: Browser;
let page: Page;
const dialogs: string[] = [];
const problems: string[] = [];

beforeAll(async () => {
  ensureUiBuilt();
  seeded = await seedOrchestrator();
  dashboard = await startDashboardServer({
    config: seeded.config,
    port: 0,
    liveIntervalMs: 300,
    traceUrl: "https://tempo.example/trace/{trace_id}",
  });
  browser = await launchBrowser();
  page = await browser.newPage();
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  recordPageProblems(page, problems);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await dashboard?.close();
  await seeded?.stop();
});

/** Opens a route and waits until its page has rendered. */
async function visit(hash: string): Promise<void> {
  await page.goto("about:blank");
  await page.goto(`${dashboard.url}${hash}`, { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#main[data-rendered]", { timeout: 15_000 });
}

/**
 * Runs an expression in the page. Written as source text: the tests' tsconfig has no DOM types
 * (the browser code is type-checked in src/dashboard/ui/tsconfig.json).
 */
const inPage = <T>(expression: string): Promise<T> => page.evaluate(expression) as Promise<T>;

const mainText = () => inPage<string>(`document.getElementById("main").textContent`);

/** Elements that would exist only if hostile markup had been parsed as HTML. */
const injected = () =>
  inPage<string[]>(`(() => {
    const found = [];
    for (const el of document.querySelectorAll("img, iframe, object, embed, script"))
      if (!(el.tagName === "SCRIPT" && el.src.endsWith("/app.js"))) found.push(el.outerHTML);
    for (const el of document.querySelectorAll("*"))
      for (const attr of el.getAttributeNames())
        if (attr.startsWith("on")) found.push(el.tagName + " " + attr);
    return found;
  })()`);

/** The depth cell of the `parked` queue's row on the overview. */
const PARKED_DEPTH = `(document.querySelector('#main a[href="#/queues/parked"]')
  ?.closest("tr")?.children[1]?.textContent ?? "")`;

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: screenshotPath(`dashboard-${name}`), fullPage: true });
}

// generous per-test limits: each test drives a browser through several pages on a shared CI box
describe("dashboard pages in Chromium", { timeout: 120_000 }, () => {
  it("overview: totals, charts, queue depths", async () => {
    await visit("#/");
    const text = await mainText();
    expect(text).toContain("processed");
    expect(text).toContain("Per minute");
    expect(text).toContain("parked");
    expect(await page.$$("#main svg.chart")).toHaveLength(3);
    expect(await inPage<string>(`document.getElementById("main").dataset.page`)).toBe("overview");
    await shot("overview");
  });

  it("overview: live updates arrive without a reload", async () => {
    await visit("#/");
    await page.waitForFunction(`document.getElementById("live").textContent === "live"`);
    const before = await inPage<string>(PARKED_DEPTH);
    await inPage("window.marker = 1");
    await seeded.producer.enqueue("echo", {}, { queueName: "parked" });
    await page.waitForFunction(`${PARKED_DEPTH} !== ${JSON.stringify(before)}`, {
      timeout: 10_000,
    });
    // same document: the page was not reloaded
    expect(await inPage<number>("window.marker")).toBe(1);
  });

  it("queues and one queue's ready and deferred jobs", async () => {
    await visit("#/queues");
    expect(await mainText()).toContain("work");
    await shot("queues");
    await visit("#/queues/parked");
    expect(await mainText()).toContain(seeded.jobs.pending);
    await shot("queue");
    await visit("#/queues/parked?state=deferred");
    expect(await mainText()).toContain(seeded.jobs.deferred);
  });

  it("job search by function and status, and by id", async () => {
    await visit("#/jobs");
    expect(await mainText()).toContain("Recent jobs");
    expect(await mainText()).toContain(seeded.jobs.failed);
    await visit("#/jobs?function=echo&status=COMPLETED");
    expect(await mainText()).toContain(seeded.jobs.completed);
    await shot("jobs");
    await visit(`#/jobs?id=${seeded.jobs.failed}`);
    expect(await mainText()).toContain(seeded.jobs.failed);
  });

  it("job detail in every state", async () => {
    const { jobs } = seeded;
    for (const [state, id] of [
      ["COMPLETED", jobs.completed],
      ["FAILED", jobs.failed],
      ["ACTIVE", jobs.active],
      ["RETRYING", jobs.retrying],
      ["PENDING", jobs.pending],
      ["CANCELLED", jobs.cancelled],
    ] as const) {
      await visit(`#/jobs/${id}`);
      const text = await mainText();
      expect(text, state).toContain(state);
      expect(text, state).toContain("Timeline");
      await shot(`job-${state.toLowerCase()}`);
    }
    await visit(`#/jobs/${jobs.completed}`);
    const traceLink = await inPage<string>(
      `document.querySelector('#main a[href*="${TRACE_ID}"]').href`,
    );
    expect(traceLink).toBe(`https://tempo.example/trace/${TRACE_ID}`);
    await visit(`#/jobs/${jobs.active}`);
    expect(await mainText()).toMatch(/held by .* until/);
  });

  it("DLQ grouped by error, function and queue", async () => {
    await visit("#/dlq");
    const text = await mainText();
    expect(text).toContain("fail_permanently");
    expect(text).toContain(seeded.jobs.failed);
    await shot("dlq");
  });

  it("workers with their health record, and cron entries", async () => {
    await visit("#/workers");
    const workers = await mainText();
    expect(workers).toContain(seeded.worker.worker.workerId);
    // the runner pool from the health record: its language and its process
    expect(workers).toContain("Runners");
    expect(workers).toMatch(/node\s.*1 of 8/);
    expect(workers).toMatch(/#0 ready, pid \d+/);
    await shot("workers");
    await visit("#/cron");
    const text = await mainText();
    expect(text).toContain("0 0 3 * * *");
    expect(text).toContain("echo");
    await shot("cron");
  });

  it("hostile params, names and errors render as text: no element, no dialog", async () => {
    const { jobs } = seeded;
    const routes = [
      "#/",
      "#/queues",
      `#/queues/${encodeURIComponent(HOSTILE.queue)}`,
      `#/jobs?function=${encodeURIComponent(HOSTILE.fn)}`,
      `#/jobs/${jobs.hostile}`,
      `#/jobs/${jobs.failed}`,
      `#/jobs/${jobs.completed}`,
      `#/jobs/${jobs.retrying}`,
      "#/dlq",
      `#/dlq?error=${encodeURIComponent(HOSTILE.error)}`,
    ];
    const seen: string[] = [];
    for (const route of routes) {
      await visit(route);
      expect(await injected(), route).toEqual([]);
      seen.push(await mainText());
    }
    const all = seen.join("\n");
    for (const text of [
      HOSTILE.fn,
      HOSTILE.error,
      HOSTILE.traceback,
      "onerror=\\\"alert('param')\\\"",
    ])
      expect(all).toContain(text);
    await visit(`#/jobs/${jobs.hostile}`);
    await shot("xss");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(dialogs).toEqual([]);
  });

  it("cancelling a waiting job from its page cancels it in Redis", async () => {
    const id = seeded.jobs.toCancel;
    await visit(`#/jobs/${id}`);
    await page.click('button[data-action="cancel"]');
    await page.waitForSelector('.overlay button[data-confirm="yes"]');
    await page.click('.overlay button[data-confirm="yes"]');
    await waitFor(
      async () => (await seeded.redis.client.hget(`rrq:job:${id}`, "status")) === "CANCELLED",
      10_000,
      "cancel from the UI",
    );
    expect(await seeded.redis.client.zscore("rrq:queue:parked", id)).toBeNull();
  });

  it("requeueing a DLQ entry from the DLQ page takes it out of the DLQ", async () => {
    const id = seeded.jobs.failedForRequeue;
    const dlqKey = seeded.api.dlq.key();
    expect(await seeded.redis.client.lrange(dlqKey, 0, -1)).toContain(id);
    await visit("#/dlq");
    await inPage(`document.querySelector('#main a[href="#/jobs/${id}"]')
      .closest("tr").querySelector('button[data-action="requeue"]').click()`);
    const hash = await waitFor(
      async () => {
        const h = await seeded.redis.client.hgetall(`rrq:job:${id}`);
        return h.dlq_requeued_at ? h : undefined;
      },
      10_000,
      "requeue from the UI",
    );
    expect(hash.dlq_requeued_at).toBeTruthy();
  });

  it("reschedule, replay and delete from a job's page", async () => {
    const { jobs } = seeded;
    const client = seeded.redis.client;
    // reschedule a deferred job to a given UTC time
    await visit(`#/jobs/${jobs.deferred}`);
    await inPage(`document.querySelector('input[name="at"]').value = "2030-01-02T03:04"`);
    await page.click('button[data-action="reschedule"]');
    await waitFor(
      async () =>
        Number(await client.zscore("rrq:queue:parked", jobs.deferred)) ===
        Date.parse("2030-01-02T03:04:00Z"),
      10_000,
      "reschedule from the UI",
    );
    // replay a completed job: a new job with the same function and params, shown next
    await visit(`#/jobs/${jobs.completed}`);
    await page.click('button[data-action="replay"]');
    await page.click('.overlay button[data-confirm="yes"]');
    await page.waitForFunction(
      `location.hash.startsWith("#/jobs/") && !location.hash.includes(${JSON.stringify(jobs.completed)})`,
    );
    const replayId = decodeURIComponent(new URL(page.url()).hash.slice("#/jobs/".length));
    expect(await client.hget(`rrq:job:${replayId}`, "function_name")).toBe("echo");
    expect(await client.hget(`rrq:job:${replayId}`, "job_params")).toBe(
      await client.hget(`rrq:job:${jobs.completed}`, "job_params"),
    );
    // delete a cancelled job
    await visit(`#/jobs/${jobs.cancelled}`);
    await page.click('button[data-action="delete"]');
    await page.click('.overlay button[data-confirm="yes"]');
    await waitFor(
      async () => (await client.exists(`rrq:job:${jobs.cancelled}`)) === 0,
      10_000,
      "delete from the UI",
    );
  });

  it("cron: trigger now enqueues the entry's job", async () => {
    const before = await seeded.redis.client.zcard("rrq:queue:parked");
    await visit("#/cron");
    await page.click('button[data-action="trigger"]');
    await page.click('.overlay button[data-confirm="yes"]');
    await waitFor(
      async () => (await seeded.redis.client.zcard("rrq:queue:parked")) === before + 1,
      10_000,
      "cron trigger from the UI",
    );
  });

  it("DLQ bulk: a dry run counts, a confirmed purge empties what the filter selects", async () => {
    const dlqKey = seeded.api.dlq.key();
    // the job requeued above runs again and fails again: let it settle in the DLQ first
    const requeued = `rrq:job:${seeded.jobs.failedForRequeue}`;
    await waitFor(async () => (await seeded.redis.client.hget(requeued, "status")) === "FAILED");
    await visit("#/dlq?function=fail_permanently");
    await page.click('button[data-action="dry-run"]');
    await page.waitForFunction(
      `/\\d+ entries match/.test(document.querySelector('[data-field="dry-run"]').textContent)`,
    );
    const counted = await inPage<string>(
      `document.querySelector('[data-field="dry-run"]').textContent`,
    );
    const entries = await seeded.redis.client.llen(dlqKey);
    expect(counted).toBe(`${entries} entries match`);
    await page.click('button[data-action="bulk-purge"]');
    // the confirmation names what will go; cancelling it leaves the DLQ alone
    await page.click('.overlay button[data-confirm="no"]');
    expect(await seeded.redis.client.llen(dlqKey)).toBe(entries);
    await page.click('button[data-action="bulk-purge"]');
    await page.click('.overlay button[data-confirm="yes"]');
    await waitFor(
      async () => (await seeded.redis.client.llen(dlqKey)) === 0,
      10_000,
      "bulk purge from the UI",
    );
    expect(await seeded.redis.client.exists(`rrq:job:${seeded.jobs.failed}`)).toBe(0);
  });

  it("no script error and no CSP violation on any page", () => {
    expect(problems.filter((p) => !p.includes("the server responded with a status of 40"))).toEqual(
      [],
    );
  });
});
