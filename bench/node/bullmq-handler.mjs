// The BullMQ processor of the bench (in-process, and inside the sandbox via
// bullmq-processor.mjs): the same handlers as the conformance runners' `echo` and `sleep`.
import { appendFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

const execLog = process.env.RRQ_TEST_EXEC_LOG;

export async function handle(job) {
  if (execLog) {
    const ts = performance.timeOrigin + performance.now();
    appendFileSync(execLog, `${JSON.stringify({ job_id: job.id, ts_ms: ts })}\n`);
  }
  if (job.name === "sleep") {
    await sleep(job.data.ms ?? 100);
    return { slept_ms: job.data.ms ?? 100 };
  }
  return job.data;
}
