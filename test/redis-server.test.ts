/**
 * The private redis-server every test file and conformance run starts
 * (src/conformance/redis-server.ts): a server is only handed out once it is confirmed to be the
 * one answering on its port, since parallel starters can race for the same free port.
 */
import { describe, expect, it } from "vitest";
import { startRedis } from "../src/conformance/redis-server.js";

describe("startRedis", () => {
  it("refuses a port where another server answers instead of handing that server out", async () => {
    const taken = await startRedis();
    try {
      await expect(startRedis({ port: taken.port })).rejects.toThrow(
        /another server answers on port/,
      );
      // The other server is untouched.
      expect(await taken.client(0).ping()).toBe("PONG");
    } finally {
      await taken.stop();
    }
  });

  it("starts servers in parallel that are each their own", async () => {
    const servers = await Promise.all(Array.from({ length: 6 }, () => startRedis()));
    try {
      const pids = await Promise.all(
        servers.map(async (s) => /process_id:(\d+)/.exec(await s.client(0).info("server"))?.[1]),
      );
      expect(new Set(pids).size).toBe(servers.length);
      expect(pids).toEqual(servers.map((s) => String(s.process.pid)));
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  });
});
