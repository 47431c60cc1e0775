/** Live jobs storage (issue 23): config keys, key names, the live store against a real Redis. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import { covers, normalizeTags, parseRequires, tagsProblem } from "../src/live/tags.js";
import { flowNeedsKey, liveChannel, outputKey } from "../src/store/keys.js";
import { LiveStore, outputTtlSeconds } from "../src/store/live-store.js";
import { registerScripts } from "../src/store/scripts.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

const runners = { gpu: { cmd: ["node", "r.js"] } };

describe("live config", () => {
  it("has defaults", () => {
    const c = resolveConfig({});
    expect(c.runnerHelloTimeoutMs).toBe(1000);
    expect(c.progressWritesPerSecond).toBe(4);
    expect(c.outputMaxBytesPerAttempt).toBe(8 * 1024 * 1024);
    expect(c.runnerTags.size).toBe(0);
    expect(c.runnerHello.size).toBe(0);
  });

  it("reads runner_tags and runner_hello tables, normalizing tags", () => {
    const c = resolveConfig({
      runners,
      runner_tags: { gpu: ["region:eu", "gpu", "gpu"] },
      runner_hello: { gpu: true },
      runner_hello_timeout_ms: 250,
      progress_writes_per_second: 2,
      output_max_bytes_per_attempt: 0,
    });
    expect(c.runnerTags.get("gpu")).toEqual(["gpu", "region:eu"]);
    expect(c.runnerHello.get("gpu")).toBe(true);
    expect(c.runnerHelloTimeoutMs).toBe(250);
    expect(c.progressWritesPerSecond).toBe(2);
    expect(c.outputMaxBytesPerAttempt).toBe(0);
  });

  it("rejects bad tags, unknown runners and bad numbers, naming the keys", () => {
    expect(() =>
      resolveConfig({
        runners,
        runner_tags: { gpu: ["has space"], cpu: ["x"] },
        runner_hello: { gpu: "yes" },
        progress_writes_per_second: 0,
      }),
    ).toThrow(
      /runner_tags\.gpu.*no tag[\s\S]*runner_tags\.cpu: no runner[\s\S]*runner_hello\.gpu[\s\S]*progress_writes_per_second/,
    );
  });
});

describe("tags", () => {
  it("validate, normalize, cover", () => {
    expect(tagsProblem(["gpu", "a/b=c"], "requires", 16)).toBeUndefined();
    expect(tagsProblem(["x".repeat(65)], "requires", 16)).toMatch(/no tag/);
    expect(
      tagsProblem(
        Array.from({ length: 17 }, (_, i) => `t${i}`),
        "requires",
        16,
      ),
    ).toMatch(/at most 16/);
    expect(normalizeTags(["b", "a", "b"])).toEqual(["a", "b"]);
    expect(covers(new Set(["gpu", "eu"]), ["gpu"])).toBe(true);
    expect(covers(["eu"], ["gpu"])).toBe(false);
    expect(parseRequires('["z","gpu"]')).toEqual(["gpu", "z"]);
    expect(parseRequires("nonsense")).toEqual([]);
    expect(flowNeedsKey("python", ["gpu", "z"])).toBe("rrq:fc:needs:python:gpu,z");
  });
});

describe("LiveStore", () => {
  let redis: TestRedis;
  let store: LiveStore;
  beforeAll(async () => {
    redis = await startRedis();
    store = new LiveStore(redis.client, registerScripts(redis.client));
  });
  afterAll(async () => redis.stop());
  beforeEach(async () => redis.flush());

  it("writes progress only into an existing hash of the same attempt, and publishes it", async () => {
    const sub = redis.client.duplicate();
    const heard: string[] = [];
    await sub.subscribe(liveChannel("j1"));
    sub.on("message", (_c, m) => heard.push(m));
    const value = {
      progress: 0.5,
      message: "halfway",
      detail: { n: 1 },
      at: "2026-01-01T00:00:00.000Z",
    };
    expect(await store.writeProgress("j1", "7", value)).toBe(false);
    expect(await redis.client.exists("rrq:job:j1")).toBe(0);
    await redis.client.hset("rrq:job:j1", "status", "ACTIVE", "lease_fence", "7", "runs", "2");
    expect(await store.writeProgress("j1", "6", value)).toBe(false);
    expect(await store.writeProgress("j1", "7", value)).toBe(true);
    expect(await store.readProgress("j1")).toEqual(value);
    expect(await store.latestRun("j1")).toBe(2);
    await store.addDroppedBytes("j1", "7", 10);
    expect(await redis.client.hget("rrq:job:j1", "output_dropped_bytes")).toBe("10");
    await new Promise((r) => setTimeout(r, 50));
    expect(heard.map((m) => JSON.parse(m) as unknown)).toEqual([
      {
        type: "progress",
        job_id: "j1",
        progress: 0.5,
        message: "halfway",
        detail: { n: 1 },
        at: value.at,
      },
    ]);
    await sub.quit();
  });

  it("appends output with a TTL and reads it from a cursor", async () => {
    await store.appendOutput(
      "j2",
      1,
      [
        { k: "log", d: "a\n" },
        { k: "err", d: "b" },
      ],
      60,
    );
    const first = await store.readOutput("j2", 1, "0", 1);
    expect(first.entries).toMatchObject([{ kind: "log", data: "a\n" }]);
    await store.appendOutput(
      "j2",
      1,
      [
        { k: "truncated", dropped: "5" },
        { k: "closed", status: "completed" },
      ],
      60,
    );
    const rest = await store.readOutput("j2", 1, first.cursor);
    expect(rest.entries).toMatchObject([
      { kind: "err", data: "b" },
      { kind: "truncated", dropped: 5 },
      { kind: "closed", status: "completed" },
    ]);
    expect(rest.closed).toBe(true);
    expect(await redis.client.ttl(outputKey("j2", 1))).toBeGreaterThan(50);
    const blocking = redis.client.duplicate();
    const waited = await store.waitOutput(blocking, "j2", 1, first.cursor, 100);
    expect(waited.entries).toHaveLength(3);
    blocking.disconnect();
    expect(outputTtlSeconds(0)).toBe(86400);
    expect(outputTtlSeconds(30)).toBe(30);
  });
});
