// Type-checks the code samples in three batches, one per language: one `tsc --noEmit`, one
// py_compile + ruff run, one `cargo build` of a scratch crate. Each sample gets its language's
// scaffold (header.ts, header.py, prelude.rs in this folder) and errors map back to doc lines.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { docLine } from "./parse.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));

/** Runs a command; returns {status, out} with stdout and stderr together. */
export function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...options });
  if (r.error) return { status: -1, out: String(r.error) };
  return { status: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** The names a TypeScript sample binds itself (imports and declarations). */
export function tsBoundNames(code) {
  const names = new Set();
  for (const m of code.matchAll(/import\s+(?:type\s+)?([\w$]+)?\s*,?\s*(?:\{([^}]*)\})?\s*from/g)) {
    if (m[1]) names.add(m[1]);
    for (const part of (m[2] ?? "").split(",")) {
      const name = part
        .replace(/^\s*type\s+/, "")
        .split(/\s+as\s+/)
        .pop()
        ?.trim();
      if (name) names.add(name);
    }
  }
  for (const m of code.matchAll(
    /^\s*(?:export\s+)?(?:const|let|var|async\s+function|function|class)\s+([\w$]+)/gm,
  ))
    names.add(m[1]);
  for (const m of code.matchAll(/(?:const|let|var)\s*\{([^}]*)\}\s*=/g))
    for (const part of m[1].split(",")) names.add(part.split(":").pop().trim());
  return names;
}

/** The header lines whose one bound name the sample does not bind itself. */
function tsScaffold(code) {
  const own = tsBoundNames(code);
  return readFileSync(join(HERE, "header.ts.txt"), "utf8")
    .split("\n")
    .filter((line) => {
      const m = /^import \{ (\w+) \}|^declare (?:const|function|class) (\w+)/.exec(line);
      return m ? !own.has(m[1] ?? m[2]) : false;
    });
}

/** tsc over every TypeScript sample (and the TypeScript files of the doc projects). */
export function compileTs(root, scratch, samples, projectFiles, problems) {
  const dir = join(scratch, "ts");
  mkdirSync(dir, { recursive: true });
  const files = new Map();
  samples.forEach((s, i) => {
    const name = `s${i}.${s.lang === "js" ? "mjs" : "ts"}`;
    const head = s.lang === "js" ? [] : tsScaffold(s.code);
    writeFileSync(join(dir, name), `${[...head, s.code].join("\n")}export {};\n`);
    files.set(name, { sample: s, offset: head.length });
  });
  copyFileSync(join(HERE, "ambient.d.ts.txt"), join(dir, "ambient.d.ts"));
  const include = ["*.ts", "*.mjs", ...projectFiles.map((p) => relative(dir, p.abs))];
  const tsconfig = {
    extends: join(root, "tsconfig.base.json"),
    compilerOptions: { noEmit: true, allowJs: true, types: ["node"], rootDir: scratch },
    include,
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
  const tsc = join(root, "node_modules/typescript/bin/tsc");
  const r = run(process.execPath, [tsc, "-p", "tsconfig.json", "--pretty", "false"], { cwd: dir });
  for (const line of r.out.split("\n").filter((l) => /error TS/.test(l))) {
    const m = /^(.*?)\((\d+),\d+\): (error .*)$/.exec(line);
    if (!m) {
      problems.push(`tsc: ${line}`);
      continue;
    }
    problems.push(`${where(resolve(dir, m[1]), Number(m[2]), dir, files, projectFiles)}: ${m[3]}`);
  }
  if (r.status !== 0 && !problems.length) problems.push(`tsc failed: ${r.out.slice(0, 2000)}`);
}

/** Maps a line of a scratch file back to its doc line. */
function where(abs, line, dir, files, projectFiles) {
  const hit = files.get(relative(dir, abs));
  if (hit) return docLine(hit.sample, line - hit.offset);
  const project = projectFiles.find((p) => p.abs === abs);
  return project ? docLine(project.sample, line) : abs;
}

/** py_compile and ruff (undefined names, syntax) over every Python sample. */
export function compilePython(scratch, samples, projectFiles, python, ruff, problems) {
  const dir = join(scratch, "py");
  mkdirSync(dir, { recursive: true });
  const head = readFileSync(join(HERE, "header.py"), "utf8");
  const files = new Map();
  samples.forEach((s, i) => {
    const body = s.code.replace(/^(?=.)/gm, "    ");
    const path = join(dir, `s${i}.py`);
    writeFileSync(path, `${head}\n\nasync def _sample() -> None:\n${body}    pass\n`);
    files.set(path, { sample: s, offset: head.split("\n").length + 2 });
  });
  for (const p of projectFiles) files.set(p.abs, { sample: p.sample, offset: 0 });
  const paths = [...files.keys()];
  if (!paths.length) return;
  const compile = run(python, [
    "-c",
    "import py_compile,sys\nfor f in sys.argv[1:]:\n  try: py_compile.compile(f, doraise=True)\n  except py_compile.PyCompileError as e: print(e.msg)",
    ...paths,
  ]);
  const lint = run(ruff, [
    "check",
    "--no-cache",
    "--isolated",
    "--select",
    "F821,E9",
    "--output-format",
    "concise",
    ...paths,
  ]);
  for (const line of `${compile.out}\n${lint.out}`.split("\n")) {
    const m = /(\/\S+?\.py)"?,? (?:line )?(\d+)/.exec(line) ?? /^(\S+\.py):(\d+):/.exec(line);
    const hit = m && files.get(m[1]);
    if (hit)
      problems.push(`${docLine(hit.sample, Number(m[2]) - hit.offset)}: ${line.replace(m[1], "")}`);
  }
  if (lint.status !== 0 && !/Found \d+ error/.test(lint.out))
    problems.push(`ruff failed: ${lint.out}`);
}

/**
 * One scratch crate with each Rust sample as the body of an async fn; one `cargo build` (see
 * doc-samples.mjs for why not check).
 */
export function compileRust(root, scratch, samples, problems) {
  if (!samples.length) return;
  const dir = join(scratch, "rust");
  mkdirSync(join(dir, "src"), { recursive: true });
  const crate = join(root, "runners/rust");
  writeFileSync(
    join(dir, "Cargo.toml"),
    [
      "[package]",
      'name = "rrqkit-doc-samples"',
      'version = "0.0.0"',
      'edition = "2021"',
      "publish = false",
      "[dependencies]",
      `rrqkit = { path = ${JSON.stringify(crate)}, features = ["testing"] }`,
      'serde_json = { version = "1", features = ["preserve_order"] }',
      'tokio = { version = "1.40", features = ["macros", "rt-multi-thread"] }',
      "[workspace]",
    ].join("\n"),
  );
  copyFileSync(join(crate, "Cargo.lock"), join(dir, "Cargo.lock"));
  copyFileSync(join(HERE, "prelude.rs"), join(dir, "src/prelude.rs"));
  const mods = ["#![allow(unused, clippy::all)]", "mod prelude;"];
  const files = new Map();
  const open = [
    "#![allow(unused, unreachable_code, clippy::all)]",
    "use crate::prelude::*;",
    "pub async fn sample(producer: Producer, mut runner: Runner, params: Map<String, Value>,",
    "    job_id: String, config: ProducerConfig) -> SampleResult {",
  ];
  samples.forEach((s, i) => {
    mods.push(`mod s${i};`);
    writeFileSync(join(dir, `src/s${i}.rs`), `${open.join("\n")}\n${s.code}\nOk(())\n}\n`);
    files.set(`src/s${i}.rs`, { sample: s, offset: open.length });
  });
  writeFileSync(join(dir, "src/lib.rs"), `${mods.join("\n")}\n`);
  const env = { ...process.env, CARGO_TARGET_DIR: join(crate, "target") };
  const r = run("cargo", ["build", "--offline", "--quiet", "--message-format", "short"], {
    cwd: dir,
    env,
  });
  for (const line of r.out.split("\n")) {
    const m = /^(src\/s\d+\.rs):(\d+):\d+: (error.*)$/.exec(line);
    const hit = m && files.get(m[1]);
    if (hit) problems.push(`${docLine(hit.sample, Number(m[2]) - hit.offset)}: ${m[3]}`);
  }
  if (r.status !== 0 && !/^src\/s\d+\.rs:\d+:\d+: error/m.test(r.out))
    problems.push(`cargo build failed: ${r.out.slice(-3000)}`);
}
