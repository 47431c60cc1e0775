/** Failed-attempt log lines name the error type; the traceback goes on a debug line only. */
import { describe, expect, it } from "vitest";
import { captureLogs as capture } from "./support/log-capture.js";

const job = { jobId: "j1", queue: "rrq:queue:default", functionName: "charge", attempt: 1 };
const failure = { error: "boom", errorType: "RuntimeError", traceback: "Traceback ...\nboom\n" };

describe("failed attempts in the log", () => {
  it("at info level: the error type, no traceback", () => {
    const { events, lines } = capture("info");
    events.emit("job:retry", { ...job, ...failure, delaySeconds: 1, outcome: "error" });
    events.emit("job:dlq", { ...job, ...failure, outcome: "error" });
    expect(lines()).toEqual([
      expect.objectContaining({
        msg: "job will retry",
        error_type: "RuntimeError",
        outcome: "error",
      }),
      expect.objectContaining({ msg: "job moved to the DLQ", error_type: "RuntimeError" }),
    ]);
    expect(JSON.stringify(lines())).not.toContain("Traceback");
  });

  it("at debug level: the traceback on its own line", () => {
    const { events, lines } = capture("debug");
    events.emit("job:dlq", { ...job, ...failure, outcome: "error" });
    expect(lines()).toEqual([
      expect.objectContaining({ msg: "job moved to the DLQ" }),
      expect.objectContaining({
        msg: "job error traceback",
        job_id: "j1",
        traceback: failure.traceback,
      }),
    ]);
  });
});
