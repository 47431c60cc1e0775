/**
 * attachLogging: which events it logs at which level, and that the two per-job events cost
 * nothing at info level (no listener, so the emitters build no payload).
 */
import { describe, expect, it } from "vitest";
import { resolveLogFormat } from "../src/telemetry/logger.js";
import { captureLogs as capture } from "./support/log-capture.js";

const claimed = { jobId: "j1", queue: "rrq:queue:default", functionName: "echo", attempt: 1 };
const completed = { ...claimed, runner: "node" };

describe("attachLogging", () => {
  it("at info level leaves the per-job events without listeners and logs nothing for them", () => {
    const { events, lines } = capture("info");
    expect(events.has("job:claimed")).toBe(false);
    expect(events.has("job:completed")).toBe(false);
    expect(events.has("job:dispatched")).toBe(false);
    events.emit("job:completed", { ...completed, durationMs: 3.4 });
    events.emit("job:dlq", { ...completed, error: "boom", outcome: "error" });
    expect(lines().map((l) => l.msg)).toEqual(["job moved to the DLQ"]);
  });

  it("at debug level logs a line per claimed and completed job", () => {
    const { events, lines } = capture("debug");
    expect(events.has("job:claimed")).toBe(true);
    events.emit("job:claimed", claimed);
    events.emit("job:completed", { ...completed, durationMs: 3.4 });
    expect(lines()).toEqual([
      expect.objectContaining({ msg: "job claimed", job_id: "j1", function: "echo", attempt: 1 }),
      expect.objectContaining({ msg: "job completed", job_id: "j1", duration_ms: 3 }),
    ]);
  });

  it("every line about a job carries its id, function name, queue and attempt", () => {
    const { events, lines } = capture("info");
    events.emit("job:dlq", { ...completed, error: "boom", outcome: "error" });
    events.emit("job:retry", { ...claimed, delaySeconds: 5, error: "x", outcome: "retry" });
    events.emit("job:released", { ...claimed, reason: "shutdown" });
    events.emit("job:fenced", { ...claimed, write: "complete" });
    events.emit("worker:error", { context: "job j1", error: new Error("bug"), job: claimed });
    events.emit("job:written-after-outage", {
      ...claimed,
      write: "complete",
      result: "written",
      waitedMs: 4200,
    });
    expect(lines().at(-1)).toMatchObject({
      level: 30,
      msg: "job outcome written after redis reconnected (complete: written)",
      waited_ms: 4200,
    });
    for (const line of lines())
      expect(line).toMatchObject({
        job_id: "j1",
        function: "echo",
        queue: "rrq:queue:default",
        attempt: 1,
      });
  });

  it("reports a Redis outage in one line with the retry delay, its end, and no stack for connection errors", () => {
    const { events, lines } = capture("info");
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6391"), {
      code: "ECONNREFUSED",
    });
    events.emit("redis:down", {
      first: true,
      reason: "ECONNREFUSED 127.0.0.1:6391",
      retryInMs: 2000,
      downForMs: 0,
      failures: 1,
    });
    events.emit("redis:down", {
      first: false,
      reason: "ECONNREFUSED 127.0.0.1:6391",
      retryInMs: 2000,
      downForMs: 35_000,
      failures: 20,
    });
    events.emit("redis:up", { downForMs: 37_400 });
    events.emit("worker:error", { context: "poll", error: refused });
    const logged = lines();
    expect(logged.map((l) => l.msg)).toEqual([
      "redis unreachable (ECONNREFUSED 127.0.0.1:6391), retrying in 2s",
      "redis still unreachable after 35s (ECONNREFUSED 127.0.0.1:6391), retrying in 2s",
      "redis reconnected after 37s",
      "poll: connect ECONNREFUSED 127.0.0.1:6391",
    ]);
    expect(JSON.stringify(logged)).not.toContain("stack");
  });

  it("resolves the log format from the explicit choice, then the environment, then the tty", () => {
    expect(resolveLogFormat("text", {}, false)).toBe("pretty");
    expect(resolveLogFormat(undefined, { RUST_LOG_FORMAT: "json" }, true)).toBe("json");
    expect(resolveLogFormat(undefined, {}, true)).toBe("pretty");
    expect(resolveLogFormat(undefined, {}, false)).toBe("json");
  });
});
