// Finds the fenced code blocks of README.md and docs/**/*.md and reads the `<!-- sample: … -->`
// marker just before each one (the line before, or the one before a blank line), so every block has a language and a mode the runner acts on.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

/** Info strings → the language the runner knows them as. */
const LANGUAGES = {
  ts: "ts",
  typescript: "ts",
  js: "js",
  javascript: "js",
  python: "python",
  py: "python",
  rust: "rust",
  toml: "toml",
  sh: "sh",
  bash: "sh",
  console: "sh",
  shell: "sh",
  json: "json",
  yaml: "yaml",
  yml: "yaml",
  ini: "ini",
  text: "text",
  "": "text",
};

/** The modes a marker may name. */
export const MODES = ["run", "compile", "part-of", "shell", "output", "not-code"];

/** Languages whose blocks may be `not-code` only with a reason after the mode. */
export const CODE_LANGUAGES = new Set(["ts", "js", "python", "rust"]);

/** The mode of an unmarked block: code is type-checked, data is parsed, the rest is prose. */
export function defaultMode(lang) {
  if (CODE_LANGUAGES.has(lang)) return "compile";
  if (lang === "toml" || lang === "json") return "run";
  return "not-code";
}

/** The Markdown files the runner reads: README.md and every .md under docs/, sorted. */
export function docFiles(root) {
  const walk = (dir) =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return walk(path);
      return entry.name.endsWith(".md") ? [path] : [];
    });
  return ["README.md", ...walk("docs").sort()];
}

/**
 * Parses `<!-- sample: MODE [NAME] [key=value]... [reason] -->`. For `part-of` the first word
 * after the mode is the sample it joins; for `not-code` everything after the mode is the reason.
 */
export function parseMarker(text) {
  const m = /^<!--\s*sample:\s*([a-z-]+)\s*(.*?)\s*-->$/.exec(text.trim());
  if (!m) return undefined;
  const [, mode, rest] = m;
  const marker = { mode, attrs: {}, target: undefined, reason: "" };
  if (mode === "not-code") {
    marker.reason = rest.replace(/^[-—–:,\s]+/, "").trim();
    return marker;
  }
  const words = rest.split(/\s+/).filter(Boolean);
  if (mode === "part-of") marker.target = words.shift();
  for (const word of words) {
    const eq = word.indexOf("=");
    if (eq > 0) marker.attrs[word.slice(0, eq)] = word.slice(eq + 1);
    else marker.reason += (marker.reason ? " " : "") + word;
  }
  return marker;
}

/**
 * Every fenced block of one Markdown text: `{file, line, lang, info, mode, name, target, path,
 * reason, marked, code}` (line: 1-based line of the first code line). Problems (an unknown
 * mode, an unknown info string, a marker that is not right before a fence) go to `problems`.
 */
export function parseSamples(file, text, problems) {
  const lines = text.split("\n");
  const samples = [];
  for (let i = 0; i < lines.length; i++) {
    const marker = parseMarker(lines[i]);
    const gap = lines[i + 1]?.trim() === "" ? 2 : 1; // prettier puts a blank line after a comment
    if (marker && !/^```/.test(lines[i + gap] ?? "")) {
      problems.push(`${file}:${i + 1}: a sample marker must be right before a fence`);
    }
    const fence = /^(`{3,})\s*([\w+-]*)\s*$/.exec(lines[i]);
    if (!fence) continue;
    const close = lines.findIndex((l, j) => j > i && l.trim() === fence[1]);
    if (close < 0) {
      problems.push(`${file}:${i + 1}: unclosed code fence`);
      break;
    }
    const info = fence[2].toLowerCase();
    const lang = LANGUAGES[info];
    const mark =
      parseMarker(lines[i - 1] ?? "") ??
      (lines[i - 1]?.trim() === "" ? parseMarker(lines[i - 2] ?? "") : undefined);
    if (lang === undefined) problems.push(`${file}:${i + 1}: unknown info string "${info}"`);
    if (mark && !MODES.includes(mark.mode)) {
      problems.push(
        `${file}:${i}: unknown sample mode "${mark.mode}" (one of ${MODES.join(", ")})`,
      );
    }
    samples.push({
      file,
      line: i + 2,
      lang: lang ?? "text",
      info,
      mode: mark?.mode ?? defaultMode(lang ?? "text"),
      marked: mark !== undefined,
      name: mark?.attrs.name,
      attrs: mark?.attrs ?? {},
      path: mark?.attrs.file,
      target: mark?.target,
      reason: mark?.reason ?? "",
      code: lines.slice(i + 1, close).join("\n") + "\n",
    });
    i = close;
  }
  return samples;
}

/** Parses every doc file under `root`; paths in the result are relative to `root`. */
export function collectSamples(root, problems) {
  return docFiles(root).flatMap((path) =>
    parseSamples(
      relative(root, join(root, path)),
      readFileSync(join(root, path), "utf8"),
      problems,
    ),
  );
}

/**
 * Checks the rules that need the whole list: code marked not-code needs a reason, `part-of`
 * names an earlier sample of the same file, `output` follows a block that runs.
 */
export function checkRules(samples, problems) {
  samples.forEach((s, i) => {
    const where = `${s.file}:${s.line - 1}`;
    if (s.mode === "not-code" && CODE_LANGUAGES.has(s.lang) && !s.reason) {
      problems.push(`${where}: a ${s.lang} block marked not-code needs a reason after the mode`);
    }
    if (s.mode === "part-of") {
      const host = samples.find((o) => o.file === s.file && o.name === s.target && o !== s);
      if (!host) problems.push(`${where}: part-of "${s.target}" names no sample of ${s.file}`);
      else if (host.lang !== s.lang)
        problems.push(`${where}: part-of joins ${s.lang} to ${host.lang}`);
    }
    if (s.mode === "output") {
      const prev = samples[i - 1];
      if (!prev || prev.file !== s.file || !["shell", "run"].includes(prev.mode)) {
        problems.push(
          `${where}: an output block must follow a shell or run block of the same file`,
        );
      }
    }
    if (s.mode === "shell" && s.lang !== "sh")
      problems.push(`${where}: shell mode is for sh blocks`);
  });
}

/**
 * Joins each `part-of` block to its host: the host's `segments` list where each piece came from
 * (for mapping compiler errors back to doc lines).
 */
export function joinParts(samples) {
  for (const s of samples) s.segments = [{ file: s.file, line: s.line, lines: lineCount(s.code) }];
  for (const s of samples.filter((x) => x.mode === "part-of")) {
    const host = samples.find((o) => o.file === s.file && o.name === s.target && o !== s);
    if (!host) continue;
    host.code += s.code;
    host.segments.push(...s.segments);
  }
  return samples.filter((s) => s.mode !== "part-of");
}

function lineCount(code) {
  return code.split("\n").length - 1;
}

/** Maps line `n` (1-based) of a sample's joined code to `file:line` of the doc. */
export function docLine(sample, n) {
  let rest = n;
  for (const seg of sample.segments) {
    if (rest <= seg.lines) return `${seg.file}:${seg.line + rest - 1}`;
    rest -= seg.lines;
  }
  return `${sample.file}:${sample.line}`;
}
