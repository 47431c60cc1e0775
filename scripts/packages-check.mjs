#!/usr/bin/env node
// The packaging check (`npm test` step `packages`; alone: `node scripts/packages-check.mjs`).
// Builds the packages a user installs the usual way, outside this repository, then uses only
// them in fresh projects in a temporary directory:
//   1. every package is at one version, with README, LICENSE and a CHANGELOG entry
//      (scripts/lib/package-builds.mjs);
//   2. `npm pack` of `rrqkit` and `@rrqkit/runner`; `python -m build` of the Python sdist and
//      wheel (build and hatchling from PyPI in a throw-away venv); `cargo package` of the crate,
//      extracted; each artefact's contents checked (typing marker, Lua scripts, documents);
//   3. a fresh application directory: `npm install` of the two tarballs, a new venv with
//      `pip install <wheel>` (no source directory), and a `cargo new` project depending on the
//      extracted crate (its target directory shared with runners/rust, so only the two crates
//      compile), with a runner binary and an enqueue binary (scripts/lib/package-apps.mjs);
//      steps 2 and 3 run as three tracks side by side (npm, Python, Rust);
//   4. `npx rrq worker run` (the packed `rrq` bin) serving queues routed to the wheel's
//      `rrqkit-runner`, the Rust binary and a Node handler; one job per language enqueued with
//      that language's installed producer must complete with the expected result; the worker
//      then stops gracefully.
// It prints what it does, exits 1 with the reason on any failure, and always stops the worker
// and Redis and removes the temporary directory (a detached reaper does it if the check dies).
//
// The `rrqkit` tarball needs dist/ (`npm run build` first; `npm test` builds before this step).
// RRQKIT_RUST_TARGET_DIR overrides the shared Cargo target directory, as in runners/rust/ci.sh.
import { spawn } from "node:child_process";
import {
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
} from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CheckFailed,
  fail,
  killRunningSteps,
  reapStepsWith,
  runEnqueue,
  runStep,
  sayer,
  userEnv,
} from "./lib/check-steps.mjs";
import { RUST_APP, RUST_ENQUEUE, writeApp, writeRustApp } from "./lib/package-apps.mjs";
import {
  buildWheel,
  checkPackageDocs,
  findPython,
  packageCrate,
  packNpm,
} from "./lib/package-builds.mjs";
import { stopGroup } from "./lib/process-group.mjs";
import { startReaper } from "./lib/reaper.mjs";
import { startTcpRedis } from "./lib/tcp-redis.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const say = sayer("packages");
const cleanups = [];

/**
 * The npm track: packs both packages, then installs the tarballs into the application
 * directory (`npm init -y`, `npm install`).
 */
async function nodeTrack(tmp, app, env) {
  const tarballs = await packNpm(root, join(tmp, "npm"), say, env);
  await runStep(say, "npm", ["init", "-y"], { cwd: app, env });
  await runStep(say, "npm", ["install", ...tarballs], { cwd: app, env });
}

/**
 * The Python track: builds the sdist and wheel while the application's new virtualenv is
 * created, then installs the wheel (and only the wheel) into it.
 */
async function pythonTrack(tmp, app, env) {
  const python = findPython();
  const [wheel] = await Promise.all([
    buildWheel(root, join(tmp, "python"), tmp, python, say, env),
    runStep(say, python, ["-m", "venv", ".venv"], { cwd: app, env }),
  ]);
  say(`wheel ${basename(wheel)} holds py.typed, the Lua scripts and LICENSE`);
  await runStep(say, ".venv/bin/pip", ["install", "--quiet", wheel], { cwd: app, env });
}

/**
 * The Rust track: packages the crate, extracts it, and builds a `cargo new` project that
 * depends on the extracted crate, its binaries copied into `dir`.
 */
async function rustTrack(tmp, dir, version, env) {
  const targetDir = process.env.RRQKIT_RUST_TARGET_DIR ?? join(root, "runners", "rust", "target");
  const crate = await packageCrate(root, join(tmp, "crates"), targetDir, version, say, env);
  say(`crate extracted to ${crate}: src, the vendored Lua scripts, README, LICENSE, CHANGELOG`);
  await runStep(say, "cargo", ["new", "--bin", "--vcs", "none", "--name", RUST_APP, dir], { env });
  mkdirSync(join(dir, "src", "bin"));
  say(`wrote ${writeRustApp(dir, crate).join(", ")} in ${dir} (rrqkit = { path = the crate })`);
  // The crate's own lock file pins the versions the shared target directory was built with;
  // cargo adds this project's entry to it.
  copyFileSync(join(crate, "Cargo.lock"), join(dir, "Cargo.lock"));
  await runStep(say, "cargo", ["build", "--bins"], {
    cwd: dir,
    env: { ...env, CARGO_TARGET_DIR: targetDir },
    timeoutSeconds: 900,
  });
  // Copied out of the shared target directory: the application uses nothing in the repository.
  for (const name of [RUST_APP, RUST_ENQUEUE])
    copyFileSync(join(targetDir, "debug", name), join(dir, name));
}

/** Starts `npx rrq worker run` in its own process group; resolves once it is serving. */
async function startWorker(app, env, reaper, logPath) {
  const log = createWriteStream(logPath);
  await new Promise((resolve) => log.once("open", resolve));
  say("$ npx rrq worker run   (in the background, in the application directory)");
  const child = spawn("npx", ["rrq", "worker", "run"], {
    cwd: app,
    env,
    detached: true,
    stdio: ["ignore", log, log],
  });
  reaper.group(child.pid, 20);
  let running = true;
  const exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => {
      running = false;
      resolve(code ?? signal);
    }),
  );
  const stop = async () => {
    const graceful = await stopGroup(child.pid, 20);
    log.end();
    return graceful;
  };
  cleanups.push(stop);
  for (let i = 0; i < 600 && running; i++) {
    if (readFileSync(logPath, "utf8").includes("worker starting")) return { exited, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write(readFileSync(logPath, "utf8").slice(-4000));
  return fail(running ? "the worker did not start within 60 s" : "the worker exited at start");
}

async function check() {
  if (!existsSync(join(root, "dist", "src", "index.js")))
    fail("the repository is not built (run `npm run build` first)");
  const reaper = startReaper();
  cleanups.push(async () => reaper.dismiss());
  reapStepsWith(reaper);
  cleanups.push(async () => killRunningSteps());
  const tmp = mkdtempSync(join(tmpdir(), "rrqkit-packages-"));
  reaper.dir(tmp);
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  const env = userEnv();
  const version = checkPackageDocs(root);
  say(`every package is at ${version} with README, LICENSE and a CHANGELOG entry`);
  const redis = await startTcpRedis(tmp);
  reaper.group(redis.pid, 5);
  cleanups.push(async () => redis.stop());
  const [app, rustDir] = [join(tmp, "app"), join(tmp, "rust-app")];
  mkdirSync(app);
  const rust = { runner: join(rustDir, RUST_APP), enqueue: join(rustDir, RUST_ENQUEUE) };
  say(`wrote ${writeApp(app, redis.dsn, rust.runner).join(", ")} in ${app}`);
  say(`building and installing the npm, Python and Rust packages side by side, in ${tmp}`);
  await Promise.all([
    nodeTrack(tmp, app, env),
    pythonTrack(tmp, app, env),
    rustTrack(tmp, rustDir, version, env),
  ]);

  const logPath = join(tmp, "worker.log");
  const worker = await startWorker(app, env, reaper, logPath);
  say("worker started; one job each from the Python, Rust and Node producers");
  const codes = await Promise.race([
    Promise.all([
      runEnqueue(say, "python", ".venv/bin/python", ["enqueue.py"], app, env),
      runEnqueue(say, "rust", rust.enqueue, [], app, env),
      runEnqueue(say, "node", "node", ["enqueue.mjs"], app, env),
    ]),
    worker.exited.then((code) => fail(`the worker exited while jobs were pending (exit ${code})`)),
  ]);
  if (codes.some((code) => code !== 0)) {
    process.stdout.write(
      `--- worker log (last lines) ---\n${readFileSync(logPath, "utf8").slice(-3000)}\n`,
    );
    fail("not every job completed with the expected result (see the lines above)");
  }
  say("all three jobs completed; stopping the worker");
  if (!(await worker.stop())) fail("the worker did not stop within 20 s of SIGTERM");
}

async function cleanUp() {
  for (const step of cleanups.reverse()) await step().catch(() => {});
  cleanups.length = 0;
}

const started = Date.now();
process.on("SIGINT", () => void cleanUp().then(() => process.exit(130)));
try {
  await check();
  await cleanUp();
  say(`passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
} catch (error) {
  await cleanUp();
  say(`FAILED: ${error instanceof CheckFailed ? error.message : (error?.stack ?? error)}`);
  process.exit(1);
}
