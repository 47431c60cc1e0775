/**
 * The scheduled DLQ caps (README "DLQ caps", src/retention/): one orchestrator a round, every
 * DLQ with a summary, age and length, the summary kept right.
 */
import { describe, expect, it } from "vitest";
import { dlqSummary } from "../src/api/dlq-summary.js";
import { resolveConfig } from "../src/config/config.js";
import { DLQ_TRIM_LEADER_KEY, DlqRetention } from "../src/retention/dlq-retention.js";
import { EventBus } from "../src/telemetry/events.js";
import { useStoreFixture } from "./support/store-fixture.js";

const f = useStoreFixture();
const WORKER = "w-retention";

/** Moves `n` jobs of function `fn` to `dlq`, failed `agoSeconds` ago (oldest first). */
async function dead(dlq: string, agoSeconds: number[]): Promise<string[]> {
  const ids: string[] = [];
  for (const ago of agoSeconds) {
    const id = await f.producer.enqueue("f", {}, { queueName: "q" });
    const { claimed } = await f.store.claim("rrq:queue:q", WORKER, 1, 60_000);
    const a = { jobId: id, workerId: WORKER, fence: claimed[0]!.hash.lease_fence! };
    expect(await f.store.moveToDlq(a, dlq, "boom", true)).toBe("written");
    const at = new Date(Date.now() - ago * 1000).toISOString().replace("Z", "+00:00");
    await f.redis.client.hset(`rrq:job:${id}`, "completion_time", at);
    ids.push(id);
  }
  return ids;
}

const retention = (settings: Record<string, unknown>) => {
  const config = resolveConfig({ redis_dsn: f.redis.url, ...settings });
  const events = new EventBus();
  const errors: Error[] = [];
  events.on("worker:error", (e) => errors.push(e.error));
  return { r: new DlqRetention(f.redis.client, config, WORKER, events), errors, config };
};

describe("DlqRetention", () => {
  it("is enabled only by a cap", () => {
    expect(DlqRetention.enabled(resolveConfig({}))).toBe(false);
    expect(DlqRetention.enabled(resolveConfig({ dlq_max_jobs: 5 }))).toBe(true);
    expect(DlqRetention.enabled(resolveConfig({ dlq_max_age_seconds: 60 }))).toBe(true);
  });

  it("trims every DLQ with a summary by age, the summaries kept right", async () => {
    const def = await dead("rrq:dlq:default", [7200, 7000, 10]);
    const other = await dead("rrq:dlq:payments", [9000, 20]);
    const { r, errors } = retention({ dlq_max_age_seconds: 3600 });
    expect(await r.pass()).toEqual(
      new Map([
        ["rrq:dlq:default", 2],
        ["rrq:dlq:payments", 1],
      ]),
    );
    expect(await f.redis.client.lrange("rrq:dlq:default", 0, -1)).toEqual([def[2]]);
    expect(await f.redis.client.lrange("rrq:dlq:payments", 0, -1)).toEqual([other[1]]);
    for (const dlq of ["rrq:dlq:default", "rrq:dlq:payments"]) {
      const s = await dlqSummary(f.redis.client, dlq);
      expect(s).toMatchObject({ entries: 1, jobs: 1, rebuilt: false });
    }
    expect(await r.pass()).toEqual(new Map());
    expect(errors).toEqual([]);
  });

  it("trims by length what a capped move did not (a foreign LPUSH, a lowered cap)", async () => {
    const ids = await dead("rrq:dlq:default", [50, 40, 30, 20, 10]);
    const { r } = retention({ dlq_max_jobs: 2 });
    expect(await r.pass()).toEqual(new Map([["rrq:dlq:default", 3]]));
    expect(await f.redis.client.lrange("rrq:dlq:default", 0, -1)).toEqual([ids[4], ids[3]]);
    expect(await f.redis.client.hget("rrq:stats:dlq:default", "trimmed")).toBe("3");
    expect(await dlqSummary(f.redis.client, "rrq:dlq:default")).toMatchObject({
      entries: 2,
      jobs: 2,
      trimmed: 3,
      rebuilt: false,
    });
  });

  it("runs a pass in one orchestrator a round (leader key rrq:dlq-trim)", async () => {
    await dead("rrq:dlq:default", [7200]);
    const one = retention({ dlq_max_age_seconds: 3600 });
    const two = retention({ dlq_max_age_seconds: 3600 });
    await one.r.round();
    expect(await f.redis.client.get(DLQ_TRIM_LEADER_KEY)).toBe(WORKER);
    const ttl = await f.redis.client.pttl(DLQ_TRIM_LEADER_KEY);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThan(60_000);
    expect(await f.redis.client.llen("rrq:dlq:default")).toBe(0);
    await dead("rrq:dlq:default", [7200]);
    await two.r.round(); // the key is held: no pass this round
    expect(await f.redis.client.llen("rrq:dlq:default")).toBe(1);
    await f.redis.client.del(DLQ_TRIM_LEADER_KEY);
    await two.r.round();
    expect(await f.redis.client.llen("rrq:dlq:default")).toBe(0);
  });
});
