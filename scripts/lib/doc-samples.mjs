// The doc sample runner: every fenced block of README.md and docs/**/*.md is classified by its
// info string and its `<!-- sample: <mode> -->` marker, then executed, type-checked or counted
// as not-code, so a sample cannot rot unnoticed. Modes (docs/README.md has the reader's view):
//   run       toml: read as rrq.toml by the config reader; json: parsed; ts/python: executed
//             (with `file=<path>`: written into the doc's project for its shell blocks)
//   compile   type-checked with a scaffold: one tsc, one py_compile + ruff, one cargo build
//             (not check: a build reuses the dependencies `npm test` has already built in
//             runners/rust/target, where check would compile them all again in its own profile)
//   part-of N joined to the sample named N (`name=N` on its marker) before it is checked
//   shell     run with bash in the doc's project directory, against a private redis-server
//   output    what the block before printed (each line, in order; `…` matches anything)
//   not-code  synopsis or data-format illustration: counted; ts/js/python/rust need a reason
// Unmarked: ts/js/python/rust compile, toml/json run, sh/yaml/text not-code.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { checkRules, collectSamples, joinParts } from "./doc-samples/parse.mjs";
import { compilePython, compileRust, compileTs } from "./doc-samples/compile.mjs";
import { runJson, runPrograms, runToml, writeProjects } from "./doc-samples/execute.mjs";

/** The Python with rrqkit installed: the repository's .venv, else RRQ_DOC_PYTHON. */
function pythonOf(root) {
  return process.env.RRQ_DOC_PYTHON ?? join(root, ".venv/bin/python");
}

/** Classifies without running anything: `{samples, problems}` (samples after part-of joins). */
export function classifyDocSamples(root) {
  const problems = [];
  const all = collectSamples(root, problems);
  checkRules(all, problems);
  return { all, samples: joinParts(all), problems };
}

/**
 * Runs every sample of the docs under `root` against the Redis at `redisUrl`. Resolves with
 * `{problems, counts, seconds, notCode}`: problems name `file:line`; counts are by what was done
 * (executed, compiled, notCode) over the blocks of the docs (part-of blocks count with their host).
 */
export async function runDocSamples({ root, redisUrl, log = () => {}, keep = false }) {
  const started = performance.now();
  const { all, samples, problems } = classifyDocSamples(root);
  const scratch = scratchDir(root);
  const python = pythonOf(root);
  const code = (lang) =>
    samples.filter((s) => s.lang === lang || (lang === "ts" && s.lang === "js"));
  const checked = (s) => ["compile", "run", "output"].includes(s.mode) || s.mode === "part-of";
  const timings = {};
  const time = async (name, step) => {
    const t = performance.now();
    await step();
    timings[name] = Math.round(performance.now() - t) / 1000;
    log(`${name}: ${timings[name]} s`);
  };

  const { bin, files } = writeProjects(root, scratch, samples.filter(runsInProject), python);
  const loose = (lang) => code(lang).filter((s) => !s.path && checked(s) && s.mode !== "output");
  const project = (ext) => files.filter((f) => ext.some((e) => f.abs.endsWith(e)));
  await time("tsc", () =>
    compileTs(root, scratch, loose("ts"), project([".ts", ".mts"]), problems),
  );
  await time("python", () =>
    compilePython(scratch, loose("python"), project([".py"]), python, ruffOf(python), problems),
  );
  await time("cargo build", () => compileRust(root, scratch, loose("rust"), problems));
  await time("toml/json", async () => {
    await runToml(
      root,
      scratch,
      code("toml").filter((s) => s.mode === "run"),
      problems,
    );
    runJson(
      code("json").filter((s) => s.mode === "run"),
      problems,
    );
  });
  let programs = 0;
  await time("programs", async () => {
    programs = await runPrograms(root, scratch, samples, bin, redisUrl, python, problems, log);
  });

  if (!keep) rmSync(scratch, { recursive: true, force: true });
  const counts = countModes(all);
  return {
    problems,
    counts: { ...counts, programs },
    timings,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * A temporary directory outside the repository (so linters never see the generated files) whose
 * node_modules resolves like the repository's, plus `rrqkit` itself, as in an application that
 * installed it.
 */
function scratchDir(root) {
  const scratch = mkdtempSync(join(tmpdir(), "rrqkit-doc-samples-"));
  const modules = join(scratch, "node_modules");
  mkdirSync(modules);
  for (const name of readdirSync(join(root, "node_modules"))) {
    if (name !== "rrqkit" && !name.startsWith("."))
      symlinkSync(join(root, "node_modules", name), join(modules, name));
  }
  symlinkSync(root, join(modules, "rrqkit"));
  writeFileSync(join(scratch, "package.json"), '{ "private": true, "type": "module" }\n');
  return scratch;
}

/** Samples that live in or run in their doc's project directory. */
function runsInProject(s) {
  return (
    Boolean(s.path) || s.mode === "shell" || (s.mode === "run" && ["ts", "python"].includes(s.lang))
  );
}

function ruffOf(python) {
  const ruff = join(python, "../ruff");
  return existsSync(ruff) ? ruff : "ruff";
}

/**
 * Blocks by what happens to them: executed (run, shell, output: parsed, run or compared),
 * compiled (compile, and part-of blocks of a compiled sample), notCode (with the list).
 */
export function countModes(all) {
  const hostMode = (s) => all.find((o) => o.file === s.file && o.name === s.target)?.mode;
  const mode = (s) => (s.mode === "part-of" ? (hostMode(s) ?? "compile") : s.mode);
  const notCode = all.filter((s) => mode(s) === "not-code");
  return {
    blocks: all.length,
    executed: all.filter((s) => ["run", "shell", "output"].includes(mode(s))).length,
    compiled: all.filter((s) => mode(s) === "compile").length,
    notCode: notCode.length,
    notCodeList: notCode.map(
      (s) => `${s.file}:${s.line} ${s.lang}${s.reason ? `: ${s.reason}` : ""}`,
    ),
  };
}

export { parseMarker, parseSamples, checkRules } from "./doc-samples/parse.mjs";
export { missingOutput } from "./doc-samples/execute.mjs";
