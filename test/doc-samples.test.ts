// Every code block of README.md and docs/**/*.md is executed, type-checked or explicitly marked
// not-code (scripts/lib/doc-samples.mjs), so the docs cannot drift from the code unnoticed.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkRules,
  missingOutput,
  parseMarker,
  parseSamples,
  runDocSamples,
} from "../scripts/lib/doc-samples.mjs";
import { startRedis, type TestRedis } from "./support/redis-server.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

describe("doc sample markers", () => {
  it("reads modes, names, files and reasons", () => {
    expect(parseMarker("<!-- sample: run name=app file=src/app.ts -->")).toMatchObject({
      mode: "run",
      attrs: { name: "app", file: "src/app.ts" },
    });
    expect(parseMarker("<!-- sample: part-of app -->")).toMatchObject({ target: "app" });
    expect(parseMarker("<!-- sample: not-code — usage synopsis -->")?.reason).toBe(
      "usage synopsis",
    );
    expect(parseMarker("<!-- not a marker -->")).toBeUndefined();
  });

  it("refuses code marked not-code without a reason, and stray markers", () => {
    const problems: string[] = [];
    const text = [
      "<!-- sample: not-code -->",
      "```ts",
      "x;",
      "```",
      "<!-- sample: not-code -->",
      "",
      "```sh",
      "rrq worker run [--burst]",
      "```",
      "<!-- sample: output -->",
      "prose",
      "```text",
      "```",
    ].join("\n");
    const samples = parseSamples("doc.md", text, problems);
    checkRules(samples, problems);
    expect(samples.map((s) => [s.lang, s.mode])).toEqual([
      ["ts", "not-code"],
      ["sh", "not-code"],
      ["text", "not-code"],
    ]);
    expect(problems).toEqual([
      "doc.md:10: a sample marker must be right before a fence",
      "doc.md:2: a ts block marked not-code needs a reason after the mode",
    ]);
  });

  it("defaults: code compiles, data parses, the rest is prose", () => {
    const text = ["```python", "x = 1", "```", "```toml", "[rrq]", "```", "```", "hi", "```"];
    const samples = parseSamples("doc.md", text.join("\n"), []);
    expect(samples.map((s) => s.mode)).toEqual(["compile", "run", "not-code"]);
  });

  it("matches expected output in order, with … as a wildcard", () => {
    expect(missingOutput("enqueued …\nCOMPLETED", "x\nenqueued 12ab\nCOMPLETED {}\n")).toBe(
      undefined,
    );
    expect(missingOutput("COMPLETED\nenqueued", "enqueued 1\nCOMPLETED\n")).toBe("enqueued");
  });
});

describe("doc samples", () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("reports a broken sample of each kind at its doc line", async () => {
    // A checkout whose docs are two pages of broken samples (the rest links to the real one).
    const root = mkdtempSync(join(tmpdir(), "doc-samples-broken-"));
    try {
      for (const name of [
        "node_modules",
        "dist",
        "runners",
        "tsconfig.base.json",
        "package.json",
        ".venv",
      ])
        symlinkSync(join(ROOT, name), join(root, name));
      mkdirSync(join(root, "docs"));
      const fence = (info: string, ...lines: string[]) => ["```" + info, ...lines, "```"];
      const readme = [
        "# x",
        ...fence("ts", 'const n: number = "one";'),
        ...fence("python", "await undefined_helper()"),
        ...fence("rust", 'let x: u32 = "one";'),
        ...fence("toml", "[rrq]", "default_max_retires = 3"),
        "<!-- sample: compile name=a -->",
        ...fence("ts", "const total = 1;"),
        "<!-- sample: part-of a -->",
        ...fence("ts", "total.push(2);"),
      ];
      writeFileSync(join(root, "README.md"), readme.join("\n"));
      const page = [
        "<!-- sample: shell -->",
        ...fence("sh", "echo hello"),
        "<!-- sample: output -->",
      ];
      writeFileSync(join(root, "docs/page.md"), [...page, ...fence("text", "goodbye")].join("\n"));
      const { problems } = await runDocSamples({ root, redisUrl: redis.url });
      const at = problems.map((p) => p.split(": ")[0]);
      expect(at).toEqual([
        "README.md:3",
        "README.md:21",
        "README.md:6",
        "README.md:9",
        "README.md:12",
        "docs/page.md:7",
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 120_000);

  it("every block of README.md and docs/ runs, compiles or is marked not-code", async () => {
    const lines: string[] = [];
    const result = await runDocSamples({
      root: ROOT,
      redisUrl: redis.url,
      log: (l) => lines.push(l),
    });
    const { notCodeList, ...counts } = result.counts;
    console.log(
      `doc samples: ${JSON.stringify(counts)} in ${result.seconds.toFixed(1)} s (${lines.join(", ")})\n` +
        `not-code:\n  ${notCodeList.join("\n  ")}`,
    );
    expect(result.problems).toEqual([]);
    expect(counts.executed + counts.compiled + counts.notCode).toBe(counts.blocks);
  }, 600_000); // a cold `cargo build` compiles the crate's dependencies once (minutes); warm: seconds
});
