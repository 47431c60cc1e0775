/**
 * The conformance harness's run-time expectations (flow control: running_at_once, start_order,
 * share), over job hashes given directly: pure logic, no Redis. The cases in
 * conformance/cases/e2e/flow-control.json run them against real orchestrators.
 */
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import type { CheckContext, KnownJob } from "../src/conformance/e2e-checks.js";
import { checkRunTimes } from "../src/conformance/e2e-run-times.js";
import { formatTimestamp } from "../src/store/encoding.js";

/** A context whose jobs ran over the given [start, end] epoch-ms intervals (by alias). */
function context(runs: Record<string, [number, number] | undefined>): CheckContext {
  const jobs = new Map<string, KnownJob>(
    Object.keys(runs).map((alias) => [alias, { id: `id-${alias}`, step: {} }]),
  );
  const redis = {
    hmget: (key: string) => {
      const run = runs[key.replace("rrq:job:id-", "")];
      return Promise.resolve(run ? run.map(formatTimestamp) : [null, null]);
    },
  } as unknown as Redis;
  return {
    jobs,
    redis,
    adapter: undefined as never,
    receiver: undefined as never,
    waitDone: () => Promise.resolve({ status: "COMPLETED" }),
  };
}

const T = 1_800_000_000_000;

describe("conformance run-time expectations", () => {
  it("running_at_once counts overlaps, an end at the instant of a start first", async () => {
    const ctx = context({
      "c#0": [T, T + 100],
      "c#1": [T + 10, T + 200],
      "c#2": [T + 100, T + 300], // starts when c#0 ends: still two at once
    });
    expect(await checkRunTimes("x", { running_at_once: "c#*", max: 2, min: 2 }, ctx)).toEqual([]);
    const [failure] = await checkRunTimes("x", { running_at_once: "c#*", max: 1 }, ctx);
    expect(failure!.message).toBe("2 ran at once (c#0, c#1), expected at most 1");
    expect(await checkRunTimes("x", { running_at_once: ["c#0"], min: 2 }, ctx)).toHaveLength(1);
  });

  it("start_order checks groups and, with serial, that each started after the previous completed", async () => {
    const ctx = context({
      a0: [T, T + 50],
      a1: [T + 50, T + 60],
      a2: [T + 55, T + 70], // overlaps a1
      "h#0": [T, T + 1],
      "h#1": [T + 2, T + 3],
      "l#0": [T + 1, T + 2], // between the two h jobs
    });
    expect(await checkRunTimes("x", { start_order: ["a0", "a1", "a2"] }, ctx)).toEqual([]);
    const serial = await checkRunTimes("x", { start_order: ["a0", "a1", "a2"], serial: true }, ctx);
    expect(serial.map((f) => f.message)).toEqual(["a2 started before a1 completed"]);
    expect(await checkRunTimes("x", { start_order: ["a2", "a1"] }, ctx)).toHaveLength(1);
    const groups = await checkRunTimes("x", { start_order: ["h#*", "l#*"] }, ctx);
    expect(groups.map((f) => f.message)).toEqual(["l#0 started before h#1"]);
  });

  it("share counts the first starts of one group among several", async () => {
    const ctx = context({
      "h#0": [T, T + 1],
      "h#1": [T + 2, T + 3],
      "l#0": [T + 4, T + 5],
      "h#2": [T + 6, T + 7],
      "l#1": [T + 8, T + 9],
    });
    const e = { share: "h#*", among: ["h#*", "l#*"], first: 4 };
    expect(await checkRunTimes("x", { ...e, min: 3, max: 3 }, ctx)).toEqual([]);
    const [failure] = await checkRunTimes("x", { ...e, min: 4 }, ctx);
    expect(failure!.message).toContain("3 of the first 4 starts were of h#*");
  });

  it("a job without run times fails with the fields it has, and an unknown alias throws", async () => {
    const ctx = context({ a: [T, T + 1], b: undefined });
    const [failure] = await checkRunTimes("x", { running_at_once: ["a", "b"], max: 1 }, ctx);
    expect(failure!.rule).toBe("the job hash has start_time and completion_time");
    await expect(checkRunTimes("x", { running_at_once: "zz#*" }, ctx)).rejects.toThrow(
      "x names job 'zz#*', which it never enqueued",
    );
  });
});
