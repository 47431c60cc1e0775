/**
 * The typed producer and registry (job contracts): the fixtures in test/fixtures/contracts-types
 * compile, and each `// @ts-expect-error` there marks a real error. The fixtures are checked
 * twice with the TypeScript compiler: as written (no error at all: an expected error that
 * vanished is TS2578), then with the directives removed (errors exactly on the marked lines).
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const dir = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "contracts-types");
const DIRECTIVE = /^\s*\/\/ @ts-expect-error\b/;

function parsedConfig(): ts.ParsedCommandLine {
  const file = join(dir, "tsconfig.json");
  const raw = ts.readConfigFile(file, (path) => ts.sys.readFile(path));
  return ts.parseJsonConfigFileContent(raw.config, ts.sys, dir);
}

/** A compiler host that serves the fixtures with every directive line blanked (lines kept). */
function strippingHost(options: ts.CompilerOptions): ts.CompilerHost {
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  host.readFile = (path) => {
    const text = read(path);
    if (text === undefined || !path.startsWith(dir)) return text;
    return text
      .split("\n")
      .map((line) => (DIRECTIVE.test(line) ? "" : line))
      .join("\n");
  };
  return host;
}

function errorLines(program: ts.Program): Map<string, number[]> {
  const lines = new Map<string, number[]>();
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    if (!diagnostic.file)
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
    const name = diagnostic.file.fileName.replace(`${dir}/`, "");
    lines.set(
      name,
      [...new Set([...(lines.get(name) ?? []), line + 1])].sort((a, b) => a - b),
    );
  }
  return lines;
}

/** The line after each directive, per fixture: where the stripped program must fail. */
function markedLines(files: readonly string[]): Map<string, number[]> {
  const marked = new Map<string, number[]>();
  for (const file of files) {
    const lines = readFileSync(file, "utf8").split("\n");
    const after = lines.flatMap((line, i) => (DIRECTIVE.test(line) ? [i + 2] : []));
    if (after.length > 0) marked.set(file.replace(`${dir}/`, ""), after);
  }
  return marked;
}

function describeDiagnostics(program: ts.Program): string {
  return ts.formatDiagnostics(ts.getPreEmitDiagnostics(program), {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => dir,
    getNewLine: () => "\n",
  });
}

describe("typed Producer<Jobs> and Registry<Jobs>", () => {
  it("uses the Jobs interface rrq jobs types generates for the fixture catalog", () => {
    const generated = join(dir, "..", "contracts-generate", "jobs.ts.expected");
    expect(readFileSync(join(dir, "jobs.ts"), "utf8")).toBe(readFileSync(generated, "utf8"));
  });

  it("compiles, and every @ts-expect-error marks an error (and only those lines fail)", () => {
    const config = parsedConfig();
    const program = ts.createProgram(config.fileNames, config.options);
    expect(describeDiagnostics(program)).toBe("");

    const stripped = ts.createProgram({
      rootNames: config.fileNames,
      options: config.options,
      host: strippingHost(config.options),
      oldProgram: program,
    });
    const expected = markedLines(config.fileNames);
    expect([...expected.values()].flat().length).toBeGreaterThanOrEqual(10);
    expect(errorLines(stripped)).toEqual(expected);
  }, 300_000);
});
