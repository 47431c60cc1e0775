/**
 * Runner behaviour beyond request handling: hello negotiation, the stdio stdout guard, invalid
 * input from the golden vectors fed to a live runner, signals to handlers, and the parent-death
 * guard.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { Registry } from "../src/runtime/registry.js";
import { RunnerRuntime } from "../src/runtime/runtime.js";
import { codecFor, listenFrames, connectFrames } from "../src/protocol/index.js";
import { cancel, request } from "./support/requests.js";
import {
  freePort,
  NODE_CONFORMANCE_RUNNER,
  RunnerProcess,
  TestClient,
} from "./support/runner-process.js";
import { loadVectors } from "./support/vectors.js";

const started: RunnerProcess[] = [];
async function start(...args: Parameters<typeof RunnerProcess.start>) {
  const runner = await RunnerProcess.start(...args);
  started.push(runner);
  return runner;
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((r) => r.stop()));
});

describe("hello negotiation", () => {
  it.each(["stdio", "unix", "tcp"] as const)(
    "over %s sends hello first only when RRQ_RUNNER_HELLO=1",
    async (transport) => {
      const withHello = await start({ transport, env: { RRQ_RUNNER_HELLO: "1" } });
      const client = await withHello.connect();
      const hello = await client.next();
      expect(hello.type).toBe("hello");
      expect(hello.payload).toMatchObject({
        protocol_version: "2",
        runtime: "rrqkit-node",
        pid: withHello.child.pid,
        max_in_flight: 64,
        features: expect.arrayContaining(["ping", "cancel_by_job", "stdout_guard"]),
      });

      const without = await start({ transport, env: { RRQ_RUNNER_HELLO: "" } });
      const plain = await without.connect();
      const r = request("echo", { x: 1 });
      plain.send(r.frame);
      const first = await plain.next();
      expect(first.type).toBe("response");
    },
  );
});

describe("stdio stdout guard", () => {
  it.each(["json", "msgpack"] as const)(
    "keeps handler output off the frame stream (%s)",
    async (encoding) => {
      const runner = await start({ transport: "stdio", encoding });
      const client = await runner.connect();
      const noisy = request("noise", { lines: 5 });
      const after = request("echo", { after: true });
      client.send(noisy.frame);
      client.send(after.frame);
      expect(await client.response(noisy.requestId)).toMatchObject({
        status: "success",
        result: { lines: 5 },
      });
      expect(await client.response(after.requestId)).toMatchObject({ result: { after: true } });
      expect(runner.stderr).toContain("noise 4");
    },
  );
});

describe("invalid vectors fed to a live runner", () => {
  const invalid = loadVectors().filter((v) => v.kind === "invalid");
  it.each(invalid.map((v) => [`${v.encoding}/${v.name}`, v] as const))("%s", async (_name, v) => {
    const runner = await start({ transport: "unix", encoding: v.encoding });
    const client = await runner.connect();
    client.connection.sendRaw(v.bytes);
    if (v.action === "close") {
      if (v.error === "frame_truncated") client.connection.close();
      await client.waitClosed();
    } else if (v.action === "reply_error") {
      const reply = await client.next((f) => f.type === "response");
      expect(reply.payload).toMatchObject(v.reply!);
    }
    // Whatever happened to that connection, the runner still serves new ones.
    const fresh = await runner.connect();
    const r = request("echo", { alive: true });
    fresh.send(r.frame);
    expect(await fresh.response(r.requestId)).toMatchObject({ result: { alive: true } });
    if (v.action === "ignore") expect(client.pending).toHaveLength(0);
  });
});

describe("signals reach handlers (in-process runtime)", () => {
  async function serve(registry: Registry) {
    const port = await freePort();
    const runtime = new RunnerRuntime(registry, { hello: false });
    const server = await listenFrames(
      { kind: "tcp", host: "127.0.0.1", port },
      codecFor("json"),
      (c) => runtime.serve(c),
    );
    const client = new TestClient(
      await connectFrames({ kind: "tcp", host: "127.0.0.1", port }, codecFor("json")),
    );
    return { client, close: () => server.close() };
  }

  it("aborts the handler's signal on deadline expiry, on cancel, and on connection close", async () => {
    const reasons: string[] = [];
    const registry = new Registry().register("wait", (_req, signal) => {
      return new Promise((_resolve, reject) => {
        signal.addEventListener("abort", () => {
          reasons.push((signal.reason as Error).name);
          reject(signal.reason as Error);
        });
      });
    });
    const { client, close } = await serve(registry);
    try {
      const expiring = request("wait", {}, { deadlineMs: 100 });
      client.send(expiring.frame);
      expect(await client.response(expiring.requestId)).toMatchObject({ status: "timeout" });

      const cancelled = request("wait");
      client.send(cancelled.frame);
      client.send(cancel(cancelled.jobId, cancelled.requestId));
      expect(await client.response(cancelled.requestId)).toMatchObject({
        error: { type: "cancelled" },
      });

      client.send(request("wait").frame);
      await new Promise((r) => setTimeout(r, 50));
      client.connection.close();
      await expect.poll(() => reasons.length).toBe(3);
      expect(reasons).toEqual(["TimeoutError", "AbortError", "AbortError"]);
    } finally {
      close();
    }
  });

  it("passes a signal to handlers that declare it or rest parameters, and none to `(request) =>`", async () => {
    const seen: Record<string, number> = {};
    const record = (name: string, args: unknown[]) => {
      seen[name] = args.length;
      return { signal: args[1] instanceof AbortSignal };
    };
    const registry = new Registry()
      .register("one", function (this: unknown, _req) {
        // eslint-disable-next-line prefer-rest-params
        return record("one", [...arguments]);
      })
      .register("two", (req, signal) => record("two", [req, signal]))
      .register("rest", (...args: unknown[]) => record("rest", args));
    const { client, close } = await serve(registry);
    try {
      for (const [name, signal] of [
        ["one", false],
        ["two", true],
        ["rest", true],
      ] as const) {
        const r = request(name);
        client.send(r.frame);
        expect(await client.response(r.requestId)).toMatchObject({
          status: "success",
          result: { signal },
        });
      }
      // Rest parameters also get the third, the live JobContext (RUNNER_PROTOCOL.md §13).
      expect(seen).toEqual({ one: 1, two: 2, rest: 3 });
      // A one-parameter handler can still be cancelled: the runtime answers for it.
      const never = new Registry().register("hang", (_req) => new Promise(() => {}));
      const second = await serve(never);
      try {
        const hang = request("hang");
        second.client.send(hang.frame);
        second.client.send(cancel(hang.jobId, hang.requestId));
        expect(await second.client.response(hang.requestId)).toMatchObject({
          error: { type: "cancelled" },
        });
      } finally {
        second.close();
      }
    } finally {
      close();
    }
  });

  it("answers with an error when the result cannot be framed, and discards late results", async () => {
    let release: () => void = () => {};
    const registry = new Registry()
      .register("huge", () => ({ data: "z".repeat(17 * 1024 * 1024) }))
      .register("late", () => new Promise((resolve) => (release = () => resolve({ late: true }))));
    const { client, close } = await serve(registry);
    try {
      const huge = request("huge");
      client.send(huge.frame);
      const out = await client.response(huge.requestId);
      expect(out.status).toBe("error");
      expect(out.error?.message).toMatch(/frame_too_large/);

      const late = request("late");
      client.send(late.frame);
      client.send(cancel(late.jobId, late.requestId));
      expect(await client.response(late.requestId)).toMatchObject({ error: { type: "cancelled" } });
      release();
      const probe = request("huge");
      client.send(probe.frame);
      await client.response(probe.requestId);
      expect(
        client.pending.filter(
          (f) => f.type === "response" && f.payload.request_id === late.requestId,
        ),
      ).toHaveLength(0);
    } finally {
      close();
    }
  });
});

describe("parent-death guard", () => {
  it("exits within 1 s after its parent is killed with SIGKILL", async () => {
    const port = await freePort();
    const parent = spawn(
      "bash",
      [
        "-c",
        `"${process.execPath}" "${NODE_CONFORMANCE_RUNNER}" --tcp-socket 127.0.0.1:${port} & echo $!; wait`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const runnerPid = await new Promise<number>((resolve) =>
      parent.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim()))),
    );
    // An orphan that exited stays a zombie until some init reaps it, so read its state.
    const alive = () => {
      try {
        const stat = readFileSync(`/proc/${runnerPid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
      } catch {
        return false;
      }
    };
    // Wait until the runner listens, so the guard is installed.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const c = await connectFrames({ kind: "tcp", host: "127.0.0.1", port }, codecFor("json"));
        c.close();
        break;
      } catch {
        if (Date.now() > deadline) throw new Error("runner did not start");
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    parent.kill("SIGKILL");
    await expect.poll(alive, { timeout: 1000, interval: 25 }).toBe(false);
  });
});
