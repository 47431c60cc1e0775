#!/usr/bin/env node
// Checks what `npm start` promises a second terminal and Ctrl-C (`npm test` step `start`, after
// `npm start -- --once`; alone: `node scripts/check-start-signals.mjs`, after a build):
//   1. the enqueue command it prints works as printed, from the repository, without any of
//      start.mjs's environment;
//   2. Ctrl-C, which the terminal sends to the whole foreground group and npm forwards once
//      more (two SIGINTs a moment apart), stops it gracefully: exit 0, the worker finishes and
//      does not take its "second signal" path;
//   3. when start.mjs is SIGKILLed, its worker (and so its runners) and its private Redis still
//      go away.
import { spawn, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { groupAlive } from "./lib/process-group.mjs"; // the worker leads its own group

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const say = (text) => process.stdout.write(`[start-signals] ${text}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("RRQ_")));

class CheckFailed extends Error {}
const runs = [];

/** Starts start.mjs as a terminal would: its own process group, output collected. */
function startQuickstart() {
  const child = spawn(process.execPath, ["scripts/start.mjs", "--no-build"], {
    cwd: root,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run = { child, output: "", done: false };
  runs.push(run);
  child.stdout.on("data", (d) => (run.output += d));
  child.stderr.on("data", (d) => (run.output += d));
  run.exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => {
      run.done = true;
      resolve(code ?? signal);
    }),
  );
  return run;
}

async function waitFor(what, test, seconds, run) {
  for (let i = 0; i < seconds * 10; i++) {
    const value = test();
    if (value) return value;
    await sleep(100);
  }
  process.stdout.write(run.output.slice(-3000));
  throw new CheckFailed(`${what} within ${seconds} s`);
}

/** The printed enqueue line and the worker's pid, once the demo is over. */
async function ready(run) {
  const hint = await waitFor(
    "no `RRQ_REDIS_DSN=… node bin/rrq.js enqueue …` line printed",
    () => /^\s*(RRQ_REDIS_DSN=.*node bin\/rrq\.js enqueue .*)$/m.exec(run.output)?.[1],
    150,
    run,
  );
  const pid = Number(/rrq_worker_(\d+)_/.exec(run.output)?.[1]);
  if (!pid) throw new CheckFailed("the worker's id (rrq_worker_<pid>_…) is not in the output");
  return { hint, pid };
}

async function gracefulCtrlC() {
  const run = startQuickstart();
  const { hint, pid } = await ready(run);
  const enqueued = spawnSync("sh", ["-c", hint], {
    cwd: root,
    env,
    encoding: "utf8",
    timeout: 60_000,
  });
  if (enqueued.status !== 0 || !enqueued.stdout.includes("COMPLETED"))
    throw new CheckFailed(`the printed line failed: ${hint}\n${enqueued.stdout}${enqueued.stderr}`);
  say(`the printed line works: ${hint}`);
  process.kill(-run.child.pid, "SIGINT"); // the terminal's Ctrl-C
  await sleep(10);
  try {
    process.kill(run.child.pid, "SIGINT"); // npm passing it on
  } catch {
    // start.mjs already finished: nothing was running, so its stop took under 10 ms
  }
  const code = await Promise.race([run.exited, sleep(30_000).then(() => "still running")]);
  if (code !== 0)
    throw new CheckFailed(`after Ctrl-C start.mjs ended with ${code}\n${run.output.slice(-2000)}`);
  if (/second signal/.test(run.output)) throw new CheckFailed("Ctrl-C reached the worker twice");
  if (!/worker stopped/.test(run.output))
    throw new CheckFailed("the worker did not log 'worker stopped'");
  await waitFor(
    "the worker is still running after start.mjs exited",
    () => !groupAlive(pid),
    10,
    run,
  );
  say("one Ctrl-C (twice delivered) stopped the quickstart gracefully");
}

async function killedStart() {
  const run = startQuickstart();
  const { pid } = await ready(run);
  run.child.kill("SIGKILL");
  await waitFor("the worker outlived a SIGKILLed start.mjs", () => !groupAlive(pid), 30, run);
  say("a SIGKILLed start.mjs left no worker behind");
}

try {
  await gracefulCtrlC();
  await killedStart();
} catch (error) {
  say(`FAILED: ${error instanceof CheckFailed ? error.message : (error?.stack ?? error)}`);
  for (const run of runs.filter((r) => !r.done)) process.kill(run.child.pid, "SIGTERM");
  await Promise.all(runs.map((r) => Promise.race([r.exited, sleep(20_000)])));
  process.exit(1);
}
