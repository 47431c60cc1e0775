/**
 * rrqkit/testing's live helper: a private redis-server and an in-process orchestrator serving a
 * Registry, with a real producer.
 */
import { NonRetryableError, Registry } from "@rrqkit/runner";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startLiveRrq, type LiveRrq } from "../src/testing/index.js";

let live: LiveRrq;

beforeAll(async () => {
  const registry = new Registry()
    .register("echo", (request) => request.params)
    .register("refuse", () => {
      throw new NonRetryableError("no");
    });
  live = await startLiveRrq({ registry, config: { default_max_retries: 2 } });
}, 30_000);

afterAll(async () => {
  await live?.stop();
});

it("runs jobs through a real orchestrator", async () => {
  expect(live.redisUrl).toMatch(/^redis:\/\/127\.0\.0\.1:\d+\/0$/);
  const id = await live.producer.enqueue("echo", { a: 1 });
  const done = await live.producer.waitForCompletion(id, { timeoutSeconds: 20 });
  expect(done).toMatchObject({ status: "COMPLETED", result: { a: 1 } });
  const refused = await live.producer.enqueue("refuse", {});
  expect(await live.producer.waitForCompletion(refused, { timeoutSeconds: 20 })).toMatchObject({
    status: "FAILED",
  });
  expect(live.producer.config.maxRetries).toBe(2);
});
