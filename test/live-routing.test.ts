/**
 * Routing by capability end to end (issue 23): a real redis-server, real orchestrators and
 * raw-frame runner subprocesses (test/fixtures/live-raw-runner.mjs) announcing tags.
 */
import { describe, expect, it } from "vitest";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { useProducerFixture, useWorkers } from "./support/producer-fixture.js";
import { jobSettled, rawRunnerConfig, waitFor } from "./support/worker-harness.js";

const fx = useProducerFixture();
const workers = useWorkers();

/** The raw runner as "raw" over tcp; the sweeper runs often (it must leave parked jobs be). */
const config = (extra: Record<string, unknown> = {}) =>
  rawRunnerConfig(fx.redis.url, { flow_sweep_interval_seconds: 0.1, ...extra });

/** Starts a worker on `c`, noting when its first runner is ready. */
async function startNoting(c: ReturnType<typeof config>): Promise<() => number> {
  let readyAt = 0;
  await workers.start(c, (w) => w.events.on("runner:ready", () => (readyAt ||= Date.now())));
  return () => readyAt;
}

describe("requires", () => {
  it("validates tags like the runners' (H-style, snake_case option)", async () => {
    await expect(fx.producer.enqueue("echo", {}, { requires: ["has space"] })).rejects.toThrow(
      /requires: "has space" is no tag/,
    );
    await expect(
      fx.producer.enqueue("echo", {}, { requires: Array.from({ length: 17 }, (_, i) => `t${i}`) }),
    ).rejects.toThrow(/at most 16/);
    const id = await fx.producer.enqueue("echo", {}, { requires: ["z", "gpu", "gpu"] });
    expect(await fx.redis.client.hget(`rrq:job:${id}`, "requires")).toBe('["gpu","z"]');
    const cli = await runCli(writeConfig(fx.redis.url), [
      "enqueue",
      "echo",
      "--requires",
      "z",
      "--requires",
      "gpu",
      "--json",
    ]);
    expect(cli.code).toBe(0);
    const { job_id: cliId } = JSON.parse(cli.out) as { job_id: string };
    expect(await fx.redis.client.hget(`rrq:job:${cliId}`, "requires")).toBe('["gpu","z"]');
    const bad = await runCli(writeConfig(fx.redis.url), ["enqueue", "echo", "--requires", "a b"]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/is no tag/);
  });

  it("a job requiring gpu waits without an attempt until a gpu-tagged runner joins, then starts within a second", async () => {
    await workers.start(config());
    const other = await fx.producer.enqueue("echo", {});
    const id = await fx.producer.enqueue("echo", {}, { requires: ["gpu"] });
    await jobSettled(fx.redis.client, other);
    const parked = await waitFor(async () => {
      const hash = await fx.redis.client.hgetall(`rrq:job:${id}`);
      return hash.fc_wait ? hash : undefined;
    });
    expect(parked).toMatchObject({ status: "PENDING", fc_wait: "rrq:fc:needs:raw:gpu" });
    expect(parked.runs).toBeUndefined();
    expect(await fx.redis.client.sismember("rrq:fc:waiting", "rrq:fc:needs:raw:gpu")).toBe(1);
    // no busy loop: the sweeper and the claims leave it parked
    await new Promise((r) => setTimeout(r, 500));
    expect(await fx.redis.client.hget(`rrq:job:${id}`, "runs")).toBeNull();
    const shown = await runCli(writeConfig(fx.redis.url), ["job", "show", id]);
    expect(shown.out).toMatch(/Waiting: waiting for a runner with gpu/);
    await workers.stopAll();

    const readyAt = await startNoting(config({ runner_tags: { raw: ["gpu", "region:eu"] } }));
    const done = await jobSettled(fx.redis.client, id);
    expect(done.status).toBe("COMPLETED");
    expect(done.runs).toBe("1");
    const startedAt = Date.parse(done.start_time!);
    expect(startedAt - readyAt()).toBeLessThan(1000);
    expect(await fx.redis.client.sismember("rrq:fc:waiting", "rrq:fc:needs:raw:gpu")).toBe(0);
  });

  it("in a cluster mixing workers with and without the tags, waiting jobs start within a second of a capable runner joining", async () => {
    const plain = [await workers.start(config()), await workers.start(config())];
    const ids = await Promise.all(
      Array.from({ length: 10 }, () => fx.producer.enqueue("echo", {}, { requires: ["gpu"] })),
    );
    await waitFor(async () => (await fx.redis.client.zcard("rrq:fc:needs:raw:gpu")) === 10);
    const readyAt = await startNoting(config({ runner_tags: { raw: ["gpu"] } }));
    for (const id of ids) {
      const done = await jobSettled(fx.redis.client, id);
      expect(done.runs).toBe("1");
      expect(Date.parse(done.start_time!) - readyAt()).toBeLessThan(1000);
    }
    expect(plain.every((w) => w.of("job:dispatched").length === 0)).toBe(true);
  });

  it("a worker with the tags runs such jobs at once; one without them leaves them to it", async () => {
    await workers.start(config({ runner_tags: { raw: ["gpu"] } }));
    const t0 = Date.now();
    const id = await fx.producer.enqueue("echo", {}, { requires: ["gpu"] });
    const done = await jobSettled(fx.redis.client, id);
    expect(done.status).toBe("COMPLETED");
    expect(Date.now() - t0).toBeLessThan(2000);
    const ids = await Promise.all(
      Array.from({ length: 5 }, () => fx.producer.enqueue("echo", {}, { requires: ["gpu"] })),
    );
    await workers.start(config());
    for (const j of ids) expect((await jobSettled(fx.redis.client, j)).status).toBe("COMPLETED");
  });
});
