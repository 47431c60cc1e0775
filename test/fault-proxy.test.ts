import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FaultProxy } from "../chaos/lib/fault-proxy.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

function client(url: string): Redis {
  const c = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: () => 20 });
  c.on("error", () => undefined);
  return c;
}

describe("chaos FaultProxy", () => {
  it("passes, blackholes (held bytes flow after), delays and resets", async () => {
    const proxy = new FaultProxy({ port: redis.port });
    await proxy.listen();
    const c = client(proxy.url());
    try {
      expect(await c.set("fp:a", "1")).toBe("OK");
      proxy.mode({ kind: "blackhole" });
      let answered = false;
      const pending = c.get("fp:a").then((v) => ((answered = true), v));
      await new Promise((r) => setTimeout(r, 300));
      expect(answered).toBe(false);
      expect(proxy.connections).toBe(1);
      proxy.mode({ kind: "pass" });
      expect(await pending).toBe("1");
      proxy.mode({ kind: "latency", ms: 150 });
      const t0 = Date.now();
      expect(await c.get("fp:a")).toBe("1");
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      proxy.mode({ kind: "reset", everyMs: [50, 80] });
      await new Promise((r) => setTimeout(r, 600));
      expect(proxy.resets).toBeGreaterThan(2);
      proxy.mode({ kind: "pass" });
      expect(await c.get("fp:a")).toBe("1");
    } finally {
      c.disconnect();
      await proxy.close();
    }
  });

  it("resetAfter delivers the matching command and loses its reply", async () => {
    const proxy = new FaultProxy({ port: redis.port });
    await proxy.listen();
    const c = client(proxy.url());
    try {
      await c.ping();
      proxy.resetAfter((chunk) => chunk.includes("fp:counter"));
      // ioredis re-sends the INCR after reconnecting: it runs twice.
      expect(await c.incr("fp:counter")).toBe(2);
      expect(await redis.client.get("fp:counter")).toBe("2");
    } finally {
      c.disconnect();
      await proxy.close();
    }
  });
});
