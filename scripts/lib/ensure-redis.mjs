// Makes sure `redis-server` is on PATH, installing Debian's package when it is missing.
import { spawnSync } from "node:child_process";
import { aptInstall } from "./apt.mjs";

function onPath(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

/** Returns once redis-server is available; exits the process with a clear message otherwise. */
export function ensureRedisServer() {
  if (onPath("redis-server")) return;
  process.stdout.write(
    "redis-server not found; installing Debian's redis-server package (apt-get)\n",
  );
  if (!aptInstall(["redis-server"], () => onPath("redis-server"))) {
    process.stderr.write(
      "Could not install redis-server. Install Redis 6.2+ (redis-server on PATH) and run again.\n",
    );
    process.exit(1);
  }
}
