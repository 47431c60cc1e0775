/**
 * The Node runner's protocol behaviour, against the real conformance runner process, over every
 * transport and encoding (RUNNER_PROTOCOL.md §6–§10).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_FRAME_BYTES, type EncodingName, type TransportKind } from "../src/protocol/index.js";
import { cancel, request } from "./support/requests.js";
import { RunnerProcess, type TestClient } from "./support/runner-process.js";

const transports: TransportKind[] = ["stdio", "unix", "tcp"];
const encodings: EncodingName[] = ["json", "msgpack"];

describe.each(transports.flatMap((t) => encodings.map((e) => [t, e] as const)))(
  "node runner over %s + %s",
  (transport, encoding) => {
    let runner: RunnerProcess;
    let client: TestClient;

    beforeAll(async () => {
      runner = await RunnerProcess.start({ transport, encoding });
      client = await runner.connect();
    });
    afterAll(async () => {
      await runner.stop();
    });

    it("answers echo with a success whose result is the params", async () => {
      const r = request("echo", { a: 1, nested: { b: [true, null, "ü"] } });
      client.send(r.frame);
      const out = await client.response(r.requestId);
      expect(out).toEqual({
        job_id: r.jobId,
        request_id: r.requestId,
        status: "success",
        result: { a: 1, nested: { b: [true, null, "ü"] } },
        error: null,
        retry_after_seconds: null,
      });
    });

    it("wraps a raw return value as success", async () => {
      const r = request("flaky", { fail_until_attempt: 0 }, { attempt: 2 });
      client.send(r.frame);
      expect(await client.response(r.requestId)).toMatchObject({
        status: "success",
        result: { attempt: 2 },
      });
    });

    it("turns a thrown error into an error outcome with message and type", async () => {
      const r = request("throw", { message: "kaput" });
      client.send(r.frame);
      const out = await client.response(r.requestId);
      expect(out.status).toBe("error");
      expect(out.error).toMatchObject({ message: "kaput", type: "Error" });
      // The stack travels as error.traceback (RUNNER_PROTOCOL.md §7.1).
      expect(out.error?.traceback).toMatch(/^Error: kaput\n {4}at .*conformance-handlers\.js:\d+/);
    });

    it("passes retry_after_seconds through on retry", async () => {
      const r = request("retry", { after_seconds: 2.5, message: "later" });
      client.send(r.frame);
      expect(await client.response(r.requestId)).toMatchObject({
        status: "retry",
        retry_after_seconds: 2.5,
        error: { message: "later" },
      });
    });

    it("reports handler_not_found for an unknown handler", async () => {
      const r = request("missing");
      client.send(r.frame);
      expect(await client.response(r.requestId)).toMatchObject({
        status: "error",
        error: {
          type: "handler_not_found",
          message: "No handler registered for function 'missing'",
        },
      });
    });

    it("answers a request whose deadline already passed with timeout, without running it", async () => {
      const r = request("sleep", { ms: 5000 }, { deadlineMs: -1000 });
      client.send(r.frame);
      expect(await client.response(r.requestId)).toMatchObject({
        status: "timeout",
        error: { type: "timeout", message: "Job deadline exceeded" },
      });
    });

    it("times out a handler whose deadline expires while it runs", async () => {
      const r = request("sleep", { ms: 20_000 }, { deadlineMs: 300 });
      client.send(r.frame);
      expect(await client.response(r.requestId, 5000)).toMatchObject({
        status: "timeout",
        error: { type: "timeout", message: "Job execution timed out" },
      });
    });

    it("cancels one request by request_id", async () => {
      const r = request("sleep", { ms: 20_000 });
      client.send(r.frame);
      client.send(cancel(r.jobId, r.requestId));
      expect(await client.response(r.requestId, 5000)).toMatchObject({
        job_id: r.jobId,
        status: "error",
        error: { type: "cancelled", message: "Job cancelled" },
      });
    });

    it("cancels every in-flight request of a job when request_id is omitted", async () => {
      const jobId = `job-multi-${transport}-${encoding}`;
      const rs = [1, 2, 3].map(() => request("sleep", { ms: 20_000 }, { jobId }));
      const other = request("sleep", { ms: 300 });
      for (const r of [...rs, other]) client.send(r.frame);
      client.send(cancel(jobId));
      for (const r of rs) {
        expect(await client.response(r.requestId, 5000)).toMatchObject({
          error: { type: "cancelled" },
        });
      }
      expect(await client.response(other.requestId)).toMatchObject({ status: "success" });
    });

    it("accepts 64 in flight, rejects the 65th at once, and frees slots on cancel", async () => {
      const jobId = `job-cap-${transport}-${encoding}`;
      const rs = Array.from({ length: 64 }, () => request("sleep", { ms: 20_000 }, { jobId }));
      for (const r of rs) client.send(r.frame);
      const extra = request("echo", {});
      client.send(extra.frame);
      expect(await client.response(extra.requestId)).toMatchObject({
        status: "error",
        error: { message: "Runner busy: too many in-flight requests", type: null },
      });
      client.send(cancel(jobId));
      for (const r of rs) {
        expect(await client.response(r.requestId)).toMatchObject({ error: { type: "cancelled" } });
      }
      const after = request("echo", { ok: 1 });
      client.send(after.frame);
      expect(await client.response(after.requestId)).toMatchObject({ status: "success" });
    });

    it("refuses an unsupported protocol_version and keeps the connection", async () => {
      const bad = request("echo", {}, { protocolVersion: "3" });
      client.send(bad.frame);
      expect(await client.response(bad.requestId)).toMatchObject({
        status: "error",
        error: { message: "Unsupported protocol version", type: null },
      });
      const good = request("echo", { still: "open" });
      client.send(good.frame);
      expect(await client.response(good.requestId)).toMatchObject({ result: { still: "open" } });
    });

    it("replies out of order: a fast request overtakes a slow one", async () => {
      const slow = request("sleep", { ms: 400 });
      const fast = request("echo", { fast: true });
      client.send(slow.frame);
      client.send(fast.frame);
      const first = await client.next(
        (f) =>
          f.type === "response" && [slow.requestId, fast.requestId].includes(f.payload.request_id!),
      );
      expect(first.type === "response" && first.payload.request_id).toBe(fast.requestId);
      expect(await client.response(slow.requestId)).toMatchObject({ status: "success" });
    });

    it("round-trips a 15 MiB payload", async () => {
      const data = "y".repeat(15 * 1024 * 1024);
      const r = request("echo", { data });
      client.send(r.frame);
      const out = await client.response(r.requestId, 20_000);
      expect(out.status).toBe("success");
      expect((out.result as { data: string }).data.length).toBe(data.length);
    });

    it("answers ping with pong", async () => {
      client.send({ type: "ping", payload: { nonce: `n-${transport}` } });
      expect(await client.next((f) => f.type === "pong")).toEqual({
        type: "pong",
        payload: { nonce: `n-${transport}` },
      });
    });
  },
);

describe.each(transports.flatMap((t) => encodings.map((e) => [t, e] as const)))(
  "node runner over %s + %s: broken input",
  (transport, encoding) => {
    it("closes the connection on an oversized frame header", async () => {
      const runner = await RunnerProcess.start({ transport, encoding });
      try {
        const client = await runner.connect();
        const header = Buffer.alloc(4);
        header.writeUInt32BE(MAX_FRAME_BYTES + 1);
        client.connection.sendRaw(header);
        await client.waitClosed();
        if (transport !== "stdio") {
          const again = await runner.connect();
          const r = request("echo", { alive: true });
          again.send(r.frame);
          expect(await again.response(r.requestId)).toMatchObject({ result: { alive: true } });
        } else {
          // A decoding error ends the only connection: status 1 (RUNNER_PROTOCOL.md §5).
          expect(await runner.exited()).toBe(1);
        }
      } finally {
        await runner.stop();
      }
    });

    it("survives a peer that closes in the middle of a frame", async () => {
      const runner = await RunnerProcess.start({ transport, encoding });
      try {
        const client = await runner.connect();
        const r = request("sleep", { ms: 10_000 });
        client.send(r.frame);
        const header = Buffer.alloc(4);
        header.writeUInt32BE(100);
        client.connection.sendRaw(Buffer.concat([header, Buffer.from('{"ty')]));
        client.connection.close();
        if (transport === "stdio") {
          expect(await runner.exited()).toBe(0);
        } else {
          const again = await runner.connect();
          const ok = request("echo", { alive: true });
          again.send(ok.frame);
          expect(await again.response(ok.requestId)).toMatchObject({ result: { alive: true } });
        }
      } finally {
        await runner.stop();
      }
    });
  },
);
