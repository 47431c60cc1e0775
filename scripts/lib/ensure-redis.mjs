// Makes sure `redis-server` is on PATH, installing Debian's package when it is missing.
import { spawnSync } from "node:child_process";

function onPath(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

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

/** Returns once redis-server is available; exits the process with a clear message otherwise. */
export function ensureRedisServer() {
  if (onPath("redis-server")) return;
  process.stdout.write(
    "redis-server not found; installing Debian's redis-server package (apt-get)\n",
  );
  const installed =
    asRoot(["apt-get", "install", "-y", "-q", "redis-server"]) ||
    (asRoot(["apt-get", "update", "-q"]) &&
      asRoot(["apt-get", "install", "-y", "-q", "redis-server"]));
  if (!installed || !onPath("redis-server")) {
    process.stderr.write(
      "Could not install redis-server. Install Redis 6.2+ (redis-server on PATH) and run again.\n",
    );
    process.exit(1);
  }
}
