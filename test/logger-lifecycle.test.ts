/**
 * attachLogging for the lifecycle events of issue 20 (design §E): operator-relevant ones at
 * info, heartbeats and snoozes only at debug (and without listeners at info level).
 */
import { describe, expect, it } from "vitest";
import { captureLogs } from "./support/log-capture.js";

const job = { jobId: "j1", functionName: "echo", queue: "rrq:queue:default", attempt: 1 };

describe("lifecycle log lines", () => {
  it("start, quiet, resume, stop, a running cancel, an expiry and a death handler at info", () => {
    const { events, lines } = captureLogs("info");
    events.emit("worker:started", { workerId: "w1", queues: ["rrq:queue:default"] });
    events.emit("worker:quiet", { workerId: "w1", source: "signal" });
    events.emit("worker:quiet", { workerId: "w1", source: "command" });
    events.emit("worker:resumed", { workerId: "w1" });
    events.emit("job:cancelled", { ...job, where: "running" });
    events.emit("job:expired", job);
    events.emit("death:handled", {
      jobId: "j1",
      handler: "on_death",
      handlerJobId: "death:j1:1:0",
    });
    events.emit("worker:stopping", { workerId: "w1", reason: "SIGTERM" });
    expect(lines().map((l) => [l.level, l.msg])).toEqual([
      [30, "worker started, serving rrq:queue:default"],
      [30, "quiet (SIGTSTP): claiming no new jobs, finishing the running ones"],
      [30, "quiet (rrq worker quiet): claiming no new jobs, finishing the running ones"],
      [30, "resumed: claiming jobs again"],
      [30, "job cancelled while running; runner asked to stop"],
      [30, "job expired before it started; not run"],
      [30, "death handler on_death enqueued for dead job j1"],
      [30, "worker stopping (SIGTERM)"],
    ]);
    expect(lines()[4]).toMatchObject({ job_id: "j1", function: "echo", where: "running" });
    expect(lines()[1]).toMatchObject({ worker_id: "w1", source: "signal" });
  });

  it("heartbeats and snoozes: debug lines, no listener at info", () => {
    const info = captureLogs("info");
    expect(info.events.has("worker:heartbeat")).toBe(false);
    expect(info.events.has("job:snoozed")).toBe(false);
    const debug = captureLogs("debug");
    debug.events.emit("worker:heartbeat", { workerId: "w1", active: 2, quiet: true });
    debug.events.emit("job:snoozed", { ...job, delaySeconds: 30, snoozes: 2 });
    expect(debug.lines()).toEqual([
      expect.objectContaining({ msg: "heartbeat", worker_id: "w1", active: 2, quiet: true }),
      expect.objectContaining({ msg: "job snoozed", job_id: "j1", delay_seconds: 30, snoozes: 2 }),
    ]);
  });
});
