#!/usr/bin/env node
// `npm start`: the quickstart. On a fresh machine it
//   1. installs npm packages and builds (and, when the example config uses them, prepares the
//      Python virtualenv and the Rust build of the example runners);
//   2. uses the Redis at rrq.toml's redis_dsn (or RRQ_REDIS_DSN) when one answers, and otherwise
//      starts a private redis-server on a Unix socket in a temporary directory (and says so);
//   3. runs `rrq worker run --config rrq.toml` with the example runners;
//   4. enqueues a few demo jobs and prints them as they complete.
// It keeps running until Ctrl-C. `--once` exits after the demo jobs finish (used by `npm test`);
// `--no-build` skips step 1 when everything is already installed and built.
//
// Signals: the worker and redis-server run in process groups of their own, so Ctrl-C reaches
// only this script (and npm, which forwards it here once more); the script forwards one SIGTERM
// to the worker, which then finishes its running jobs. A second Ctrl-C more than a second later
// is forwarded too and makes the worker exit at once. Should this script die without cleaning
// up, a reaper (scripts/lib/reaper.mjs) stops the worker (and with it its runners) and the
// private redis-server.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureRedisServer } from "./lib/ensure-redis.mjs";
import { startReaper } from "./lib/reaper.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const once = process.argv.includes("--once");
const skipBuild = process.argv.includes("--no-build");
const configPath = join(root, "rrq.toml");
const say = (text) => process.stdout.write(`[npm start] ${text}\n`);

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", ...options });
  if (result.status !== 0) {
    say(`${command} ${args.join(" ")} failed`);
    process.exit(1);
  }
}

function prepare() {
  if (!existsSync(join(root, "node_modules", ".package-lock.json"))) {
    say("installing npm packages");
    run("npm", ["ci", "--no-audit", "--no-fund"]);
  }
  say("building");
  run("npm", ["run", "build", "--silent"]);
  const config = readFileSync(configPath, "utf8");
  if (/\.venv\/bin\//.test(config) && existsSync(join(root, "runners", "python", "ci.sh"))) {
    say("preparing the Python virtualenv (.venv) for the Python example runner");
    run("bash", ["runners/python/ci.sh", "--install-only"]);
  }
  if (
    /runners\/rust\/target\//.test(config) &&
    existsSync(join(root, "runners", "rust", "ci.sh"))
  ) {
    say("building the Rust example runner");
    run("bash", ["runners/rust/ci.sh", "--build-only"]);
  }
}

/** The DSN the worker will use: RRQ_REDIS_DSN, else redis_dsn from rrq.toml. */
function configuredDsn() {
  if (process.env.RRQ_REDIS_DSN) return process.env.RRQ_REDIS_DSN;
  const match = /^\s*redis_dsn\s*=\s*"([^"]+)"/m.exec(readFileSync(configPath, "utf8"));
  return match ? match[1] : "redis://localhost:6379/0";
}

/** True when something at the DSN answers PING with PONG (TCP or Unix socket, no auth). */
function redisAnswers(dsn) {
  return new Promise((resolve) => {
    let target;
    try {
      const url = new URL(dsn);
      target = url.protocol.includes("unix")
        ? { path: url.pathname }
        : { host: url.hostname || "localhost", port: Number(url.port || 6379) };
    } catch {
      resolve(false);
      return;
    }
    const socket = createConnection(target);
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) =>
      done(data.toString().startsWith("+PONG") || data.toString().startsWith("-NOAUTH")),
    );
  });
}

async function startPrivateRedis(reaper) {
  ensureRedisServer();
  const dir = mkdtempSync(join(tmpdir(), "rrq-start-"));
  reaper.dir(dir);
  const socket = join(dir, "redis.sock");
  const server = spawn(
    "redis-server",
    [
      "--port",
      "0",
      "--unixsocket",
      socket,
      "--unixsocketperm",
      "700",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ],
    // Its own process group: Ctrl-C must not stop Redis under the worker while it drains.
    { stdio: "ignore", detached: true },
  );
  reaper.group(server.pid, 5);
  for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 25));
  const dsn = `unix://${socket}?db=0`;
  if (!(await redisAnswers(dsn))) {
    say("could not start a private redis-server");
    process.exit(1);
  }
  return {
    dsn,
    stop: () => (server.kill("SIGTERM"), rmSync(dir, { recursive: true, force: true })),
  };
}

/** A result, shortened for the demo output. */
function brief(value) {
  const text = JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** The default queue plus every queue named in [rrq.routing]. */
function servedQueues(config) {
  const queues = [/^\s*default_queue_name\s*=\s*"([^"]+)"/m.exec(config)?.[1] ?? "default"];
  const routing = /\[rrq\.routing\]([\s\S]*?)(\n\[|$)/.exec(config)?.[1] ?? "";
  for (const match of routing.matchAll(/^\s*([\w:.-]+)\s*=/gm)) queues.push(match[1]);
  return queues;
}

/** The demo: one job per interesting path, on every example runner the config defines. */
function demoJobs(config) {
  const jobs = [
    ["echo", { hello: "world" }, {}, "success"],
    ["flaky", { fail_until_attempt: 1 }, { maxRetries: 3 }, "fails once, succeeds on retry"],
    ["sleep", { ms: 300 }, {}, "a slower job"],
    ["fail", { message: "demo failure" }, { maxRetries: 1 }, "ends in the dead-letter queue"],
  ];
  for (const runner of ["python", "rust"]) {
    if (!new RegExp(`\\[rrq\\.runners\\.${runner}\\]`).test(config)) continue;
    jobs.push([`${runner}#echo`, { from: runner }, {}, `named runner: ${runner}#echo`]);
    jobs.push([
      "inspect",
      { via: "queue" },
      { queueName: `${runner}_jobs` },
      `queue ${runner}_jobs, routed to ${runner}`,
    ]);
  }
  return jobs;
}

/** The line that enqueues one more job from a second terminal, with the DSN the worker uses. */
function enqueueHint(dsn) {
  const shown = dsn.replace(/\/\/([^@/]*)@/, (_, auth) =>
    auth.includes(":") ? `//${auth.split(":")[0]}:<password>@` : `//${auth}@`,
  );
  return `RRQ_REDIS_DSN='${shown}' node bin/rrq.js enqueue echo --params '{"hello":"again"}' --wait 5`;
}

/**
 * Forwards the first SIGINT/SIGTERM to `onFirst` and ignores repeats within a second (npm
 * forwards the terminal's Ctrl-C to this script a second time); a later one calls `onForce`.
 */
function onStopSignals(onFirst, onForce) {
  let first;
  const handler = () => {
    if (first === undefined) {
      first = Date.now();
      onFirst();
    } else if (Date.now() - first > 1000) onForce();
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}

async function main() {
  if (!skipBuild) prepare();
  const reaper = startReaper();
  let dsn = configuredDsn();
  let privateRedis;
  if (await redisAnswers(dsn)) {
    say(`using the Redis at ${dsn.replace(/\/\/[^@/]*@/, "//***@")}`);
  } else {
    privateRedis = await startPrivateRedis(reaper);
    say(
      `no Redis answered at ${dsn}; started a private redis-server at ${privateRedis.dsn} (stopped on exit)`,
    );
    dsn = privateRedis.dsn;
  }
  const env = { ...process.env, RRQ_REDIS_DSN: dsn };
  const worker = spawn(
    process.execPath,
    [
      join(root, "bin", "rrq.js"),
      "--config",
      configPath,
      "worker",
      "run",
      ...servedQueues(readFileSync(configPath, "utf8")).flatMap((q) => ["--queue", q]),
    ],
    // Its own process group, so the terminal's Ctrl-C does not reach it besides ours (two
    // signals would make it skip the graceful stop); the reaper stands in for the group.
    { cwd: root, env, stdio: "inherit", detached: true },
  );
  reaper.group(worker.pid, 20);
  let stopping = false;
  const workerExited = new Promise((resolve) => worker.on("exit", (code) => resolve(code)));
  const cleanUp = (code) => {
    privateRedis?.stop();
    reaper.dismiss();
    process.exit(code);
  };
  void workerExited.then((code) => {
    if (stopping) return;
    say(`the orchestrator exited unexpectedly (exit ${code})`);
    cleanUp(1);
  });
  const shutdown = async (code) => {
    stopping = true;
    worker.kill("SIGTERM");
    const workerCode = await workerExited;
    cleanUp(code ?? workerCode ?? 0);
  };
  onStopSignals(
    () => {
      say("stopping: the orchestrator finishes its running jobs (Ctrl-C again to force)");
      void shutdown();
    },
    () => worker.kill("SIGTERM"),
  );

  const { Producer, producerConfigFrom, loadConfig } = await import("../dist/src/index.js");
  const { config } = loadConfig({ path: configPath, env });
  const producer = new Producer(producerConfigFrom(config));
  const jobs = demoJobs(readFileSync(configPath, "utf8"));
  say(`enqueueing ${jobs.length} demo jobs`);
  const results = await Promise.all(
    jobs.map(async ([fn, params, options, about]) => {
      const id = await producer.enqueue(fn, params, options);
      const result = await producer.waitForCompletion(id, { timeoutSeconds: 60 });
      const shown = result
        ? `${result.status}${result.status === "COMPLETED" ? ` ${brief(result.result)}` : ` (${result.lastError})`}`
        : "still running after 60 s";
      say(`demo job ${fn} (${about}) → ${shown}`);
      return result?.status === "COMPLETED" || (fn === "fail" && result?.status === "FAILED");
    }),
  );
  await producer.close();
  const allAsExpected = results.every(Boolean);
  say(
    allAsExpected
      ? "all demo jobs finished as expected"
      : "some demo jobs did not finish as expected",
  );
  if (once) return shutdown(allAsExpected ? 0 : 1);
  say(
    `the orchestrator keeps running (Ctrl-C to stop). Enqueue more from another terminal, in ${root}:`,
  );
  process.stdout.write(`\n    ${enqueueHint(dsn)}\n\n`);
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});
