/** The outcome table's timeout rule (pure logic): whichever clock fires, one message. */
import { describe, expect, it } from "vitest";
import { decide, type RetryPolicy } from "../src/orchestrator/decisions.js";
import { parseJob } from "../src/store/job.js";

const job = parseJob("j1", {
  id: "j1",
  function_name: "sleep",
  status: "ACTIVE",
  enqueue_time: "2026-01-01T00:00:00+00:00",
});
const policy: RetryPolicy = {
  defaultMaxRetries: 3,
  baseRetryDelaySeconds: 0.5,
  maxRetryDelaySeconds: 5,
};
const timeout = (message: string | undefined) =>
  decide(
    job,
    {
      job_id: "j1",
      request_id: "r1",
      status: "timeout",
      error: message === undefined ? undefined : { message, type: "timeout" },
    },
    policy,
    1,
  );

describe("decide: runner-reported timeouts", () => {
  it("records a runner's own deadline expiry as the orchestrator's timeout message", () => {
    // The last one is RRQ 0.11's Python runtime (trailing period); seen when its clock wins.
    for (const message of [
      undefined,
      "Job execution timed out",
      "Job deadline exceeded",
      "Job execution timed out.",
    ]) {
      expect(timeout(message)).toEqual({
        kind: "dlq",
        error: "Job timed out after 1s.",
        outcome: "timeout",
      });
    }
  });

  it("keeps a handler's own timeout message", () => {
    expect(timeout("upstream API timed out")).toMatchObject({ error: "upstream API timed out" });
  });
});
