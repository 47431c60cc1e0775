#!/usr/bin/env node
// `npm test`: everything, on a fresh machine. Uses only Node built-ins until dependencies are
// installed. Steps (each prints a header; the first failure stops the run):
//   setup    npm packages, redis-server and chromium (apt-get when missing; chromium runs the
//            dashboard browser tests)
//   checks   generated types, golden vectors and vendored Lua copies are in sync
//   build    TypeScript (runner package, then orchestrator)
//   newuser  scripts/new-user-check.mjs: the README's install commands, run in a fresh directory
//            outside the repository, give a working two-queue app (Python and Node handlers,
//            enqueues from JavaScript and Python, a worker started without --queue)
//   lint     tsc over tests/bench/chaos, ESLint (type-aware, no-floating-promises), Prettier
//   ts       Vitest: protocol, runner, producer, orchestrator, daemon (after preparing the Python
//            virtualenv and the Rust example runners that some of these tests start)
//   python   runners/python/ci.sh (virtualenv at .venv, ruff, pytest)
//   rust     runners/rust/ci.sh (fmt, clippy -D warnings, cargo test)
//   packages scripts/packages-check.mjs: the packed npm tarballs, the built Python wheel and the
//            packaged Rust crate, installed into fresh projects outside the repository, each
//            run one job end to end through `npx rrq worker run` (after `rust`: the crate's
//            dependencies are already compiled in runners/rust/target, which it shares)
//   start    the quickstart (`npm start -- --once`) completes its demo jobs; the enqueue line it
//            prints works, one Ctrl-C stops it gracefully, a killed start leaves no worker
//   conformance  `rrq conformance --binding all,rrq`: every binding over every transport and
//            encoding, plus RRQ interop
//   chaos    `npm run chaos -- --quick`: every fault-injection scenario once, invariants checked
//   bench    `npm run bench -- --quick`: every benchmark scenario at small sizes completes and
//            accounts for every job (correctness only; no timing is checked)
// `npm test -- --only ts,python` runs a subset; `--skip rust` leaves steps out.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureRedisServer } from "./lib/ensure-redis.mjs";
import { ensureChromium } from "./lib/ensure-chromium.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const listArg = (flag) => {
  const i = args.indexOf(flag);
  return i >= 0 && args[i + 1] ? new Set(args[i + 1].split(",")) : undefined;
};
const only = listArg("--only");
const skip = listArg("--skip") ?? new Set();
const wanted = (step) => (!only || only.has(step)) && !skip.has(step);

function run(label, command, commandArgs, options = {}) {
  const started = Date.now();
  process.stdout.write(`\n▶ ${label}: ${command} ${commandArgs.join(" ")}\n`);
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: "inherit", ...options });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.status !== 0) {
    process.stderr.write(
      `\n✗ ${label} failed after ${seconds}s (exit ${result.status ?? result.signal})\n`,
    );
    process.exit(1);
  }
  process.stdout.write(`✓ ${label} (${seconds}s)\n`);
}

/** Vendored copies of the producer Lua scripts must equal src/store/lua byte for byte. */
function checkVendoredLua() {
  const source = join(root, "src", "store", "lua");
  const copies = [
    join(root, "runners", "python", "src", "rrqkit", "lua"),
    join(root, "runners", "rust", "lua"),
  ];
  const problems = [];
  for (const dir of copies.filter(existsSync)) {
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".lua"))) {
      const original = join(source, file);
      if (!existsSync(original)) problems.push(`${dir}/${file} has no original in src/store/lua`);
      else if (!readFileSync(original).equals(readFileSync(join(dir, file))))
        problems.push(`${dir}/${file} differs from src/store/lua/${file}`);
    }
  }
  if (problems.length) {
    process.stderr.write(`vendored Lua scripts drifted:\n  ${problems.join("\n  ")}\n`);
    process.exit(1);
  }
  process.stdout.write("✓ vendored Lua copies match src/store/lua\n");
}

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
if (wanted("setup")) {
  if (!existsSync(join(root, "node_modules", ".package-lock.json"))) {
    run("install npm packages", npm, ["ci", "--no-audit", "--no-fund"]);
  }
  ensureRedisServer();
  ensureChromium();
}
if (wanted("checks")) {
  run("generated types in sync with schemas/", "node", ["scripts/gen-types.mjs", "--check"]);
  run("golden vectors in sync with their generator", "node", [
    "scripts/gen-vectors.mjs",
    "--check",
  ]);
  checkVendoredLua();
}
if (["build", "newuser", "packages", "ts", "start", "conformance", "chaos", "bench"].some(wanted))
  run("build", npm, ["run", "build", "--silent"]);
if (wanted("newuser"))
  run("new user: install outside the repository as the README says", "node", [
    "scripts/new-user-check.mjs",
  ]);
if (wanted("lint")) {
  run("type-check tests, benchmarks and tools", "npx", [
    "tsc",
    "-p",
    "tsconfig.test.json",
    "--noEmit",
  ]);
  run("eslint", "npx", ["eslint", "--max-warnings=0", "."]);
  run("prettier", "npx", ["prettier", "--check", "."]);
}
if (wanted("ts")) {
  // Some TypeScript tests drive real Python and Rust runners (error tracebacks, interop): the
  // virtualenv and the Rust example binaries must exist first; the python and rust steps below
  // reuse both.
  run("Python virtualenv for the runner tests", "bash", ["runners/python/ci.sh", "--install-only"]);
  run("Rust example runners for the runner tests", "bash", ["runners/rust/ci.sh", "--build-only"]);
  run("TypeScript tests", "npx", ["vitest", "run"]);
}
if (wanted("python") && existsSync(join(root, "runners", "python", "ci.sh")))
  run("Python binding", "bash", ["runners/python/ci.sh"]);
if (wanted("rust") && existsSync(join(root, "runners", "rust", "ci.sh")))
  run("Rust binding", "bash", ["runners/rust/ci.sh"]);
// After rust: the crate check builds in runners/rust/target, where ci.sh (or the ts step's
// example build) has already compiled every dependency, so it does not compile them cold.
if (wanted("packages"))
  run("packages: npm tarballs, wheel and crate installed into fresh projects", "node", [
    "scripts/packages-check.mjs",
  ]);
if (wanted("start")) {
  run("quickstart (npm start -- --once)", "node", ["scripts/start.mjs", "--once"]);
  run("quickstart: its enqueue line, Ctrl-C and a killed start", "node", [
    "scripts/check-start-signals.mjs",
  ]);
}
if (wanted("conformance"))
  run("conformance, every binding + RRQ interop", "node", [
    "bin/rrq.js",
    "conformance",
    "--binding",
    "all,rrq",
  ]);
if (wanted("chaos"))
  run("fault injection, quick", npm, ["run", "chaos", "--silent", "--", "--quick"]);
if (wanted("bench"))
  run("benchmarks, quick (correctness only)", npm, ["run", "bench", "--silent", "--", "--quick"]);
process.stdout.write("\nAll checks passed.\n");
