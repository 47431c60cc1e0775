import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The `implementation` value rrqkit writes in its health records (RRQ writes none). */
export const IMPLEMENTATION = "rrqkit";

let cached: string | undefined;

/**
 * rrqkit's package version, from the nearest `package.json` named `rrqkit` above this module
 * (src/ when run from source, dist/src/ when built: the depth differs); "unknown" if none.
 */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  cached = "unknown";
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const path = join(dir, "package.json");
    if (existsSync(path)) {
      try {
        const pkg = JSON.parse(readFileSync(path, "utf8")) as { name?: string; version?: string };
        if (pkg.name === IMPLEMENTATION && typeof pkg.version === "string") {
          cached = pkg.version;
          break;
        }
      } catch {
        // not a readable package.json: keep looking upwards
      }
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return cached;
}
