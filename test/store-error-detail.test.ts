/**
 * The job-hash fields beside last_error (README "Job hashes gain additive fields"): written by
 * the retry and DLQ scripts, replaced or removed by the next failure, removed when a release or
 * a recovery writes a last_error of its own.
 */
import { describe, expect, it } from "vitest";
import { useStoreFixture } from "./support/store-fixture.js";

const f = useStoreFixture();
const WORKER = "w-detail";

/** Claims the one job of queue q (enqueued by {@link enqueued}); returns the attempt to write with. */
async function claim(jobId: string) {
  const { claimed } = await f.store.claim("rrq:queue:q", WORKER, 1, 60_000);
  expect(claimed.map((c) => c.id)).toEqual([jobId]);
  return { jobId, workerId: WORKER, fence: claimed[0]!.hash.lease_fence! };
}
const enqueued = () => f.producer.enqueue("f", {}, { queueName: "q", maxRetries: 5 });
const hash = (id: string) => f.redis.client.hgetall(`rrq:job:${id}`);

describe("last_error_type / last_error_traceback", () => {
  it("a retry writes both and run_<k>_error_type; the next failure replaces or removes them", async () => {
    const id = await enqueued();
    let a = await claim(id);
    const detail = { type: "RuntimeError", traceback: "Traceback ...\nRuntimeError: x\n" };
    expect(await f.store.retry(a, "q", Date.now(), "x", detail)).toBe("written");
    // the retry is counted in its UTC minute too (the dashboard's per-minute chart), kept 2 hours
    const minutes = await f.redis.client.keys("rrq:stats:minute:*");
    expect(minutes).toHaveLength(1);
    expect(minutes[0]).toMatch(/^rrq:stats:minute:\d{4}-\d\d-\d\dT\d\d:\d\d$/);
    expect(await f.redis.client.hget(minutes[0]!, "retried")).toBe("1");
    expect(await f.redis.client.ttl(minutes[0]!)).toBeGreaterThan(7000);
    expect(await hash(a.jobId)).toMatchObject({
      last_error: "x",
      last_error_type: "RuntimeError",
      last_error_traceback: detail.traceback,
      run_1_error_type: "RuntimeError",
    });
    a = await claim(id);
    expect(await f.store.retry(a, "q", Date.now(), "y", { type: "E", traceback: null })).toBe(
      "written",
    );
    let h = await hash(a.jobId);
    expect(h).toMatchObject({ last_error: "y", last_error_type: "E", run_2_error_type: "E" });
    expect(h).not.toHaveProperty("last_error_traceback");
    a = await claim(id);
    expect(await f.store.moveToDlq(a, "rrq:dlq:d", "z", true)).toBe("written");
    h = await hash(a.jobId);
    expect(h.last_error).toBe("z");
    expect(h).not.toHaveProperty("last_error_type");
    expect(h).not.toHaveProperty("run_3_error_type");
    expect(h.run_1_error_type).toBe("RuntimeError"); // earlier runs keep theirs
  });

  it("a release with a reason removes them (it is no handler's error)", async () => {
    const id = await enqueued();
    await f.store.retry(await claim(id), "q", Date.now(), "x", { type: "E", traceback: "tb" });
    const b = await claim(id);
    expect(await f.store.release(b, "q", "no runner")).toBe("written");
    const h = await hash(b.jobId);
    expect(h.last_error).toBe("no runner");
    expect(h).not.toHaveProperty("last_error_type");
    expect(h).not.toHaveProperty("last_error_traceback");
  });

  it("a recovery removes them with its own last_error", async () => {
    const id = await enqueued();
    await f.store.retry(await claim(id), "q", Date.now(), "x", { type: "E", traceback: "tb" });
    const b = await claim(id);
    await f.redis.client.del(`rrq:lock:job:${b.jobId}`); // the lease lapsed: the worker is gone
    const options = { defaultQueue: "rrq:queue:q", maxRecoveries: 3, leaseMs: 60_000 };
    const { verdict } = await f.store.recoverJob(b.jobId, "w-other", WORKER, options);
    expect(verdict).toBe("recovered");
    const h = await hash(b.jobId);
    expect(h.last_error).toBe("Recovered after lock expiry or worker crash.");
    expect(h).not.toHaveProperty("last_error_type");
    expect(h).not.toHaveProperty("last_error_traceback");
  });
});
