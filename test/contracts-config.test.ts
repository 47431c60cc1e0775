import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import { loadConfig } from "../src/config/load.js";

const root = mkdtempSync(join(tmpdir(), "rrq-catalog-config-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function configAt(dir: string, body: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "rrq.toml");
  writeFileSync(path, `[rrq]\n${body}\n`);
  return path;
}

describe("job_catalog in rrq.toml", () => {
  it("is absent by default", () => {
    expect(resolveConfig({}).jobCatalog).toBeUndefined();
  });

  it("is resolved against the rrq.toml's directory, not the working directory", () => {
    const path = configAt(join(root, "app"), 'job_catalog = "jobs"');
    const { config } = loadConfig({ path, cwd: tmpdir(), env: {} });
    expect(config.jobCatalog).toBe(join(root, "app", "jobs"));
  });

  it("keeps an absolute path", () => {
    const path = configAt(join(root, "abs"), `job_catalog = "${join(root, "elsewhere")}"`);
    expect(loadConfig({ path, env: {} }).config.jobCatalog).toBe(join(root, "elsewhere"));
  });

  it("must be a non-empty string", () => {
    expect(() => resolveConfig({ job_catalog: 3 })).toThrow(
      /job_catalog must be a non-empty string/,
    );
    expect(() => resolveConfig({ job_catalog: " " })).toThrow(/job_catalog/);
  });
});
