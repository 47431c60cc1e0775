import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { JobCatalog, type JobContract } from "@rrqkit/runner/contracts";
import { generateTypes, GENERATED_HEADER, type TypeLanguage } from "../src/contracts/index.js";

/**
 * `rrq jobs types`: the fixture catalog's output in each language is pinned (the expected
 * files under test/fixtures/contracts-generate), and the generated code is checked by each
 * language's own tools: tsc --strict, mypy --strict, rustfmt --check.
 */

const fixture = JobCatalog.load("conformance/fixtures/catalog");
const EXPECTED = "test/fixtures/contracts-generate";
const EXT: Record<TypeLanguage, string> = { ts: "ts", python: "py", rust: "rs" };
const TSC = resolve("node_modules/.bin/tsc");
const PYTHON = "/work/main/.venv/bin/python";
/** tsc and mypy start slowly on a busy machine: these tests get more than the default 30 s. */
const SLOW = { timeout: 180_000 };

const work = mkdtempSync(join(tmpdir(), "rrq-types-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A catalog beyond the fixture: every construct of the subset, and some outside it. */
const edge: JobContract = {
  name: "edge-cases",
  description: "Covers the generated subset.",
  params: {
    type: "object",
    properties: {
      to: {
        type: "object",
        description: "An inline object.",
        properties: { street: { type: "string" }, zip: { type: ["string", "null"] } },
        required: ["street"],
      },
      note: { type: ["string", "null"] },
      mode: { const: "fast" },
      level: { enum: [1, 2, 3] },
      color: { enum: ["red", "dark green", null] },
      labels: { type: "object", additionalProperties: { type: "integer" } },
      choice: { anyOf: [{ type: "string" }, { $ref: "#/$defs/point" }] },
      maybe_point: { anyOf: [{ $ref: "#/$defs/point" }, { type: "null" }] },
      "content-type": { type: "string" },
      type: { type: "boolean" },
      messageId: { type: "number" },
      blob: { allOf: [{ type: "string" }] },
      anything: {},
      rows: {
        type: "array",
        items: {
          type: "object",
          properties: { id: { type: "integer" } },
          required: ["id"],
          additionalProperties: false,
        },
      },
      email: { $ref: "#/$defs/email" },
    },
    required: ["to", "type"],
    $defs: {
      point: {
        type: "object",
        properties: { x: { type: "number" }, y: { type: "number" } },
        required: ["x", "y"],
        additionalProperties: false,
      },
      email: { type: "string", format: "email", description: "An address." },
    },
  },
  result: { type: "array", items: { type: "string" } },
};
const edgeCatalog = JobCatalog.fromContracts([edge]);

/** Writes files into a fresh directory under the test's temp dir. */
function writeDir(name: string, files: Record<string, string>): string {
  const dir = join(work, name);
  execFileSync("mkdir", ["-p", dir]);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

/** Runs a checker; returns its output, failing the test with it when the exit code is not 0. */
function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: "pipe" });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

/** tsc --strict on the given files (a tsconfig.json without @types, beside them). */
function tsc(dir: string, files: string[]): string {
  const compilerOptions = {
    strict: true,
    noEmit: true,
    target: "es2022",
    module: "esnext",
    moduleResolution: "bundler",
    types: [],
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files }));
  return run(TSC, ["-p", "."], dir);
}

const mypy = (dir: string, files: string[]) =>
  run(PYTHON, ["-m", "mypy", "--strict", "--cache-dir", join(dir, ".mypy_cache"), ...files], dir);

const hasMypy = (() => {
  try {
    execFileSync(PYTHON, ["-m", "mypy", "--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("generated types of the fixture catalog", () => {
  it.each(["ts", "python", "rust"] as const)("%s matches the expected file", (language) => {
    const text = generateTypes(fixture, language);
    expect(text).toBe(readFileSync(join(EXPECTED, `jobs.${EXT[language]}.expected`), "utf8"));
    expect(text.split("\n")[0]).toMatch(GENERATED_HEADER);
    // deterministic: the same catalog, loaded again, gives the same text
    const again = JobCatalog.load("conformance/fixtures/catalog");
    expect(generateTypes(again, language)).toBe(text);
  });

  it("TypeScript compiles with tsc --strict and refuses wrong params", SLOW, () => {
    const dir = writeDir("ts-fixture", {
      "jobs.ts": generateTypes(fixture, "ts"),
      "usage.ts": [
        'import type { Jobs, ResizeImageParams, SendEmailParams } from "./jobs";',
        "export const ok: SendEmailParams = {",
        '  to: "a@b", subject: "s", priority: "high", attachments: [{ name: "f", bytes: 3 }],',
        "};",
        "// @ts-expect-error priority is an enum",
        'export const badPriority: SendEmailParams = { to: "a", subject: "s", priority: "urgent" };',
        "// @ts-expect-error subject is required",
        'export const missing: SendEmailParams = { to: "a" };',
        "// @ts-expect-error additionalProperties is false",
        'export const extra: SendEmailParams = { to: "a", subject: "s", bcc: "x" };',
        "// @ts-expect-error width is a number",
        'export const resize: ResizeImageParams = { url: "u", width: "1", height: 2 };',
        'export const result: Jobs["send_email"]["result"] = { message_id: "m" };',
        "",
      ].join("\n"),
    });
    tsc(dir, ["jobs.ts", "usage.ts"]);
  });

  it.skipIf(!hasMypy)("Python passes mypy --strict and refuses wrong params", SLOW, () => {
    const dir = writeDir("py-fixture", {
      "jobs.py": generateTypes(fixture, "python"),
      "usage.py": [
        "from jobs import ResizeImageParams, SendEmailParams, SendEmailResult",
        "",
        "ok: SendEmailParams = {",
        '    "to": "a@b",',
        '    "subject": "s",',
        '    "priority": "high",',
        '    "attachments": [{"name": "f", "bytes": 3}],',
        "}",
        'ok2 = SendEmailParams(to="a@b", subject="x")',
        'resize: ResizeImageParams = {"url": "u", "width": 1, "height": 2}',
        'result: SendEmailResult = {"message_id": "m"}',
        // --strict has --warn-unused-ignores: each ignore below must match a real error
        'bad: SendEmailParams = {"to": "a", "subject": "s", "priority": "urgent"}  # type: ignore[typeddict-item]',
        'missing: SendEmailParams = {"to": "a"}  # type: ignore[typeddict-item]',
        'width: ResizeImageParams = {"url": "u", "width": "1", "height": 2}  # type: ignore[typeddict-item]',
        "",
      ].join("\n"),
    });
    expect(mypy(dir, ["jobs.py", "usage.py"])).toMatch(
      /Success: no issues found in 2 source files/,
    );
  });

  it("Rust is rustfmt-clean", () => {
    const dir = writeDir("rs-fixture", { "jobs.rs": generateTypes(fixture, "rust") });
    run("rustfmt", ["--check", "--edition", "2021", "jobs.rs"], dir);
  });
});

describe("generated types of the whole subset", () => {
  const ts = generateTypes(edgeCatalog, "ts");
  const py = generateTypes(edgeCatalog, "python");
  const rs = generateTypes(edgeCatalog, "rust");

  it("names inline objects, $defs, enums and results per the contract", () => {
    expect(ts).toContain("export interface EdgeCasesParamsTo {");
    expect(ts).toContain("export interface EdgeCasesPoint {");
    expect(ts).toContain("export interface EdgeCasesParamsRowsItem {");
    expect(ts).toContain('export type EdgeCasesParamsColor = "red" | "dark green";');
    expect(ts).toContain("  color?: EdgeCasesParamsColor | null;");
    expect(ts).toContain("export type EdgeCasesResult = string[];");
    expect(ts).toContain("/** An address. */\nexport type EdgeCasesEmail = string;");
    expect(py).toContain("class EdgeCasesPoint(TypedDict):");
    expect(rs).toContain("pub struct EdgeCasesParamsTo {");
  });

  it("TypeScript: unions, nullables, literals, maps, quoted keys, unknown with a reason", () => {
    for (const line of [
      "  to: EdgeCasesParamsTo;",
      "  zip?: string | null;",
      '  mode?: "fast";',
      "  level?: EdgeCasesParamsLevel;",
      "  labels?: Record<string, number>;",
      "  choice?: string | EdgeCasesPoint;",
      "  maybe_point?: EdgeCasesPoint | null;",
      '  "content-type"?: string;',
      "  type: boolean;",
      "  // any JSON value: allOf is outside the generated subset\n  blob?: unknown;",
      "  anything?: unknown;",
      "  rows?: EdgeCasesParamsRowsItem[];",
      '  "edge-cases": { params: EdgeCasesParams; result: EdgeCasesResult };',
    ])
      expect(ts).toContain(line);
  });

  it("Python: functional TypedDict for keys that are not identifiers, NotRequired, Literal", () => {
    for (const line of [
      'EdgeCasesParams = TypedDict(\n    "EdgeCasesParams",',
      '        "content-type": NotRequired[str],',
      '        "type": bool,',
      '        "mode": NotRequired[Literal["fast"]],',
      '        "labels": NotRequired[dict[str, int]],',
      '        "choice": NotRequired[str | EdgeCasesPoint],',
      "        # any JSON value: allOf is outside the generated subset",
      "    zip: NotRequired[str | None]",
      "EdgeCasesParamsLevel: TypeAlias = Literal[1, 2, 3]",
      "EdgeCasesResult: TypeAlias = list[str]",
    ])
      expect(py).toContain(line);
  });

  it("Rust: renamed and raw fields, Option, Value for unions, BTreeMap, enum variants", () => {
    for (const line of [
      '    #[serde(rename = "content-type")]\n    #[serde(default, skip_serializing_if = "Option::is_none")]\n    pub content_type: Option<String>,',
      "    pub r#type: bool,",
      '    #[serde(rename = "messageId")]\n    #[serde(default, skip_serializing_if = "Option::is_none")]\n    pub message_id: Option<f64>,',
      "    // one of: String, EdgeCasesPoint\n",
      "    pub choice: Option<serde_json::Value>,",
      "    pub maybe_point: Option<EdgeCasesPoint>,",
      "    pub labels: Option<std::collections::BTreeMap<String, i64>>,",
      '    #[serde(rename = "dark green")]\n    DarkGreen,',
      "// one of: 1, 2, 3\npub type EdgeCasesParamsLevel = i64;",
      "impl rrqkit::contracts::JobContract for EdgeCasesParams {",
      '    const NAME: &\'static str = "edge-cases";\n    type Result = EdgeCasesResult;',
    ])
      expect(rs).toContain(line);
  });

  it(
    "compiles with tsc --strict, passes mypy --strict (when present) and rustfmt --check",
    SLOW,
    () => {
      tsc(writeDir("ts-edge", { "jobs.ts": ts }), ["jobs.ts"]);
      if (hasMypy) mypy(writeDir("py-edge", { "jobs.py": py }), ["jobs.py"]);
      run(
        "rustfmt",
        ["--check", "--edition", "2021", "jobs.rs"],
        writeDir("rs-edge", { "jobs.rs": rs }),
      );
      expect(existsSync(join(work, "rs-edge", "jobs.rs"))).toBe(true);
    },
  );
});
