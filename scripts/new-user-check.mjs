#!/usr/bin/env node
// The "new user" check (`npm test` step `newuser`; alone: `node scripts/new-user-check.mjs`).
// From a fresh temporary directory outside the repository it installs the orchestrator and the
// Python runner with the commands of the README block marked `new-user-install` (read from the
// README itself, so the README and this check cannot drift apart), writes a two-queue app
// (scripts/lib/new-user-app.mjs: Python handlers on `emails`, Node handlers on `images`), starts
// the worker with the README's command (no --queue flag), enqueues one job to each queue from
// JavaScript and from Python with the installed packages, and waits for all four to complete.
// It prints what it does, exits 1 with the reason on any failure, and always stops the worker
// and Redis and removes the temporary directory.
//
// What it changes in the README's commands, and why:
// - `/path/to/rrqkit`, `/path/to/my-app` and `/tmp/rrqkit-packages` become the repository, the
//   temporary app directory and a temporary package directory;
// - `npm ci && npm run build` is skipped: `npm test` built the repository just before, and
//   `npm ci` would replace the node_modules that other checks are using (dist/ must exist);
// - `python3` is the repository's .venv interpreter (a Python ≥ 3.11 known to be there);
// - npm runs with prefer-offline (its cache already holds every dependency) and without the
//   audit/fund/update notices, and inherited npm_*, RRQ_* and virtualenv variables are dropped,
//   so the commands behave as in a new user's shell.
import { spawn, spawnSync } from "node:child_process";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
} from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { JOB_WAIT_SECONDS, writeNewUserApp } from "./lib/new-user-app.mjs";
import { runEnqueue } from "./lib/check-steps.mjs";
import { readmeCommands } from "./lib/readme-block.mjs";
import { stopGroup } from "./lib/process-group.mjs";
import { startReaper } from "./lib/reaper.mjs";
import { startTcpRedis } from "./lib/tcp-redis.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const say = (text) => process.stdout.write(`[new-user] ${text}\n`);
const cleanups = [];

class CheckFailed extends Error {}
const fail = (reason) => {
  throw new CheckFailed(reason);
};

/** The environment of a new user's shell: no npm, RRQ or virtualenv variables of ours. */
function userEnv(shimDir) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|RRQ_|VIRTUAL_ENV$|PYTHONPATH$|INIT_CWD$)/i.test(key)) continue;
    env[key] = value;
  }
  return {
    ...env,
    PATH: `${shimDir}:${process.env.PATH}`,
    npm_config_prefer_offline: "true",
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
    PIP_DISABLE_PIP_VERSION_CHECK: "1",
  };
}

/** The README's install commands with the placeholders filled in; the worker line apart. */
function installPlan(app, packages) {
  const lines = readmeCommands(join(root, "README.md"), "new-user-install").map((line) =>
    line
      .replaceAll("/tmp/rrqkit-packages", packages)
      .replaceAll("/path/to/my-app", app)
      .replaceAll("/path/to/rrqkit", root),
  );
  const workerLines = lines.filter((line) => /\bworker run\b/.test(line));
  if (workerLines.length !== 1)
    fail(
      `the README block new-user-install must have one 'worker run' line, not ${workerLines.length}`,
    );
  return {
    steps: lines.filter((line) => !workerLines.includes(line) && !/^npm ci\b/.test(line)),
    worker: workerLines[0],
  };
}

/** Runs the install steps in order (tracking `cd`), printing each; output only on failure. */
function install(steps, env) {
  let cwd = root;
  for (const line of steps) {
    const cd = /^cd\s+(\S+)$/.exec(line);
    if (cd) {
      mkdirSync(cd[1], { recursive: true }); // the README's app directory exists for a user
      cwd = cd[1];
      say(`$ ${line}`);
      continue;
    }
    const started = Date.now();
    const result = spawnSync("bash", ["-c", line], { cwd, env, encoding: "utf8" });
    say(`$ ${line}   (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    if (result.status !== 0) {
      process.stdout.write(`${result.stdout}${result.stderr}`.slice(-4000));
      fail(`the README command \`${line}\` failed (exit ${result.status ?? result.signal})`);
    }
  }
}

/**
 * Starts the README's worker command in its own process group, output to `logPath`; resolves
 * to `{ exited }` (a promise of its exit code) once it logs "worker starting".
 */
async function startWorker(line, app, env, reaper, logPath) {
  const log = createWriteStream(logPath);
  await new Promise((resolve) => log.once("open", resolve));
  const child = spawn("bash", ["-c", `exec ${line}`], {
    cwd: app,
    env,
    detached: true,
    stdio: ["ignore", log, log],
  });
  reaper.group(child.pid, 20);
  const exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal)),
  );
  let running = true;
  void exited.then(() => (running = false));
  cleanups.push(async () => {
    // The whole group (npx, its `sh -c rrqkit`, the worker): sh passes no signal on, so the
    // worker gets exactly this one, a graceful stop. Waits for the worker itself, not just npx.
    if (!(await stopGroup(child.pid, 20))) say("the worker did not stop within 20 s; killed it");
    log.end();
  });
  for (let i = 0; i < 600 && running; i++) {
    if (readFileSync(logPath, "utf8").includes("worker starting")) return { exited };
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write(readFileSync(logPath, "utf8").slice(-4000));
  return fail(
    running ? "the worker did not say 'worker starting' within 60 s" : "the worker exited at start",
  );
}

async function check() {
  if (
    !existsSync(join(root, "dist", "src", "index.js")) ||
    !existsSync(join(root, "runners", "node", "dist"))
  )
    fail("the repository is not built (run `npm run build` first)");
  const python = join(root, ".venv", "bin", "python");
  if (!existsSync(python)) {
    say("no .venv yet: preparing it with runners/python/ci.sh --install-only");
    const made = spawnSync("bash", ["runners/python/ci.sh", "--install-only"], {
      cwd: root,
      stdio: "inherit",
    });
    if (made.status !== 0 || !existsSync(python))
      fail("could not prepare .venv (runners/python/ci.sh)");
  }
  const reaper = startReaper();
  cleanups.push(async () => reaper.dismiss());
  const tmp = mkdtempSync(join(tmpdir(), "rrqkit-new-user-"));
  reaper.dir(tmp);
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  const [app, packages, shims] = ["my-app", "packages", "bin"].map((name) => join(tmp, name));
  mkdirSync(packages);
  mkdirSync(shims);
  symlinkSync(python, join(shims, "python3"));
  const env = userEnv(shims);
  say(`installing as the README says, in ${tmp}`);
  const plan = installPlan(app, packages);
  install(plan.steps, env);

  const redis = await startTcpRedis(tmp);
  reaper.group(redis.pid, 5);
  cleanups.push(async () => redis.stop());
  say(`wrote ${writeNewUserApp(app, redis.dsn).join(", ")} (Redis at ${redis.dsn})`);

  say(`$ ${plan.worker}   (in the background; no --queue flag)`);
  const logPath = join(tmp, "worker.log");
  const worker = await startWorker(plan.worker, app, env, reaper, logPath);
  say("worker started; enqueueing one job to each of emails and images from JavaScript and Python");
  const codes = await Promise.race([
    Promise.all([
      runEnqueue(say, "node", "node", ["enqueue.mjs"], app, env),
      runEnqueue(say, ".venv/bin/python", ".venv/bin/python", ["enqueue.py"], app, env),
    ]),
    worker.exited.then((code) => fail(`the worker exited while jobs were pending (exit ${code})`)),
  ]);
  if (codes.some((code) => code !== 0)) {
    process.stdout.write(
      `--- worker log (last lines) ---\n${readFileSync(logPath, "utf8").slice(-3000)}\n`,
    );
    fail(
      `not every job completed within ${JOB_WAIT_SECONDS} s (see the lines above; a worker started ` +
        "without --queue must serve the queues routed in [rrq.routing])",
    );
  }
  say("all four jobs completed");
}

async function cleanUp() {
  for (const step of cleanups.reverse()) await step().catch(() => {});
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
