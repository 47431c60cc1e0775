import { spawn } from "node:child_process";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { basename, join, relative, resolve, sep } from "node:path";
import { watch, type FSWatcher } from "chokidar";
import ignore, { type Ignore } from "ignore";
import picomatch from "picomatch";
import type { ResolvedConfig, WatchConfig } from "../config/config.js";
import type { EventBus } from "../telemetry/events.js";
import type { JobTelemetry } from "../telemetry/otel.js";
import { Worker } from "./worker.js";

/**
 * Watch mode (`rrq worker watch`): runs a worker and restarts it, with its runners, whenever a
 * watched file changes. As RRQ: every runner gets pool_size 1 and max_in_flight 1, the worker's
 * shutdown grace is 0, include globs default to `*.py` and `*.toml`, `.gitignore` and
 * `.git/info/exclude` of the watched root are honoured unless `no_gitignore`, events are
 * coalesced for 200 ms, and `pre_restart_cmds` run before each start; if one fails, the worker
 * stays stopped until the next change. The configuration is reloaded for every start.
 */

/** What decides whether a path is watched. */
export interface WatchRules {
  root: string;
  includePatterns: readonly string[];
  ignorePatterns: readonly string[];
  noGitignore: boolean;
}

/**
 * Path filter: a path is ignored when `.gitignore` says so or an ignore glob matches its path
 * relative to the root or its base name; a file counts when an include glob matches either
 * (no include globs: every file counts).
 */
export class PathMatcher {
  readonly root: string;
  private readonly include: picomatch.Matcher | undefined;
  private readonly ignoreGlob: picomatch.Matcher | undefined;
  private readonly gitignore: Ignore | undefined;

  constructor(rules: WatchRules) {
    this.root = realpathOr(resolve(rules.root));
    const glob = (patterns: readonly string[]) =>
      patterns.length === 0 ? undefined : picomatch([...patterns], { dot: true });
    this.include = glob(rules.includePatterns);
    this.ignoreGlob = glob(rules.ignorePatterns);
    if (!rules.noGitignore) {
      const files = [join(this.root, ".gitignore"), join(this.root, ".git", "info", "exclude")];
      const present = files.filter((f) => existsSync(f));
      if (present.length > 0)
        this.gitignore = ignore().add(present.map((f) => readFileSync(f, "utf8")).join("\n"));
    }
  }

  private relative(path: string): string | undefined {
    const rel = relative(this.root, path).split(sep).join("/");
    return rel === "" || rel.startsWith("..") ? undefined : rel;
  }

  /** Whether the path (a directory when `isDir`) is excluded from watching altogether. */
  ignored(path: string, isDir = false): boolean {
    const rel = this.relative(path);
    if (rel === undefined) return false;
    if (this.gitignore?.ignores(isDir ? `${rel}/` : rel)) return true;
    return Boolean(this.ignoreGlob && (this.ignoreGlob(rel) || this.ignoreGlob(basename(rel))));
  }

  /** Whether a change to this file should restart the worker. */
  matches(path: string): boolean {
    const rel = this.relative(path);
    if (rel === undefined || this.ignored(path)) return false;
    return !this.include || this.include(rel) || this.include(basename(rel));
  }
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** The configuration watch mode runs with (RRQ's overrides). */
export function watchModeConfig(config: ResolvedConfig): ResolvedConfig {
  const runners = Object.fromEntries(
    Object.entries(config.runners).map(([name, runner]) => [
      name,
      Object.freeze({ ...runner, poolSize: 1, maxInFlight: 1 }),
    ]),
  );
  return Object.freeze({
    ...config,
    runners: Object.freeze(runners),
    workerShutdownGracePeriodSeconds: 0,
  });
}

/** Runs one pre-restart command; resolves to an error message, or undefined on success. */
export function runCommand(
  argv: readonly string[],
  options: { cwd?: string; timeoutSeconds?: number },
): Promise<string | undefined> {
  return new Promise((done) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: options.cwd, stdio: "inherit" });
    const timer =
      options.timeoutSeconds === undefined
        ? undefined
        : setTimeout(() => child.kill("SIGKILL"), options.timeoutSeconds * 1000);
    child.once("error", (error) => {
      clearTimeout(timer);
      done(error.message);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      done(code === 0 ? undefined : signal ? `killed by ${signal}` : `exit code ${code}`);
    });
  });
}

/** Inputs of a {@link WatchSupervisor}. */
export interface WatchSupervisorOptions {
  /** Loads the configuration afresh (called before every start; may throw). */
  load: () => ResolvedConfig;
  /** Watch settings (the CLI merges `--path`, `--pattern`, … over `[rrq.watch]`). */
  watch: WatchConfig;
  queues?: readonly string[];
  events: EventBus;
  telemetry?: JobTelemetry;
  /** Prints one status line (RRQ's messages). */
  say: (line: string) => void;
  /** Quiet period before a restart (default 200 ms). */
  debounceMs?: number;
}

/** The watch loop: start, wait for a change, stop, pre-restart commands, start again. */
export class WatchSupervisor {
  private watcher: FSWatcher | undefined;
  private worker: Worker | undefined;
  private changed: (() => void) | undefined;
  private dirty = false;
  private stopping = false;
  private lastChange = 0;
  /** Completed starts (for tests). */
  starts = 0;

  constructor(private readonly options: WatchSupervisorOptions) {}

  /** Runs until {@link stop}. */
  async run(): Promise<void> {
    const w = this.options.watch;
    const matcher = new PathMatcher({
      root: w.path,
      includePatterns: w.includePatterns,
      ignorePatterns: w.ignorePatterns,
      noGitignore: w.noGitignore,
    });
    this.watcher = watch(matcher.root, {
      ignoreInitial: true,
      ignored: (path, stats) => matcher.ignored(path, stats?.isDirectory() ?? false),
    });
    this.watcher.on("all", (event, path) => {
      if (event === "addDir" || event === "unlinkDir" || !matcher.matches(path)) return;
      if (!this.dirty)
        this.options.say(`Change detected (event=${event}, paths=${JSON.stringify([path])}).`);
      this.dirty = true;
      this.lastChange = Date.now();
      this.worker?.requestShutdown();
      this.changed?.();
    });
    await new Promise<void>((ready) => this.watcher!.once("ready", () => ready()));
    this.options.say(`Watching ${matcher.root} for changes...`);
    try {
      await this.loop();
    } finally {
      await this.watcher.close();
    }
  }

  /** Stops the worker and the loop. */
  stop(): void {
    this.stopping = true;
    this.worker?.requestShutdown();
    this.changed?.();
  }

  private nextChange(): Promise<void> {
    return new Promise((resolve) => (this.changed = resolve));
  }

  /** Waits until no change arrived for the debounce period. */
  private async settle(): Promise<void> {
    const quiet = this.options.debounceMs ?? 200;
    while (!this.stopping && Date.now() - this.lastChange < quiet)
      await new Promise((r) => setTimeout(r, quiet - (Date.now() - this.lastChange)));
    this.dirty = false;
  }

  private async loop(): Promise<void> {
    let first = true;
    while (!this.stopping) {
      if (!first) {
        await this.settle();
        if (this.stopping) return;
      }
      first = false;
      if (!(await this.preRestart())) {
        this.options.say("Waiting for the next change...");
        await this.untilChange();
        continue;
      }
      // a change that arrived while pre-restart commands ran (a build) is not in what they
      // produced: settle and run them again before starting
      if (this.dirty) continue;
      let worker: Worker;
      try {
        worker = new Worker({
          config: watchModeConfig(this.options.load()),
          queues: this.options.queues,
          events: this.options.events,
          telemetry: this.options.telemetry,
        });
      } catch (error) {
        // a bad edit to rrq.toml must not end watch mode: report it and wait for the fix
        this.options.say(`Cannot start the worker: ${(error as Error).message}`);
        await this.untilChange();
        continue;
      }
      this.worker = worker;
      const running = worker.run().then(
        () => undefined,
        (error: Error) => error,
      );
      this.starts++;
      const ended = await Promise.race([running.then(() => "ended" as const), this.nextChange()]);
      worker.requestShutdown();
      const error = await running;
      this.worker = undefined;
      if (this.stopping) return;
      if (error) this.options.say(`worker crashed: ${error.message}`);
      if (ended === "ended" && !this.dirty) {
        this.options.say("Worker stopped; waiting for the next change...");
        await this.untilChange();
      }
      if (!this.stopping) this.options.say("Restarting worker...");
    }
  }

  private async untilChange(): Promise<void> {
    if (!this.dirty && !this.stopping) await this.nextChange();
  }

  /** Runs `pre_restart_cmds` in order; false when one failed. */
  private async preRestart(): Promise<boolean> {
    const w = this.options.watch;
    for (const argv of w.preRestartCmds) {
      this.options.say(`Running pre-restart command: ${argv.join(" ")}`);
      const failure = await runCommand(argv, {
        cwd: w.preRestartCwd ?? w.path,
        timeoutSeconds: w.preRestartTimeoutSeconds,
      });
      if (failure) {
        this.options.say(`Pre-restart command failed (${failure}): ${argv.join(" ")}`);
        return false;
      }
    }
    return true;
  }
}
