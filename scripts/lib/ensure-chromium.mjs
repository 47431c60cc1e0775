// Makes sure a headless Chromium is installed for the dashboard's browser tests
// (test/dashboard-browser*.test.ts), installing Debian's `chromium` package when it is missing,
// as ensure-redis.mjs does for redis-server. No browser is downloaded from anywhere else.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const CANDIDATES = [
  process.env.CHROMIUM_PATH,
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/usr/bin/google-chrome-stable",
];

const found = () => CANDIDATES.find((path) => path && existsSync(path));

function asRoot(args) {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const [command, ...rest] = isRoot ? args : ["sudo", "-n", ...args];
  return (
    spawnSync(command, rest, {
      stdio: "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    }).status === 0
  );
}

/** Returns once Chromium is available; exits the process with a clear message otherwise. */
export function ensureChromium() {
  if (found()) return;
  process.stdout.write("chromium not found; installing Debian's chromium package (apt-get)\n");
  const install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"];
  const installed = asRoot(install) || (asRoot(["apt-get", "update", "-q"]) && asRoot(install));
  if (!installed || !found()) {
    process.stderr.write(
      "Could not install chromium. Install Debian's chromium package (or set CHROMIUM_PATH) " +
        "and run again: the dashboard's browser tests need it.\n",
    );
    process.exit(1);
  }
}
