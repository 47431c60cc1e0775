// Makes sure a headless Chromium is installed for the dashboard's browser tests
// (test/dashboard-browser*.test.ts), installing Debian's `chromium` package when it is missing,
// as ensure-redis.mjs does for redis-server. No browser is downloaded from anywhere else.
import { existsSync } from "node:fs";
import { aptInstall } from "./apt.mjs";

const CANDIDATES = [
  process.env.CHROMIUM_PATH,
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/usr/bin/google-chrome-stable",
];

/** The path of an installed Chromium (CHROMIUM_PATH first), or undefined. */
export const findChromium = () => CANDIDATES.find((path) => path && existsSync(path));

/** Installs Debian's chromium when none is found; its path, or undefined when that failed. */
export function installChromium({ quiet = false } = {}) {
  aptInstall(["chromium"], () => findChromium() !== undefined, { quiet, noRecommends: true });
  return findChromium();
}

/** Returns once Chromium is available; exits the process with a clear message otherwise. */
export function ensureChromium() {
  if (findChromium()) return;
  process.stdout.write("chromium not found; installing Debian's chromium package (apt-get)\n");
  if (!installChromium()) {
    process.stderr.write(
      "Could not install chromium. Install Debian's chromium package (or set CHROMIUM_PATH) " +
        "and run again: the dashboard's browser tests need it.\n",
    );
    process.exit(1);
  }
}
