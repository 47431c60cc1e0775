import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv2020 } from "ajv/dist/2020.js";

/** What part of a binding a case exercises. */
export type CaseKind = "runner" | "e2e" | "producer";

/** Which protocol profile a case needs: `core` is RRQ 0.11, `rrqkit` adds the extensions. */
export type Profile = "core" | "rrqkit";

/** One case as written in a case file (JSON; validated by conformance/case.schema.json). */
export interface CaseSpec {
  name: string;
  description: string;
  comment?: string;
  spec?: string | string[];
  profile?: Profile;
  transports?: string[];
  encodings?: string[];
  needs?: string[];
  /** e2e only: run on one transport/encoding per binding rather than the whole e2e matrix. */
  once?: boolean;
  given?: Record<string, unknown>;
  when?: Record<string, unknown>[];
  then?: unknown;
}

/** A case file. */
export interface CaseFile {
  topic: string;
  kind: CaseKind;
  description: string;
  spec: string | string[];
  profile?: Profile;
  cases: CaseSpec[];
}

/** A loaded case, with its id and inherited defaults resolved. */
export interface Case extends CaseSpec {
  /** `<topic>/<name>`, e.g. `runner/cancel/cancel-by-request`. */
  id: string;
  kind: CaseKind;
  profile: Profile;
  specLinks: string[];
  file: string;
}

/** A case file or the corpus is broken: a harness bug, not an implementation failure. */
export class CorpusError extends Error {
  override readonly name = "CorpusError";
}

/** The repository root (holding conformance/ and protocol/), from source or from dist/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "conformance", "case.schema.json"))) return dir;
    dir = dirname(dir);
  }
  throw new CorpusError("cannot find the repository root (conformance/case.schema.json)");
}

function caseFiles(dir: string, top = true): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    // cases/testing holds the testing modes' scenarios (docs/testing.md), not harness cases
    if (top && entry === "testing") continue;
    if (statSync(path).isDirectory()) out.push(...caseFiles(path, false));
    else if (entry.endsWith(".json")) out.push(path);
  }
  return out;
}

/** GitHub-style anchor of a Markdown heading. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s-]/gu, "")
    .replace(/\s/g, "-");
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOf(path: string): Set<string> {
  let anchors = anchorCache.get(path);
  if (!anchors) {
    const headings = readFileSync(path, "utf8")
      .split("\n")
      .filter((line) => /^#{1,6} /.test(line))
      .map((line) => anchorOf(line.replace(/^#+ /, "")));
    anchors = new Set(headings);
    anchorCache.set(path, anchors);
  }
  return anchors;
}

/** Problems with one spec link (`path#anchor`, relative to the repository root). */
function checkLink(root: string, link: string): string | undefined {
  const [path, anchor] = link.split("#");
  const file = join(root, path!);
  // Links stay inside the repository: the documents must stand alone.
  if (path!.startsWith("../")) return `spec link ${link}: points outside the repository`;
  if (!existsSync(file)) return `spec link ${link}: no such file`;
  if (anchor && !anchorsOf(file).has(anchor)) return `spec link ${link}: no such heading`;
  return undefined;
}

/** Wording rules for descriptions (JSON-Schema-Test-Suite style): say what it does. */
function checkWording(id: string, description: string): string | undefined {
  if (description.length > 140) return `${id}: description is longer than 140 characters`;
  if (/^(should|test that|tests that|checks? that)\b/i.test(description))
    return `${id}: description must state the behaviour, not start with "${description.split(" ")[0]}"`;
  return undefined;
}

/**
 * Loads every case file under `conformance/cases/`, validates each against
 * `conformance/case.schema.json`, and checks the corpus: the topic matches the path, ids are
 * unique, descriptions are worded as statements, spec links point at existing headings.
 * Throws {@link CorpusError} listing every problem.
 */
export function loadCases(root = repoRoot()): Case[] {
  const schema = JSON.parse(
    readFileSync(join(root, "conformance", "case.schema.json"), "utf8"),
  ) as object;
  const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
  const problems: string[] = [];
  const cases: Case[] = [];
  const seen = new Set<string>();
  const casesDir = join(root, "conformance", "cases");
  for (const path of caseFiles(casesDir)) {
    const rel = relative(root, path);
    let file: CaseFile;
    try {
      file = JSON.parse(readFileSync(path, "utf8")) as CaseFile;
    } catch (error) {
      problems.push(`${rel}: not JSON (${(error as Error).message})`);
      continue;
    }
    if (!validate(file)) {
      for (const e of validate.errors ?? [])
        problems.push(`${rel}: ${e.instancePath || "/"} ${e.message ?? "is invalid"}`);
      continue;
    }
    const topic = relative(casesDir, path)
      .replace(/\.json$/, "")
      .split(sep)
      .join("/");
    if (file.topic !== topic) problems.push(`${rel}: topic must be "${topic}"`);
    for (const spec of file.cases) {
      const id = `${topic}/${spec.name}`;
      if (seen.has(id)) problems.push(`${rel}: duplicate case ${id}`);
      seen.add(id);
      const links = [spec.spec ?? file.spec].flat();
      for (const link of links) {
        const problem = checkLink(root, link);
        if (problem) problems.push(`${id}: ${problem}`);
      }
      const wording = checkWording(id, spec.description);
      if (wording) problems.push(wording);
      cases.push({
        ...spec,
        id,
        kind: file.kind,
        profile: spec.profile ?? file.profile ?? "core",
        specLinks: links,
        file: rel,
      });
    }
  }
  const descriptions = new Map<string, string>();
  for (const c of cases) {
    const other = descriptions.get(c.description);
    if (other) problems.push(`${c.id}: same description as ${other}`);
    descriptions.set(c.description, c.id);
  }
  if (problems.length) throw new CorpusError(`invalid case corpus:\n  ${problems.join("\n  ")}`);
  return cases;
}

/** A glob (`*` any text, `?` one character) as a whole-string regular expression. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .split("")
    .map((ch) => (ch === "*" ? ".*" : ch === "?" ? "." : ch.replace(/[\\^$.|+()[\]{}]/g, "\\$&")))
    .join("");
  return new RegExp(`^${body}$`);
}

/** True when a case id or a full result id matches any of the globs. */
export function matchesAny(globs: readonly string[], ...names: string[]): boolean {
  return globs.some((glob) => {
    const re = globToRegExp(glob);
    return names.some((name) => re.test(name));
  });
}

/** An array nesting `levels` deep ([] is 1 level, [[]] is 2): case macros for depth limits. */
export function nestedArray(levels: number): unknown[] {
  let array: unknown[] = [];
  for (let level = 2; level <= levels; level++) array = [array];
  return array;
}
