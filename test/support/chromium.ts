import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { findChromium, installChromium } from "../../scripts/lib/ensure-chromium.mjs";

/**
 * Headless Chromium for the dashboard's browser tests: Debian's `chromium` package (installed
 * with apt-get when missing, as scripts/lib/ensure-redis.mjs does for redis-server), driven by
 * puppeteer-core with its executable path. No browser is ever downloaded.
 */

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Screenshots of the browser tests (gitignored; for review). */
export const SCREENSHOT_DIR = join(REPO, "test-results");

export { findChromium };

/** Finds Chromium, installing Debian's package when it is missing; throws when that fails. */
export function ensureChromium(): string {
  const installed = findChromium() ?? installChromium({ quiet: true });
  if (!installed)
    throw new Error(
      "Chromium not found and `apt-get install chromium` failed: install Debian's chromium " +
        "package (or set CHROMIUM_PATH) to run the dashboard browser tests",
    );
  return installed;
}

/** Launches headless Chromium (no sandbox: tests run as root in CI). */
export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: ensureChromium(),
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"],
    defaultViewport: { width: 1280, height: 900 },
  });
}

/**
 * Records what went wrong inside `page` into `problems` (uncaught errors and console errors), so
 * a test can assert at the end that the dashboard ran clean.
 */
export function recordPageProblems(page: Page, problems: string[]): void {
  page.on("pageerror", (error) => problems.push(`pageerror: ${String(error)}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
}

const UI_SOURCE = join(REPO, "src", "dashboard", "ui");
const UI_BUILT = join(REPO, "dist", "src", "dashboard", "ui", "index.html");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Builds the dashboard UI into dist/src/dashboard/ui when it is missing or older than its
 * sources (`npm test` builds first; this keeps a targeted `vitest run` honest).
 */
export function ensureUiBuilt(): void {
  if (existsSync(UI_BUILT) && statSync(UI_BUILT).mtimeMs >= newestMtime(UI_SOURCE)) return;
  const tsc = spawnSync(
    process.execPath,
    [
      join(REPO, "node_modules", "typescript", "bin", "tsc"),
      "-p",
      join(UI_SOURCE, "tsconfig.json"),
    ],
    { cwd: REPO, encoding: "utf8" },
  );
  if (tsc.status !== 0)
    throw new Error(`building the dashboard UI failed:\n${tsc.stdout}${tsc.stderr}`);
  const copy = spawnSync(process.execPath, [join(REPO, "scripts", "build-dashboard-ui.mjs")], {
    cwd: REPO,
    encoding: "utf8",
  });
  if (copy.status !== 0) throw new Error(`copying the dashboard UI failed:\n${copy.stderr}`);
}

/** Makes sure the screenshot directory exists and returns a path in it. */
export function screenshotPath(name: string): `${string}.png` {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return `${join(SCREENSHOT_DIR, name)}.png`;
}
