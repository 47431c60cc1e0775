/**
 * Regressions for the bugs the fault-injection suite (chaos/) found: job hashes with odd but
 * harmless fields must run to one terminal state, and a frame before a bad length prefix in the
 * same read must still be delivered.
 */
import { randomUUID } from "node:crypto";
import { PassThrough } from "node:stream";
import { codecFor, FrameConnection, type Frame } from "@rrqkit/runner/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Producer } from "../src/producer/producer.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import {
  GOLDEN_SETTINGS,
  jobSettled,
  RunningWorker,
  testConfig,
  waitFor,
} from "./support/worker-harness.js";

let redis: TestRedis;
let producer: Producer;
let worker: RunningWorker;

beforeAll(async () => {
  redis = await startRedis();
  producer = new Producer({ redisDsn: redis.url });
  worker = await new RunningWorker(
    testConfig(redis.url, { ...GOLDEN_SETTINGS, default_job_timeout_seconds: 10 }),
  ).start();
});

afterAll(async () => {
  await worker?.stop();
  await producer?.close();
  await redis?.stop();
});

/** Enqueues `fn`, then overwrites fields of its hash as a foreign writer would, and releases it. */
async function planted(fn: string, fields: Record<string, string>): Promise<string> {
  const id = randomUUID();
  await producer.enqueue(fn, {}, { jobId: id, deferBySeconds: 3600, maxRetries: 2 });
  if (Object.keys(fields).length > 0) await redis.client.hset(`rrq:job:${id}`, fields);
  await redis.client.zadd("rrq:queue:default", Date.now(), id);
  return id;
}

const settled = (id: string) => jobSettled(redis.client, id);

/** No lease, lock or active-set entry is left for a finished job. */
async function released(id: string): Promise<boolean> {
  const [lock, lease] = await Promise.all([
    redis.client.exists(`rrq:lock:job:${id}`),
    redis.client.zscore("rrq:leases", id),
  ]);
  return lock === 0 && lease === null;
}

describe("odd job hashes", () => {
  it.each([["many"], ["1.5"], ["-3"], ["1e308"]])(
    "current_retries %s: a failing handler is retried and ends in the DLQ, never stuck ACTIVE",
    async (value) => {
      const id = await planted("fail", { current_retries: value });
      const hash = await settled(id);
      expect(hash.status).toBe("FAILED");
      expect(Number.isInteger(Number(hash.current_retries))).toBe(true);
      expect(await released(id)).toBe(true);
    },
  );

  it("result_ttl_seconds 1e300 completes and releases the job (EXPIRE refused it)", async () => {
    const id = await planted("echo", { result_ttl_seconds: "1e300" });
    expect((await settled(id)).status).toBe("COMPLETED");
    await waitFor(() => released(id), 5000, "lease released");
  });

  it.each([["2200000"], ["100000000000000"]])(
    "job_timeout_seconds %s (past setTimeout's and Date's range) runs the job",
    async (value) => {
      const id = await planted("echo", { job_timeout_seconds: value });
      const hash = await settled(id);
      expect(hash.status).toBe("COMPLETED");
      expect(hash.recovery_count).toBeUndefined();
    },
  );

  it("an empty id field runs under the key's id instead of breaking the runner connection", async () => {
    const id = await planted("echo", { id: "" });
    const hash = await settled(id);
    expect(hash.status).toBe("COMPLETED");
    expect(hash.current_retries).toBe("0");
  });

  it("a non-hash rrq:job key leaves the queue without failing the claim of other jobs", async () => {
    const bad = randomUUID();
    await redis.client.set(`rrq:job:${bad}`, "not a hash");
    const good = await planted("echo", {});
    await redis.client.zadd("rrq:queue:default", Date.now() - 1000, bad);
    const hash = await settled(good);
    expect(hash.status).toBe("COMPLETED");
    expect(hash.recovery_count).toBeUndefined();
    await waitFor(
      async () => (await redis.client.zscore("rrq:queue:default", bad)) === null,
      5000,
      "stale entry removed",
    );
    expect(await redis.client.get(`rrq:job:${bad}`)).toBe("not a hash");
  });
});

describe("runner restarts", () => {
  it("a runner killed mid-job by its handler is restarted at once each time (no growing backoff)", async () => {
    const before = worker.of("runner:respawn").length;
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await planted("crash", {}));
    for (const id of ids) expect((await settled(id)).status).toBe("FAILED");
    // a job fails when its connection closes; the respawn follows the process's exit event,
    // which a loaded machine may deliver a little later
    const respawns = await waitFor(
      () => {
        const seen = worker.of("runner:respawn").slice(before);
        return seen.length >= 2 ? seen : undefined;
      },
      10_000,
      "two respawns",
    );
    expect(respawns.every((r) => r.delayMs === 0)).toBe(true);
  });
});

describe("frame connection", () => {
  it("refuses a MessagePack map with a non-string key, as the Python and Rust codecs do", () => {
    // {"type": "ping", 1: "x"}
    const body = Buffer.from([
      0x82,
      0xa4,
      ...Buffer.from("type"),
      0xa4,
      ...Buffer.from("ping"),
      0x01,
      0xa1,
      0x78,
    ]);
    expect(() => codecFor("msgpack").decodeBody(body)).toThrow(/map keys must be strings/);
  });

  it("delivers a frame that precedes a bad length prefix in the same chunk, then closes", () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const codec = codecFor("json");
    const connection = new FrameConnection(input, output, codec);
    const frames: Frame[] = [];
    let closed: string | undefined;
    connection.on({
      frame: (frame) => frames.push(frame),
      close: (reason) => (closed = reason.kind === "decode" ? reason.error.code : reason.kind),
    });
    const ping = codec.encodeFrame({ type: "ping", payload: { nonce: "n1" } });
    input.emit("data", Buffer.concat([ping, Buffer.from([0xff, 0xff, 0xff, 0xff])]));
    expect(frames).toEqual([{ type: "ping", payload: { nonce: "n1" } }]);
    expect(closed).toBe("frame_too_large");
  });
});
