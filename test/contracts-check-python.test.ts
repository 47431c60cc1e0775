import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./support/cli-harness.js";

/**
 * Acceptance: `rrq jobs check` fails when a Python handler's catalogued name is missing or
 * renamed. The runner is the real Python runner (`.venv/bin/python -m rrqkit.cli`, what the
 * `rrqkit-runner` script runs) with a settings module from
 * test/fixtures/contracts-check-python/ holding three registries; the catalog is the shared
 * fixture conformance/fixtures/catalog (send_email, resize_image).
 */

const CATALOG = resolve("conformance/fixtures/catalog");
const FIXTURE = resolve("test/fixtures/contracts-check-python");
// The repository's test virtualenv (runners/python/ci.sh --install-only; npm test makes it first).
const PYTHON = resolve(".venv/bin/python");
const dir = mkdtempSync(join(tmpdir(), "rrq-jobs-check-py-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(() => {
  if (!existsSync(PYTHON))
    throw new Error(`${PYTHON} is missing: run runners/python/ci.sh --install-only first`);
});

/** An rrq.toml naming the catalog and one Python runner serving `jobs_settings:<registry>`. */
function config(registry: string): string {
  const path = join(dir, `${registry}.toml`);
  writeFileSync(
    path,
    [
      "[rrq]",
      `job_catalog = ${JSON.stringify(CATALOG)}`,
      'default_runner_name = "python"',
      "[rrq.runners.python]",
      `cmd = ${JSON.stringify([PYTHON, "-m", "rrqkit.cli", "--settings", `jobs_settings:${registry}`])}`,
      // --settings imports from the working directory (runners/python/README.md).
      `cwd = ${JSON.stringify(FIXTURE)}`,
      "",
    ].join("\n"),
  );
  return path;
}

describe("rrq jobs check with the Python runner", () => {
  it("passes (exit 0) when the runner registers both catalogued handlers", async () => {
    const result = await runCli(config("both"), ["jobs", "check"]);
    expect(result.err).toBe("");
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/Runner python: python \S+, 2 handler\(s\)/);
    expect(result.out).toMatch(/resize_image\s+ok\s+any of python\s+python/);
    expect(result.out).toMatch(/send_email\s+ok\s+any of python\s+python/);
    expect(result.out).toContain("OK: every catalogued job has a handler");
  });

  it("fails (exit 1) naming the job when its handler is missing", async () => {
    const result = await runCli(config("missing"), ["jobs", "check"]);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/JOB\s+STATUS\s+EXPECTED IN\s+FOUND IN/);
    expect(result.out).toMatch(/resize_image\s+MISSING\s+any of python\s+-/);
    expect(result.out).toMatch(/send_email\s+ok\s+any of python\s+python/);
    expect(result.out).toContain("FAIL: 1 catalogued job(s) registered by no runner");
  });

  it("fails (exit 1) when the handler was renamed in code, reporting the new name as uncatalogued", async () => {
    const result = await runCli(config("renamed"), ["jobs", "check"]);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/resize_image\s+MISSING\s+any of python\s+-/);
    expect(result.out).toContain(
      "uncatalogued (registered by python, not in the catalog): resize_img",
    );
    expect(result.out).toContain("FAIL: 1 catalogued job(s) registered by no runner");
  });
});
