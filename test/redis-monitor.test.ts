/**
 * RedisMonitor: one redis:down per outage (its reason and retry delay), repeats rate-limited
 * at a doubling interval or when the reason changes, and one redis:up at the end; credentials
 * never appear in a reason.
 */
import { EventEmitter } from "node:events";
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { describeRedisError, RedisMonitor } from "../src/orchestrator/redis-monitor.js";
import { EventBus, type OrchestratorEvents } from "../src/telemetry/events.js";

const refused = () =>
  Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6391"), {
    code: "ECONNREFUSED",
    address: "127.0.0.1",
    port: 6391,
  });

function setup() {
  let now = 1_000_000;
  const events = new EventBus();
  const downs: OrchestratorEvents["redis:down"][] = [];
  const ups: OrchestratorEvents["redis:up"][] = [];
  events.on("redis:down", (e) => downs.push(e));
  events.on("redis:up", (e) => ups.push(e));
  const monitor = new RedisMonitor(events, () => now);
  const main = new EventEmitter();
  const sub = new EventEmitter();
  monitor.attach(main as unknown as Redis, "main");
  monitor.attach(sub as unknown as Redis, "subscriber");
  /** One failed reconnect of a connection, `afterMs` after the previous. */
  const fail = (conn: EventEmitter, afterMs: number, error: Error | null = refused()) => {
    now += afterMs;
    if (error) conn.emit("error", error);
    conn.emit("reconnecting", 2000);
  };
  return { monitor, main, sub, downs, ups, fail, advance: (ms: number) => (now += ms) };
}

describe("RedisMonitor", () => {
  it("reports an outage once, then at 10 s, 20 s, 40 s, 60 s… intervals, and its end once", () => {
    const { monitor, main, sub, downs, ups, fail } = setup();
    fail(main, 0, null); // the drop itself: no reason yet, not reported
    expect(downs).toHaveLength(0);
    fail(main, 100);
    fail(sub, 0);
    for (let i = 0; i < 60; i++) fail(main, 2000); // two minutes of failed reconnects
    expect(downs[0]).toMatchObject({ first: true, reason: "ECONNREFUSED 127.0.0.1:6391" });
    expect(downs[0]!.retryInMs).toBe(2000);
    expect(downs.slice(1).every((d) => !d.first)).toBe(true);
    // 120 s: lines at 0, 10, 30, 70 and 130 would be due; 4 fit
    expect(downs.length).toBeGreaterThanOrEqual(3);
    expect(downs.length).toBeLessThanOrEqual(5);
    expect(monitor.isDown).toBe(true);
    main.emit("ready");
    expect(ups).toHaveLength(0); // the subscriber is still down
    sub.emit("ready");
    expect(ups).toHaveLength(1);
    expect(ups[0]!.downForMs).toBeGreaterThan(100_000);
    expect(monitor.isDown).toBe(false);
    expect(monitor.outages).toBe(1);
  });

  it("reports again at once when the reason changes, but not for a connection merely closing", () => {
    const { main, sub, downs, fail } = setup();
    fail(main, 0);
    fail(sub, 10, null);
    fail(main, 100, new Error("WRONGPASS invalid username-password pair"));
    expect(downs.map((d) => d.reason)).toEqual([
      "ECONNREFUSED 127.0.0.1:6391",
      "WRONGPASS invalid username-password pair",
    ]);
  });

  it("never shows credentials", () => {
    expect(describeRedisError(new Error("cannot reach redis://user:hunter2@db:6379/0"))).toBe(
      "cannot reach redis://user:***@db:6379/0",
    );
    expect(describeRedisError(undefined)).toBe("connection closed");
  });
});
