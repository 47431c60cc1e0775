/**
 * Security basics: TLS (rediss://) with a Redis ACL user end to end, passwords never in logs,
 * health records or errors, private Unix-socket directories, no shell for runner commands, and
 * loopback-only TCP runners.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProducerError } from "../src/errors.js";
import { Producer } from "../src/producer/producer.js";
import { attachLogging } from "../src/telemetry/logger.js";
import { NODE_RUNNER, RunningWorker, testConfig, waitFor } from "./support/worker-harness.js";

const PASSWORD = "s3cret-Pa55word";
let dir: string;
let server: ChildProcess;
let port: number;
let dsn: string;

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rrq-tls-"));
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=rrq-test-ca",
  );
  openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  );
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  );
  port = 20_000 + Math.floor(Math.random() * 20_000);
  server = spawn(
    "redis-server",
    [
      "--port",
      "0",
      "--tls-port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--tls-cert-file",
      "server.crt",
      "--tls-key-file",
      "server.key",
      "--tls-ca-cert-file",
      "ca.crt",
      "--tls-auth-clients",
      "no",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ],
    { cwd: dir, stdio: "ignore" },
  );
  const admin = new Redis({
    host: "127.0.0.1",
    port,
    tls: { ca: readFileSync(join(dir, "ca.crt")) },
    maxRetriesPerRequest: 5,
  });
  admin.on("error", () => {}); // refused until the server listens
  await waitFor(
    async () => (await admin.ping().catch(() => "")) === "PONG",
    10_000,
    "TLS redis-server",
  );
  // A least-privilege ACL user, and no anonymous access.
  await admin.call(
    "ACL",
    "SETUSER",
    "rrq",
    "on",
    `>${PASSWORD}`,
    "~rrq:*",
    "&rrq:*",
    "+@all",
    "-@dangerous",
    "+info",
  );
  await admin.call("ACL", "SETUSER", "default", "off");
  admin.disconnect();
  dsn = `rediss://rrq:${PASSWORD}@127.0.0.1:${port}/0?ssl_ca_certs=${encodeURIComponent(join(dir, "ca.crt"))}`;
});
afterAll(() => {
  server?.kill("SIGKILL");
});

describe("TLS with a Redis ACL user", () => {
  it("runs jobs end to end over rediss:// as a restricted user, and keeps the password out of logs and health", async () => {
    let logged = "";
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logged += chunk.toString();
        done();
      },
    });
    const worker = new RunningWorker(testConfig(dsn));
    attachLogging(worker.events, pino({ level: "debug" }, sink));
    await worker.start();
    const producer = new Producer({ redisDsn: dsn });
    try {
      const id = await producer.enqueue("echo", { over: "tls" });
      const done = await producer.waitForCompletion(id, { timeoutSeconds: 20 });
      expect(done).toMatchObject({ status: "COMPLETED", result: { over: "tls" } });
      const reader = new Redis({
        host: "127.0.0.1",
        port,
        username: "rrq",
        password: PASSWORD,
        tls: { ca: readFileSync(join(dir, "ca.crt")) },
      });
      const health = await reader.get(`rrq:health:worker:${worker.worker.workerId}`);
      reader.disconnect();
      expect(health).not.toBeNull();
      expect(health).not.toContain(PASSWORD);
      expect(logged).not.toContain(PASSWORD);
    } finally {
      await producer.close();
      await worker.stop();
    }
  });

  it("reports a wrong password or an untrusted server without revealing the password", async () => {
    const wrong = new Producer({ redisDsn: dsn.replace(PASSWORD, "wrong-pass-xyz") });
    const error = await wrong.enqueue("echo", {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    await wrong.close();
    expect(error).toBeInstanceOf(ProducerError);
    expect((error as Error).message).toMatch(/WRONGPASS|invalid/i);
    expect((error as Error).message).not.toContain("wrong-pass-xyz");
    expect((error as Error).message).toContain("rediss://***@127.0.0.1");
  });
});

describe("runner isolation", () => {
  it("puts Unix sockets in a private 0700 directory and passes arguments without a shell", async () => {
    const argvFile = join(dir, "argv.json");
    const wrapper = join(dir, "argv-runner.mjs");
    writeFileSync(
      wrapper,
      `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(argvFile)}, JSON.stringify(process.argv.slice(2)));\nprocess.argv.splice(2, 1);\nawait import(${JSON.stringify(NODE_RUNNER)});\n`,
    );
    const redisDir = mkdtempSync(join(tmpdir(), "rrq-sec-"));
    const plain = spawn(
      "redis-server",
      ["--port", String(port + 1), "--bind", "127.0.0.1", "--save", "", "--dir", redisDir],
      { stdio: "ignore" },
    );
    try {
      const config = testConfig(
        `redis://127.0.0.1:${port + 1}/0`,
        {},
        {
          node: {
            cmd: [process.execPath, wrapper, "$HOME;$(touch pwned)"],
            transport: "unix",
            pool_size: 1,
          },
        },
      );
      const worker = await new RunningWorker(config).start();
      try {
        const spawned = worker.of("runner:spawn")[0]!;
        const socket = spawned.command[spawned.command.indexOf("--unix-socket") + 1]!;
        expect(statSync(dirname(socket)).mode & 0o777).toBe(0o700);
        const argv = JSON.parse(readFileSync(argvFile, "utf8")) as string[];
        expect(argv[0]).toBe("$HOME;$(touch pwned)");
      } finally {
        await worker.stop();
      }
    } finally {
      plain.kill("SIGKILL");
    }
  });

  it("a runner refuses a non-loopback --tcp-socket unless RRQ_RUNNER_ALLOW_REMOTE=1", () => {
    const refused = spawnSync(process.execPath, [NODE_RUNNER, "--tcp-socket", "0.0.0.0:45999"], {
      encoding: "utf8",
      env: { ...process.env, RRQ_RUNNER_ALLOW_REMOTE: "" },
    });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain("refusing non-loopback TCP socket '0.0.0.0:45999'");
  });
});
