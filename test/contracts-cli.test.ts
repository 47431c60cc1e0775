import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseHandlersLine } from "../src/cli/commands/jobs-check.js";
import { runCli } from "./support/cli-harness.js";

/**
 * `rrq jobs list | types | check` in process, against the fixture catalog; `check` asks fake
 * runners (test/fixtures/contracts-check/fake-runner.mjs) for their handlers.
 */

const CATALOG = resolve("conformance/fixtures/catalog");
const FAKE = resolve("test/fixtures/contracts-check/fake-runner.mjs");
const dir = mkdtempSync(join(tmpdir(), "rrq-jobs-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let configs = 0;
/** An rrq.toml naming the catalog (relative to the file) and one fake runner per entry. */
function config(runners: Record<string, { handlers: string[]; env?: string }>): string {
  const sub = join(dir, `c${++configs}`);
  const tables = Object.entries(runners).map(([name, r]) =>
    [
      `[rrq.runners.${name}]`,
      `cmd = ${JSON.stringify(["node", FAKE, ...r.handlers])}`,
      r.env ? `env = { ${r.env} }` : "",
    ].join("\n"),
  );
  const text = [
    "[rrq]",
    `job_catalog = ${JSON.stringify(CATALOG)}`,
    `default_runner_name = "${Object.keys(runners)[0] ?? "node"}"`,
    ...tables,
    "",
  ].join("\n");
  const path = `${sub}.toml`;
  writeFileSync(path, text);
  return path;
}

const both = ["send_email", "resize_image"];

describe("rrq jobs list", () => {
  it("prints the catalog named by rrq.toml", async () => {
    const result = await runCli(config({ node: { handlers: both } }), ["jobs", "list"]);
    expect(result.code).toBe(0);
    expect(result.out).toContain(`Job catalog ${CATALOG}: 2 job(s)`);
    expect(result.out).toMatch(/resize_image\s+url, width, height\s+-\s+Resizes an image/);
    expect(result.out).toMatch(/send_email\s+to, subject, cc\?, priority\?, attachments\?\s+yes/);
  });

  it("prints JSON, and --catalog overrides the config", async () => {
    const result = await runCli(join(dir, "missing.toml"), [
      "jobs",
      "list",
      "--json",
      "--catalog",
      CATALOG,
    ]);
    expect(result.code).toBe(0);
    const parsed = JSON.parse(result.out) as { jobs: { name: string }[] };
    expect(parsed.jobs.map((j) => j.name)).toEqual(["resize_image", "send_email"]);
  });

  it("exits 2 with the problem for a broken catalog or none at all", async () => {
    const broken = mkdtempSync(join(dir, "broken-"));
    writeFileSync(
      join(broken, "x.json"),
      JSON.stringify({ name: "y", params: { type: "object" } }),
    );
    const bad = await runCli(join(dir, "missing.toml"), ["jobs", "list", "--catalog", broken]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain(`x.json: "name" is "y" but the file is named "x.json"`);
    const path = join(dir, "plain.toml");
    writeFileSync(path, "[rrq]\n");
    const none = await runCli(path, ["jobs", "list"]);
    expect(none.code).toBe(2);
    expect(none.err).toContain("no job catalog: set job_catalog");
  });
});

describe("rrq jobs types", () => {
  it("writes the expected text to stdout or --out", async () => {
    const cfg = config({ node: { handlers: both } });
    const out = await runCli(cfg, ["jobs", "types", "--lang", "rust"]);
    expect(out.code).toBe(0);
    expect(out.out).toBe(readFileSync("test/fixtures/contracts-generate/jobs.rs.expected", "utf8"));
    const file = join(dir, "jobs.py");
    const written = await runCli(cfg, ["jobs", "types", "--lang", "python", "--out", file]);
    expect(written.code).toBe(0);
    expect(written.err).toContain(`wrote the types of 2 job(s) to ${file}`);
    expect(readFileSync(file, "utf8")).toBe(
      readFileSync("test/fixtures/contracts-generate/jobs.py.expected", "utf8"),
    );
  });

  it("refuses an unknown language", async () => {
    const result = await runCli(config({ node: { handlers: both } }), [
      "jobs",
      "types",
      "--lang",
      "go",
    ]);
    expect(result.code).toBe(2);
  });
});

describe("rrq jobs check", () => {
  it("passes when every catalogued job has a handler, noting extra handlers", async () => {
    const cfg = config({
      node: { handlers: ["send_email", "debug_dump"] },
      py: { handlers: ["resize_image"] },
    });
    const result = await runCli(cfg, ["jobs", "check"]);
    expect(result.code).toBe(0);
    expect(result.out).toContain("Runner node: fake 9.9.9, 2 handler(s)");
    expect(result.out).toMatch(/resize_image\s+ok\s+any of node, py\s+py/);
    expect(result.out).toMatch(/send_email\s+ok\s+any of node, py\s+node/);
    expect(result.out).toContain(
      "uncatalogued (registered by node, not in the catalog): debug_dump",
    );
    expect(result.out).toContain("OK: every catalogued job has a handler");
    // --strict turns the uncatalogued handler into a failure
    const strict = await runCli(cfg, ["jobs", "check", "--strict"]);
    expect(strict.code).toBe(1);
    expect(strict.out).toContain("FAIL: 1 uncatalogued handler(s) (--strict)");
  });

  it("exits 1 with the table when a catalogued job is registered nowhere", async () => {
    const result = await runCli(config({ node: { handlers: ["send_email"] } }), ["jobs", "check"]);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/JOB\s+STATUS\s+EXPECTED IN\s+FOUND IN/);
    expect(result.out).toMatch(/resize_image\s+MISSING\s+any of node\s+-/);
    expect(result.out).toContain("FAIL: 1 catalogued job(s) registered by no runner");
  });

  it("names a runner that cannot list its handlers; --skip-runner leaves it out", async () => {
    const cfg = config({
      node: { handlers: both },
      rrq: { handlers: [], env: 'FAKE_RUNNER_FAIL = "1"' },
    });
    const result = await runCli(cfg, ["jobs", "check"]);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(
      /Runner rrq: ERROR `node .*fake-runner\.mjs --list-handlers` exited 2: unknown argument '--list-handlers' \(--skip-runner rrq leaves it out\)/,
    );
    const skipped = await runCli(cfg, ["jobs", "check", "--skip-runner", "rrq"]);
    expect(skipped.code).toBe(0);
    const unknown = await runCli(cfg, ["jobs", "check", "--skip-runner", "nope"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("--skip-runner nope: no such runner (configured: node, rrq)");
  });

  it("prints a JSON report", async () => {
    const result = await runCli(config({ node: { handlers: ["send_email", "x"] } }), [
      "jobs",
      "check",
      "--json",
    ]);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.out) as Record<string, unknown>;
    expect(report).toMatchObject({
      ok: false,
      catalog: CATALOG,
      jobs: [
        { name: "resize_image", foundIn: [], missing: true },
        { name: "send_email", foundIn: ["node"], missing: false },
      ],
      runners: [
        { runner: "node", runtime: "fake", version: "9.9.9", handlers: ["send_email", "x"] },
      ],
      uncatalogued: [{ runner: "node", handler: "x" }],
    });
  });
});

describe("the --list-handlers line", () => {
  it("is the last stdout line that is a JSON object with a handlers array", () => {
    expect(parseHandlersLine('log\n{"handlers":["b","a"],"runtime":"rust"}\n{"x":1}\n')).toEqual({
      handlers: ["a", "b"],
      runtime: "rust",
    });
    expect(parseHandlersLine('{"handlers":[1]}\nplain')).toBeUndefined();
  });
});
