/**
 * The producer suite compares an `invalid_params` reply's `error.field` with the case's
 * `expect.field` (a job-contract failure must name the same location in every binding), and a
 * core producer (RRQ's) gets no result for rrqkit-profile cases.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { customBinding } from "../../src/conformance/bindings.js";
import { loadCases, repoRoot } from "../../src/conformance/cases.js";
import { formatResult, type Result } from "../../src/conformance/report.js";
import { runConformance } from "../../src/conformance/run.js";

const root = repoRoot();
const cases = loadCases(root);
const dir = mkdtempSync(join(tmpdir(), "rrqc-field-"));

/**
 * A producer adapter that writes nothing: every enqueue fails with invalid_params at the field
 * given as its first argument (`-` for no field at all).
 */
const adapter = join(dir, "adapter.cjs");
writeFileSync(
  adapter,
  [
    "const field = process.argv[2];",
    "const rl = require('readline').createInterface({ input: process.stdin });",
    "rl.on('line', (line) => {",
    "  const c = JSON.parse(line);",
    "  const error = { code: 'invalid_params', message: 'send_email: params' + field + ' is wrong' };",
    "  if (field !== '-') error.field = field;",
    "  const reply = c.op.startsWith('enqueue') ? { id: c.id, ok: false, error }",
    "    : { id: c.id, ok: true, result: null };",
    "  process.stdout.write(JSON.stringify(reply) + '\\n');",
    "});",
  ].join("\n"),
);

async function runWith(field: string, profile: "core" | "rrqkit" = "rrqkit"): Promise<Result[]> {
  const binding = customBinding(
    "fake",
    undefined,
    `${process.execPath} ${adapter} ${field}`,
    join(dir, "no-such-list.txt"),
    profile,
  );
  return runConformance({
    root,
    cases,
    bindings: [binding],
    e2e: [],
    transports: ["tcp"],
    encodings: ["json"],
    run: ["producer/contracts/wrong-type"],
    skip: [],
    kinds: new Set(["producer"]),
    parallel: 1,
    print: () => {},
  });
}

describe("producer cases with expect.field", () => {
  it("pass when the reply names the expected field", async () => {
    const results = await runWith("/to");
    expect(results.map((r) => r.status)).toEqual(["pass"]);
  });

  it("fail naming the field the reply gave and the one expected", async () => {
    const [result] = await runWith("/subject");
    expect(result!.status).toBe("fail");
    expect(formatResult(result!)).toContain(
      'step 2 (enqueue) fails at field "/subject", expected "/to"',
    );
  });

  it("fail when the reply has no field at all", async () => {
    const [result] = await runWith("-");
    expect(result!.status).toBe("fail");
    expect(formatResult(result!)).toContain('fails at no field, expected "/to"');
  });

  it("are n/a (no result) for a core producer", async () => {
    expect(await runWith("/to", "core")).toEqual([]);
  });
});
