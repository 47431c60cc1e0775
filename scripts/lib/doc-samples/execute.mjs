// Runs the samples that run: rrq.toml fragments through the config reader, JSON through
// JSON.parse, `run` programs with tsx or Python, and each doc's `shell` blocks in a project
// directory of its own (holding the doc's `file=` samples) against a private redis-server.
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";
import { run } from "./compile.mjs";

/** `/path/to/rrqkit` in a sample stands for the checkout the runner runs in. */
export function fillPlaceholders(code, root) {
  return code.replaceAll("/path/to/rrqkit", root);
}

/** A Cargo.toml fragment (dependency tables), not an rrq.toml one. */
const CARGO_TABLES = /^\[(package|dependencies|dev-dependencies|features|workspace)\]/m;

/**
 * Parses each TOML sample as an rrq.toml with the config reader (every key validated); a marker's
 * `runners=a,b` adds minimal runner tables the fragment refers to. Cargo.toml fragments are
 * only parsed as TOML.
 */
export async function runToml(root, scratch, samples, problems) {
  const load = (path) => import(pathToFileURL(join(root, "dist/src/config", path)).href);
  const { loadConfig, parseConfigText } = await load("load.js");
  const dir = join(scratch, "toml");
  mkdirSync(dir, { recursive: true });
  samples.forEach((s, i) => {
    const path = join(dir, `s${i}.toml`);
    const runners = (s.attrs?.runners ?? "").split(",").filter(Boolean);
    const extra = runners.map((r) => `\n[rrq.runners.${r}]\ncmd = ["true"]\n`).join("");
    writeFileSync(path, fillPlaceholders(s.code, root) + extra);
    try {
      if (CARGO_TABLES.test(s.code)) parseConfigText(s.code, path);
      else loadConfig({ path, env: {}, cwd: dir });
    } catch (error) {
      problems.push(`${s.file}:${s.line}: rrq.toml fragment refused: ${firstLines(error)}`);
    }
  });
}

/** Parses each JSON sample. */
export function runJson(samples, problems) {
  for (const s of samples) {
    try {
      JSON.parse(s.code);
    } catch (error) {
      problems.push(`${s.file}:${s.line}: invalid JSON: ${firstLines(error)}`);
    }
  }
}

function firstLines(error) {
  return String(error instanceof Error ? error.message : error)
    .split("\n")
    .slice(0, 6)
    .join(" | ");
}

/** The directory a doc's project lives in, e.g. docs/getting-started/node.md → docs-getting-started-node. */
export function projectDir(scratch, file) {
  return join(scratch, "projects", file.replace(/\.md$/, "").replaceAll("/", "-"));
}

/**
 * Writes every `file=` sample into its doc's project (placeholders filled) and gives each project
 * a `.venv` (the repository's, with rrqkit installed) and `rrq`/`rrqkit` on PATH.
 */
export function writeProjects(root, scratch, samples, python) {
  const bin = join(scratch, "bin");
  mkdirSync(bin, { recursive: true });
  for (const name of ["rrq", "rrqkit"]) {
    writeFileSync(join(bin, name), `#!/bin/sh\nexec node ${join(root, "bin/rrq.js")} "$@"\n`, {
      mode: 0o755,
    });
  }
  const files = [];
  for (const s of samples) {
    const dir = projectDir(scratch, s.file);
    if (!files.some((f) => f.dir === dir)) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      symlinkSync(dirname(dirname(python)), join(dir, ".venv"));
    }
    if (!existsSync(join(dir, "rrq.toml"))) writeFileSync(join(dir, "rrq.toml"), DEFAULT_CONFIG);
    if (!s.path) continue;
    const abs = join(dir, s.path);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, fillPlaceholders(s.code, root));
    files.push({ dir, abs, sample: s });
  }
  return { bin, files };
}

/** The rrq.toml of a project whose doc writes none (RRQ_REDIS_DSN points it at the private Redis). */
const DEFAULT_CONFIG = '[rrq]\nredis_dsn = "redis://localhost:6379/0"\n';

/**
 * Whether `python`'s rrqkit registered its pytest plugin (entry point `pytest11`). An editable
 * install made before the plugin existed has not; the shell blocks then name it in PYTEST_PLUGINS,
 * as the entry point would (naming it as well would register it twice).
 */
function pytestPluginRegistered(python) {
  const probe = `from importlib.metadata import entry_points
print(any(e.value == "${PYTEST_PLUGIN}" for e in entry_points(group="pytest11")))`;
  return run(python, ["-c", probe]).out.trim() === "True";
}

const PYTEST_PLUGIN = "rrqkit.testing.pytest_plugin";

/** The environment of a shell block: private Redis, rrq on PATH, the shared cargo target. */
function shellEnv(root, bin, redisUrl, python) {
  const env = { ...process.env };
  for (const key of Object.keys(env))
    if (key.startsWith("RRQ_") || key.startsWith("VITEST")) delete env[key];
  return {
    ...env,
    PATH: `${bin}:${process.env.PATH}`,
    RRQ_REDIS_DSN: redisUrl,
    CARGO_TARGET_DIR: join(root, "runners/rust/target"),
    CARGO_NET_OFFLINE: "true",
    NODE_OPTIONS: "",
    ...(pytestPluginRegistered(python) ? {} : { PYTEST_PLUGINS: PYTEST_PLUGIN }),
  };
}

/**
 * Runs each doc's `shell` and `run` blocks in order, in its project directory; an `output` block
 * right after one must match what it printed (line by line, in order, `…` matching anything).
 * Returns how many blocks ran.
 */
export async function runPrograms(root, scratch, samples, bin, redisUrl, python, problems, log) {
  const base = shellEnv(root, bin, redisUrl, python);
  const dbs = new Map(); // doc file → its own database, emptied before its first block
  let ran = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    if (!(s.mode === "shell" || (s.mode === "run" && !s.path && ["ts", "python"].includes(s.lang))))
      continue;
    if (!dbs.has(s.file)) dbs.set(s.file, await emptyDatabase(redisUrl, 1 + (dbs.size % 15)));
    const env = { ...base, RRQ_REDIS_DSN: dbs.get(s.file) };
    const cwd = projectDir(scratch, s.file);
    mkdirSync(cwd, { recursive: true });
    const started = performance.now();
    const r = runOne(root, cwd, s, env);
    const seconds = (performance.now() - started) / 1000;
    if (seconds > 2) log(`${s.file}:${s.line}: ${seconds.toFixed(1)} s`);
    ran++;
    if (r.status !== 0) {
      problems.push(`${s.file}:${s.line}: exited ${r.status}:\n${r.out.slice(-3000)}`);
      continue;
    }
    const next = samples[i + 1];
    if (next?.mode === "output" && next.file === s.file) {
      const miss = missingOutput(next.code, r.out);
      if (miss)
        problems.push(
          `${next.file}:${next.line}: output line not printed: ${miss}\n--- got:\n${r.out.slice(-2000)}`,
        );
    }
  }
  return ran;
}

/** `redisUrl` with database `db`, flushed. */
async function emptyDatabase(redisUrl, db) {
  const url = new URL(redisUrl);
  url.pathname = `/${db}`;
  const { Redis } = await import("ioredis");
  const client = new Redis(url.href, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    await client.flushdb();
  } finally {
    client.disconnect();
  }
  return url.href;
}

function runOne(root, cwd, s, env) {
  const options = { cwd, env, timeout: 120_000 };
  if (s.mode === "shell") {
    return run("bash", ["-e", "-o", "pipefail", "-c", fillPlaceholders(s.code, root)], options);
  }
  const file = join(cwd, s.lang === "ts" ? `run-${s.line}.ts` : `run_${s.line}.py`);
  writeFileSync(file, fillPlaceholders(s.code, root));
  if (s.lang === "ts") return run(process.execPath, ["--import", "tsx", file], options);
  return run(join(cwd, ".venv/bin/python"), [file], options);
}

/** The first expected line that is missing from `out` (in order), or undefined. */
export function missingOutput(expected, out) {
  const got = out.split("\n");
  let at = 0;
  for (const line of expected
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)) {
    const pattern = new RegExp(line.split("…").map(escape).join(".*"));
    const found = got.findIndex((g, j) => j >= at && pattern.test(g));
    if (found < 0) return line;
    at = found + 1;
  }
  return undefined;
}

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
