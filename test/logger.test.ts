/**
 * attachLogging: which events it logs at which level, and that the two per-job events cost
 * nothing at info level (no listener, so the emitters build no payload).
 */
import { Writable } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { EventBus } from "../src/telemetry/events.js";
import { attachLogging, resolveLogFormat } from "../src/telemetry/logger.js";

function capture(level: string): { events: EventBus; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const events = new EventBus();
  attachLogging(events, pino({ level }, sink));
  const lines = () =>
    chunks
      .join("")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { events, lines };
}

const claimed = { jobId: "j1", queue: "rrq:queue:default", functionName: "echo", attempt: 1 };
const completed = { jobId: "j1", queue: "rrq:queue:default", runner: "node", attempt: 1 };

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

  it("resolves the log format from the explicit choice, then the environment, then the tty", () => {
    expect(resolveLogFormat("text", {}, false)).toBe("pretty");
    expect(resolveLogFormat(undefined, { RUST_LOG_FORMAT: "json" }, true)).toBe("json");
    expect(resolveLogFormat(undefined, {}, true)).toBe("pretty");
    expect(resolveLogFormat(undefined, {}, false)).toBe("json");
  });
});
