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
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureRedisServer } from "./lib/ensure-redis.mjs";

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

async function startPrivateRedis() {
  ensureRedisServer();
  const dir = mkdtempSync(join(tmpdir(), "rrq-start-"));
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
    { stdio: "ignore" },
  );
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

async function main() {
  if (!skipBuild) prepare();
  let dsn = configuredDsn();
  let privateRedis;
  if (await redisAnswers(dsn)) {
    say(`using the Redis at ${dsn.replace(/\/\/[^@/]*@/, "//***@")}`);
  } else {
    privateRedis = await startPrivateRedis();
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
    { cwd: root, env, stdio: "inherit" },
  );
  const workerExited = new Promise((resolve) => worker.on("exit", (code) => resolve(code)));
  const shutdown = async (code) => {
    worker.kill("SIGTERM");
    const workerCode = await workerExited;
    privateRedis?.stop();
    process.exit(code ?? workerCode ?? 0);
  };
  process.on("SIGINT", () => void shutdown());
  process.on("SIGTERM", () => void shutdown());

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
  if (once) await shutdown(allAsExpected ? 0 : 1);
  say(
    "the orchestrator keeps running; enqueue more with `node bin/rrq.js enqueue echo --params '{\"a\":1}'` (Ctrl-C to stop)",
  );
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});
