/**
 * bin/rrq.js is both a sh script and an ES module: run directly (as the npm bin), sh starts
 * Node with the launcher's flags plus RRQ_NODE_OPTIONS; run as `node bin/rrq.js`, it is a
 * plain module.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const bin = join(import.meta.dirname, "..", "bin", "rrq.js");
const printExecArgv = ["--print", "JSON.stringify(process.execArgv)"];

describe("bin/rrq.js launcher", () => {
  it("starts Node with a 4 MiB semi-space, and RRQ_NODE_OPTIONS after it", () => {
    const out = execFileSync(bin, [], {
      env: { ...process.env, RRQ_NODE_OPTIONS: printExecArgv.join(" ") },
      encoding: "utf8",
    });
    expect(JSON.parse(out)).toEqual(["--max-semi-space-size=4", ...printExecArgv]);
  });

  it("runs the CLI when executed directly and when given to node", () => {
    for (const [command, args] of [
      [bin, ["--help"]],
      [process.execPath, [bin, "--help"]],
    ] as const) {
      const out = execFileSync(command, args, { encoding: "utf8" });
      expect(out).toContain("rrqkit: an RRQ-compatible job orchestrator");
    }
  });
});
