import { resolve } from "node:path";
import { type Command, Option } from "commander";
import type { WatchConfig } from "../../config/config.js";
import type { ConfigSource } from "../../config/load.js";
import { quietSince, quietWorker, resumeWorker } from "../../control/quiet.js";
import { RrqError } from "../../errors.js";
import { collect, ExitCode, loadCli, say, withApi, type CliContext } from "./shared.js";

interface RunFlags {
  queue?: string[];
  strictQueues?: boolean;
  burst?: boolean;
  runnerMode?: "managed" | "external";
  logFormat?: string;
}

interface WatchFlags extends RunFlags {
  path?: string;
  pattern?: string[];
  ignorePattern?: string[];
  gitignore?: boolean;
}

/**
 * The orchestrator's modules (runner pools, logging, OpenTelemetry) load only when a worker
 * command runs, so the inspection commands start fast; the file watcher (chokidar, globbing)
 * only for `worker watch`, so a production `worker run` does not carry it in memory.
 */
async function orchestrator() {
  const [worker, events, logger, otel, implementation] = await Promise.all([
    import("../../orchestrator/worker.js"),
    import("../../telemetry/events.js"),
    import("../../telemetry/logger.js"),
    import("../../telemetry/otel.js"),
    import("../../orchestrator/implementation.js"),
  ]);
  return { ...worker, ...events, ...logger, ...otel, ...implementation };
}

const announce = (ctx: CliContext, source: ConfigSource) =>
  say(ctx, `Loading RRQ settings from ${source.kind} (${source.path}).`);

/**
 * Signals that stop the daemon. SIGHUP too: its default action ends Node at once, without exit
 * hooks, which left the runners (in process groups of their own, so a closing terminal does not
 * reach them) running.
 */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP"];

/** Installs the stop signals: the first asks `stop` for a graceful stop, the second exits now. */
function onSignals(stop: (signal: NodeJS.Signals) => void, onSecond: () => void): () => void {
  let signals = 0;
  const handler = (signal: NodeJS.Signals) => {
    if (++signals > 1) onSecond();
    else stop(signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, handler);
  };
}

async function workerRun(ctx: CliContext, flags: RunFlags): Promise<number> {
  const { config, source } = loadCli(
    ctx,
    flags.runnerMode ? { runnerManagementMode: flags.runnerMode } : {},
  );
  announce(ctx, source);
  const {
    Worker,
    EventBus,
    attachLogging,
    createLogger,
    resolveLogFormat,
    jobTelemetryFromEnv,
    packageVersion,
  } = await orchestrator();
  const events = new EventBus();
  const logger = createLogger(resolveLogFormat(flags.logFormat));
  attachLogging(events, logger);
  const telemetry = await jobTelemetryFromEnv();
  const worker = new Worker({
    config,
    queues: flags.queue,
    strictQueues: flags.strictQueues,
    burst: flags.burst,
    events,
    telemetry,
    pluginLogger: logger,
  });
  const dispose = onSignals(
    (signal) => {
      logger.info(
        { signal, grace_seconds: config.workerShutdownGracePeriodSeconds },
        "shutting down: finishing running jobs",
      );
      worker.requestShutdown(signal);
    },
    () => {
      // runners live in their own process groups: kill them, or they outlive the daemon
      const pids = worker.runnerPids;
      worker.killRunnersNow();
      logger.warn({ killed_runner_pids: pids }, "second signal: runners killed, exiting now");
      process.exit(ExitCode.failure);
    },
  );
  logger.info(
    {
      worker_id: worker.workerId,
      queues: worker.queues,
      burst: flags.burst ?? false,
      version: packageVersion(),
    },
    `worker starting: serving ${worker.queues.join(", ")}`,
  );
  let unwritten: number;
  try {
    unwritten = (await worker.run()).unwritten.length;
    await telemetry.shutdown();
  } finally {
    dispose();
  }
  logger.info({ worker_id: worker.workerId, unwritten_jobs: unwritten }, "worker stopped");
  return unwritten > 0 ? ExitCode.failure : ExitCode.ok;
}

async function workerWatch(ctx: CliContext, flags: WatchFlags): Promise<number> {
  const overrides = flags.runnerMode ? { runnerManagementMode: flags.runnerMode } : {};
  const first = loadCli(ctx, overrides);
  const {
    WatchSupervisor,
    EventBus,
    attachLogging,
    createLogger,
    resolveLogFormat,
    jobTelemetryFromEnv,
  } = { ...(await orchestrator()), ...(await import("../../orchestrator/watch.js")) };
  const base = first.config.watch;
  const watch: WatchConfig = {
    ...base,
    path: resolve(flags.path ?? base.path),
    includePatterns: flags.pattern?.length ? flags.pattern : base.includePatterns,
    ignorePatterns: flags.ignorePattern?.length ? flags.ignorePattern : base.ignorePatterns,
    noGitignore: flags.gitignore === false || base.noGitignore,
  };
  const events = new EventBus();
  attachLogging(events, createLogger(resolveLogFormat(flags.logFormat)));
  let loaded: typeof first | undefined = first;
  const telemetry = await jobTelemetryFromEnv();
  const supervisor = new WatchSupervisor({
    watch,
    telemetry,
    queues: flags.queue,
    events,
    say: (line) => say(ctx, line),
    load: () => {
      const next = loaded ?? loadCli(ctx, overrides);
      loaded = undefined;
      announce(ctx, next.source);
      return next.config;
    },
  });
  const dispose = onSignals(
    () => supervisor.stop(),
    // the supervised worker's exit hook kills its runners
    () => process.exit(ExitCode.failure),
  );
  try {
    await supervisor.run();
    await telemetry.shutdown();
  } finally {
    dispose();
  }
  return ExitCode.ok;
}

/**
 * `rrq worker quiet|resume <worker_id>|--all`: flips the quiet switch of live rrqkit workers
 * (their health records name them). RRQ's own workers have no quiet mode: named, they are an
 * error; with --all, skipped with a note. `resume` also clears the key of a worker whose record
 * is gone (it died quiet).
 */
async function workerQuiet(
  ctx: CliContext,
  action: "quiet" | "resume",
  workerId: string | undefined,
  flags: { all?: boolean },
): Promise<number> {
  if (!workerId === !flags.all)
    throw new RrqError(
      "invalid_argument",
      `give a worker id or --all (rrq worker ${action} <worker_id> | rrq worker ${action} --all)`,
    );
  return withApi(ctx, async (api) => {
    const workers = await api.workers.list();
    const known = new Map(workers.map((w) => [w.id, w]));
    const since = await quietSince(api.redis, workerId ? [workerId] : []);
    let targets = workers;
    if (workerId) {
      const worker = known.get(workerId);
      if (!worker) {
        if (action === "resume" && since.get(workerId)) {
          await resumeWorker(api.redis, workerId);
          say(ctx, `Worker '${workerId}' has no health record; its quiet key was removed`);
          return ExitCode.ok;
        }
        say(ctx, `No live worker '${workerId}' (rrq check lists the live workers)`);
        return ExitCode.failure;
      }
      targets = [worker];
    }
    let failed = false;
    for (const w of targets) {
      if (w.implementation !== "rrqkit") {
        say(
          ctx,
          `Worker '${w.id}' is not an rrqkit orchestrator (RRQ's has no quiet mode): skipped`,
        );
        failed ||= workerId !== undefined;
        continue;
      }
      if (action === "quiet") {
        await quietWorker(api.redis, w.id);
        say(ctx, `Worker '${w.id}' is quiet: it claims no new jobs and finishes its running ones`);
      } else {
        const was = await resumeWorker(api.redis, w.id);
        say(ctx, was ? `Worker '${w.id}' resumed` : `Worker '${w.id}' was not quiet`);
      }
    }
    if (targets.length === 0) say(ctx, "No live workers");
    return failed ? ExitCode.failure : ExitCode.ok;
  });
}

const runnerMode = () =>
  new Option(
    "--runner-mode <mode>",
    "start runners (managed) or connect to running ones (external)",
  ).choices(["managed", "external"]);

const logFormat = () =>
  new Option(
    "--log-format <format>",
    "log output (default: pretty on a terminal, else json)",
  ).choices(["json", "pretty"]);

/** `rrq worker run|watch|quiet|resume`. */
export function registerWorker(program: Command, ctx: CliContext): void {
  const worker = program
    .command("worker")
    .description("run the orchestrator, or make a running one quiet / resume it");
  worker
    .command("run")
    .description("claim and run jobs until SIGTERM/SIGINT/SIGHUP")
    .option(
      "--queue <name[:weight]>",
      "queue to serve, with an optional weight for weighted claiming (repeatable; default: " +
        "[rrq] queues, else default_queue_name and the queues in [rrq.routing])",
      collect,
    )
    .option(
      "--strict-queues",
      "claim from the queues in the order given: a queue only when those before it are drained",
    )
    .option("--burst", "exit once no job is ready and none is running")
    .addOption(runnerMode())
    .addOption(logFormat())
    .action((flags: RunFlags) => ctx.run(() => workerRun(ctx, flags)));
  worker
    .command("watch")
    .description("run the orchestrator and restart it when watched files change (development)")
    .option("--queue <name[:weight]>", "queue to serve, optionally weighted (repeatable)", collect)
    .option("--path <dir>", "directory to watch (default: [rrq.watch].path, else .)")
    .option("--pattern <glob>", "include glob (repeatable; default *.py, *.toml)", collect)
    .option("--ignore-pattern <glob>", "ignore glob (repeatable; default: RRQ's list)", collect)
    .option("--no-gitignore", "do not honour .gitignore and .git/info/exclude")
    .addOption(runnerMode())
    .addOption(logFormat())
    .action((flags: WatchFlags) => ctx.run(() => workerWatch(ctx, flags)));
  for (const [action, description] of [
    ["quiet", "stop a worker claiming new jobs; it finishes the running ones (as SIGTSTP does)"],
    ["resume", "let a quiet worker claim jobs again"],
  ] as const)
    worker
      .command(action)
      .argument("[worker-id]", "the worker (rrq check lists them)")
      .option("--all", "every live rrqkit worker")
      .description(description)
      .action((id: string | undefined, flags: { all?: boolean }) =>
        ctx.run(() => workerQuiet(ctx, action, id, flags)),
      );
}
