/**
 * A worker connection with a command timeout on a silent link (blackhole: socket open, no bytes
 * flow): a command written to it fails with "Command timed out" instead of waiting without bound,
 * the PING probe reports the outage and drops the silent socket, a command that timed out never
 * runs later when the link comes back (nobody waits for its reply), and one not yet sent waits
 * for the link as it does during a refused outage.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FaultProxy } from "../chaos/lib/fault-proxy.js";
import { RedisMonitor } from "../src/orchestrator/redis-monitor.js";
import { connectRedis } from "../src/store/redis.js";
import { EventBus, type OrchestratorEvents } from "../src/telemetry/events.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";
import { waitFor } from "./support/worker-harness.js";

let redis: TestRedis;
let direct: Redis;
beforeAll(async () => {
  redis = await startRedis();
  direct = new Redis(redis.url);
});
afterAll(async () => {
  direct?.disconnect();
  await redis?.stop();
});

describe("a silent Redis link", () => {
  it("times commands out, is reported and dropped, and never runs a timed-out command", async () => {
    const proxy = new FaultProxy({ port: redis.port });
    await proxy.listen();
    const events = new EventBus();
    const downs: OrchestratorEvents["redis:down"][] = [];
    const ups: OrchestratorEvents["redis:up"][] = [];
    events.on("redis:down", (e) => downs.push(e));
    events.on("redis:up", (e) => ups.push(e));
    const monitor = new RedisMonitor(events);
    const conn = connectRedis(proxy.url(), { name: "silent-test", commandTimeoutMs: 300 });
    monitor.attach(conn, "main");
    const stop = monitor.watchSilence(conn, "main", { intervalMs: 100, timeoutMs: 300 });
    try {
      expect(await conn.incr("silent:a")).toBe(1);
      proxy.mode({ kind: "blackhole" });
      // in flight on the silent socket
      await expect(conn.incr("silent:a")).rejects.toThrow(/Command timed out/);
      await waitFor(() => downs.length > 0, 5000, "the silent link to be reported");
      expect(downs[0]).toMatchObject({ first: true });
      expect(downs[0]!.reason).toMatch(/no reply within 0.3s/);
      // not sent yet (the reconnect's handshake is held): it waits for the link, as during a
      // refused outage, instead of timing out
      let queuedDone = false;
      const queued = conn.incr("silent:b").finally(() => (queuedDone = true));
      await new Promise((r) => setTimeout(r, 800));
      expect(queuedDone).toBe(false);
      proxy.mode({ kind: "pass" });
      await waitFor(() => ups.length > 0, 10_000, "the reconnect");
      expect(await queued).toBe(1);
      // the command that timed out on the silent socket never ran, then or now
      await new Promise((r) => setTimeout(r, 300));
      expect(await direct.get("silent:a")).toBe("1");
    } finally {
      stop();
      conn.disconnect();
      await proxy.close();
    }
  }, 30_000);

  it("does not time a command out when its reply arrived while the process was paused", async () => {
    const conn = connectRedis(redis.url, { name: "paused-test", commandTimeoutMs: 200 });
    try {
      await conn.ping();
      const reply = conn.incr("paused:a");
      // a blocked event loop (or SIGSTOP): the reply arrives, but the timer is due first
      const until = Date.now() + 500;
      while (Date.now() < until) {
        // busy
      }
      expect(await reply).toBe(1);
    } finally {
      conn.disconnect();
    }
  });
});
