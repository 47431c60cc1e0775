// Small building blocks of the packaging check (scripts/packages-check.mjs): a failure type whose
// message is the whole report, and a command runner that prints one line per command (with its
// duration) and the command's output only when it fails.
import { spawnSync } from "node:child_process";

/** A failure with a reason meant for the reader; any other error is a bug in the check. */
export class CheckFailed extends Error {}

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
 * `options.timeoutSeconds` (default 300), printing `$ command args (N s)` through `say`.
 * Returns its stdout. On a non-zero exit or a timeout it prints the last lines of the output
 * and throws a CheckFailed naming the command.
 */
export function runStep(say, command, args, options = {}) {
  const { cwd, env, timeoutSeconds = 300 } = options;
  const shown = `${command} ${args.join(" ")}`;
  const started = Date.now();
  const result = spawnSync(command, args, {
    cwd,
    env,
    encoding: "utf8",
    timeout: timeoutSeconds * 1000,
    killSignal: "SIGKILL",
    maxBuffer: 64 * 1024 * 1024,
  });
  say(`$ ${shown}   (${((Date.now() - started) / 1000).toFixed(1)} s${cwd ? `, in ${cwd}` : ""})`);
  if (result.status !== 0) {
    process.stdout.write(`${result.stdout ?? ""}${result.stderr ?? ""}`.slice(-4000));
    const how = result.error ? result.error.message : `exit ${result.status ?? result.signal}`;
    fail(`\`${shown}\` failed (${how})`);
  }
  return result.stdout;
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
