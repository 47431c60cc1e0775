// Installs Debian packages the test and start scripts need (redis-server, chromium) when they are
// missing: `apt-get install`, and once more after `apt-get update` when the package lists are
// stale or empty (a fresh machine). Runs as root, else through `sudo -n` (never prompts).
import { spawnSync } from "node:child_process";

/** Runs `args` as root; true when it exited 0. */
export function asRoot(args, { quiet = false, timeoutMs } = {}) {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const [command, ...rest] = isRoot ? args : ["sudo", "-n", ...args];
  return (
    spawnSync(command, rest, {
      stdio: quiet ? "ignore" : "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      ...(timeoutMs ? { timeout: timeoutMs } : {}),
    }).status === 0
  );
}

/**
 * Installs `packages` with apt-get unless `present()` already holds; true when `present()` holds
 * afterwards. `options.quiet` hides apt's output; `options.noRecommends` skips recommended
 * packages.
 */
export function aptInstall(packages, present, { quiet = false, noRecommends = false } = {}) {
  if (present()) return true;
  const install = [
    "apt-get",
    "install",
    "-y",
    "-q",
    ...(noRecommends ? ["--no-install-recommends"] : []),
    ...packages,
  ];
  const run = (args) => asRoot(args, { quiet, timeoutMs: 600_000 });
  if (!run(install)) {
    run(["apt-get", "update", "-q"]);
    run(install);
  }
  return present();
}
