// Small building blocks of the packaging check (scripts/packages-check.mjs; the new-user check
// shares runEnqueue): a failure type whose message is the whole report, a command runner that
// prints one line per command (with its duration) and the command's output only when it fails,
// the run of an app's enqueue program, and a new user's environment.
import { spawn } from "node:child_process";

/** A failure with a reason meant for the reader; any other error is a bug in the check. */
export class CheckFailed extends Error {}

/** Process groups of the steps still running (each step runs in a group of its own). */
const running = new Set();
let stepReaper;
let aborting = false;

/** SIGKILLs process group `pgid`, if it is still there. */
function killGroup(pgid) {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
}

/**
 * Registers every later step's process group with `reaper` (./reaper.mjs), so that steps still
 * running when the check dies are stopped too.
 */
export function reapStepsWith(reaper) {
  stepReaper = reaper;
}

/**
 * Kills the process groups of the steps still running: after one side-by-side build failed,
 * the others must not go on writing into a directory being removed.
 */
export function killRunningSteps() {
  aborting = true;
  for (const pgid of running) killGroup(pgid);
  running.clear();
}

/** Throws a CheckFailed with `reason`. */
export function fail(reason) {
  throw new CheckFailed(reason);
}

/** A printer of `[<tag>] <text>` lines. */
export function sayer(tag) {
  return (text) => process.stdout.write(`[${tag}] ${text}\n`);
}

/**
 * Runs `command args` (no shell) in `options.cwd` with `options.env`, bounded by
 * `options.timeoutSeconds` (default 300); once it ends, prints `$ command args (N s)` through
 * `say`. Resolves to its stdout. On a non-zero exit or a timeout it prints the last lines of the
 * output and rejects with a CheckFailed naming the command. Asynchronous, so that independent
 * builds can run side by side.
 */
export function runStep(say, command, args, options = {}) {
  const { cwd, env, timeoutSeconds = 300 } = options;
  const shown = `${command} ${args.join(" ")}`;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    // A group of its own, so that a kill reaches cargo's rustc and pip's children too.
    const child = spawn(command, args, {
      cwd,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (child.pid !== undefined) {
      running.add(child.pid);
      stepReaper?.group(child.pid, 2);
    }
    let stdout = "";
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (data) => {
      stdout += data;
      output += data;
    });
    child.stderr.setEncoding("utf8").on("data", (data) => (output += data));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutSeconds * 1000);
    let finished = false;
    const finish = (how) => {
      if (finished) return; // "error" may be followed by "close"
      finished = true;
      clearTimeout(timer);
      running.delete(child.pid);
      if (aborting) return reject(new CheckFailed(`\`${shown}\` was stopped`));
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      say(`$ ${shown}   (${seconds} s${cwd ? `, in ${cwd}` : ""})`);
      if (how === undefined) return resolve(stdout);
      process.stdout.write(output.slice(-4000));
      reject(new CheckFailed(`\`${shown}\` failed (${how})`));
    };
    child.once("error", (error) => finish(error.message));
    child.once("close", (code, signal) => {
      if (timedOut) finish(`killed after ${timeoutSeconds} s`);
      else finish(code === 0 ? undefined : `exit ${code ?? signal}`);
    });
  });
}

/**
 * The environment of a new user's shell: the calling environment without npm_*, RRQ_*,
 * virtualenv and Cargo target variables (ours would leak into the fresh projects), npm quiet and
 * preferring its cache, pip without its version check.
 */
export function userEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|RRQ_|VIRTUAL_ENV$|PYTHONPATH$|INIT_CWD$|CARGO_TARGET_DIR$)/i.test(key)) continue;
    env[key] = value;
  }
  return {
    ...env,
    npm_config_prefer_offline: "true",
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
    PIP_DISABLE_PIP_VERSION_CHECK: "1",
    CARGO_TERM_COLOR: "never",
  };
}

/**
 * Runs one enqueue program of a check's app in `app`; resolves to its exit code after echoing
 * its output, each line prefixed with `label`.
 */
export function runEnqueue(say, label, command, args, app, env) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: app, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (data) => (output += data));
    child.stderr.on("data", (data) => (output += data));
    child.once("exit", (code) => {
      for (const line of output.trim().split("\n")) say(`  ${label}: ${line}`);
      resolve(code);
    });
  });
}
