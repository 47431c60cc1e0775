/**
 * Flow-control producer options (issue 22) against a real redis-server: the hash fields they
 * write, the session order enqueue-fields-1.lua records, and that bad values are refused with
 * nothing written. The error table is the same in runners/python/tests/test_producer_flow.py
 * and runners/rust/tests/producer_flow.rs (one wording in every binding).
 */
import { describe, expect, it } from "vitest";
import { ProducerError } from "../src/errors.js";
import { optionsFromSnakeCase } from "../src/producer/options.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { useProducerFixture } from "./support/producer-fixture.js";

const fx = useProducerFixture();

const FLOW_FIELDS = [
  "concurrency_key",
  "concurrency_limit",
  "start_rate",
  "limit_name",
  "ordering_key",
];

async function flowFields(id: string): Promise<Record<string, string>> {
  const hash = await fx.redis.client.hgetall(`rrq:job:${id}`);
  return Object.fromEntries(Object.entries(hash).filter(([k]) => FLOW_FIELDS.includes(k)));
}

async function order(okey: string): Promise<string[]> {
  return fx.redis.client.zrange(`rrq:fc:order:${okey}`, 0, -1, "WITHSCORES");
}

describe("flow-control options are stored", () => {
  it("writes every field as the contract says, and the session order", async () => {
    const id = await fx.producer.enqueue(
      "charge",
      { a: 1 },
      {
        concurrencyKey: "tenant:1",
        concurrencyLimit: 3,
        startRate: { limit: 50, periodSeconds: 1 },
        limit: "api.v2",
        orderingKey: "order-9",
      },
    );
    expect(await flowFields(id)).toEqual({
      concurrency_key: "tenant:1",
      concurrency_limit: "3",
      start_rate: "50/1000",
      limit_name: "api.v2",
      ordering_key: "order-9",
    });
    expect(await order("order-9")).toEqual([id, "1"]);
    expect(await fx.redis.client.get("rrq:fc:seq")).toBe("1");
    expect(await fx.redis.client.zscore("rrq:queue:default", id)).not.toBeNull();
  });

  it("takes snake_case options (CLI, adapters) with start_rate.period_seconds", async () => {
    const options = optionsFromSnakeCase({
      limit: "emails",
      concurrency_limit: 2,
      start_rate: { limit: 10, period_seconds: 1.5 },
      ordering_key: "o",
    });
    const id = await fx.producer.enqueue("f", {}, options);
    expect(await flowFields(id)).toEqual({
      concurrency_limit: "2",
      start_rate: "10/1500",
      limit_name: "emails",
      ordering_key: "o",
    });
  });

  it("rounds the period to whole ms, at least 1", async () => {
    const rate = async (periodSeconds: number) =>
      (
        await flowFields(
          await fx.producer.enqueue(
            "f",
            {},
            { concurrencyKey: "k", startRate: { limit: 1, periodSeconds } },
          ),
        )
      ).start_rate;
    expect(await rate(0.0001)).toBe("1/1");
    expect(await rate(0.0004)).toBe("1/1");
    expect(await rate(2.0006)).toBe("1/2001");
    expect(await rate(86400)).toBe("1/86400000");
  });

  it("counts key lengths in characters (code points)", async () => {
    const key = "😀".repeat(256);
    const id = await fx.producer.enqueue("f", {}, { concurrencyKey: key, orderingKey: key });
    expect((await flowFields(id)).concurrency_key).toBe(key);
    await expect(fx.producer.enqueue("f", {}, { concurrencyKey: `${key}x` })).rejects.toThrow(
      "concurrency_key must be a string of 1 to 256 characters",
    );
  });

  it("writes nothing of flow control without the options", async () => {
    const id = await fx.producer.enqueue("f", {});
    expect(await flowFields(id)).toEqual({});
    expect(await fx.redis.client.exists("rrq:fc:seq")).toBe(0);
  });

  it("orders a session by enqueue order, across single and bulk enqueues", async () => {
    const a = await fx.producer.enqueue("f", {}, { orderingKey: "s", deferBySeconds: 60 });
    const [b, c] = await fx.producer.enqueueMany([
      { functionName: "f", options: { orderingKey: "s" } },
      { functionName: "f", options: { orderingKey: "other" } },
    ]);
    const d = await fx.producer.enqueue("f", {}, { orderingKey: "s" });
    expect(await order("s")).toEqual([a, "1", b, "2", d, "4"]);
    expect(await order("other")).toEqual([c, "3"]);
    expect(await flowFields(b!)).toEqual({ ordering_key: "s" });
  });

  it("an idempotent hit and a duplicate job id join no session again", async () => {
    const first = await fx.producer.enqueue("f", {}, { uniqueKey: "u", orderingKey: "s" });
    const again = await fx.producer.enqueue("f", { x: 1 }, { uniqueKey: "u", orderingKey: "t" });
    expect(again).toBe(first);
    await expect(
      fx.producer.enqueue("f", { y: 1 }, { jobId: first, orderingKey: "t" }),
    ).rejects.toMatchObject({ code: "duplicate_job_id" });
    expect(await order("s")).toEqual([first, "1"]);
    expect(await fx.redis.client.exists("rrq:fc:order:t")).toBe(0);
    expect((await flowFields(first)).ordering_key).toBe("s");
  });

  it("a debounce update keeps the job's place, or moves it to its new session", async () => {
    const options = { debounceKey: "d", debounceSeconds: 30 };
    const id = await fx.producer.enqueueWithDebounce(
      "f",
      { n: 1 },
      { ...options, orderingKey: "s" },
    );
    await fx.producer.enqueueWithDebounce("f", { n: 2 }, { ...options, orderingKey: "s" });
    expect(await order("s")).toEqual([id, "1"]);
    await fx.producer.enqueueWithDebounce("f", { n: 3 }, { ...options, orderingKey: "t" });
    expect(await fx.redis.client.exists("rrq:fc:order:s")).toBe(0);
    expect(await order("t")).toEqual([id, "2"]);
    expect((await flowFields(id)).ordering_key).toBe("t");
  });

  it("a claimed job gets no fields from a re-sent call", async () => {
    const id = await fx.producer.enqueue("f", {}, { jobId: "j1" });
    await fx.redis.client.hset(`rrq:job:${id}`, "status", "ACTIVE");
    await expect(
      fx.producer.enqueue("f", {}, { jobId: "j1", orderingKey: "s" }),
    ).rejects.toMatchObject({ code: "duplicate_job_id" });
    expect(await fx.redis.client.exists("rrq:fc:order:s")).toBe(0);
  });
});

/** Options (snake_case, as JSON gives them) → the one message every binding gives. */
const ERRORS: [Record<string, unknown>, string][] = [
  [{ concurrency_key: "" }, "concurrency_key must be a string of 1 to 256 characters"],
  [{ concurrency_key: "x".repeat(257) }, "concurrency_key must be a string of 1 to 256 characters"],
  [{ concurrency_key: 5 }, "concurrency_key must be a string of 1 to 256 characters"],
  [{ ordering_key: "" }, "ordering_key must be a string of 1 to 256 characters"],
  [{ ordering_key: ["a"] }, "ordering_key must be a string of 1 to 256 characters"],
  [
    { concurrency_key: "k", concurrency_limit: 0 },
    "concurrency_limit must be an integer from 1 to 100000",
  ],
  [
    { concurrency_key: "k", concurrency_limit: 1.5 },
    "concurrency_limit must be an integer from 1 to 100000",
  ],
  [
    { concurrency_key: "k", concurrency_limit: 100001 },
    "concurrency_limit must be an integer from 1 to 100000",
  ],
  [
    { concurrency_key: "k", concurrency_limit: "3" },
    "concurrency_limit must be an integer from 1 to 100000",
  ],
  [{ concurrency_limit: 3 }, "concurrency_limit needs concurrency_key or limit"],
  [{ concurrency_limit: 3, ordering_key: "o" }, "concurrency_limit needs concurrency_key or limit"],
  [{ start_rate: { limit: 1, period_seconds: 1 } }, "start_rate needs concurrency_key or limit"],
  [
    { concurrency_key: "k", start_rate: 5 },
    "start_rate must be an object with limit and period_seconds",
  ],
  [
    { concurrency_key: "k", start_rate: [1, 1] },
    "start_rate must be an object with limit and period_seconds",
  ],
  [{ concurrency_key: "k", start_rate: { limit: 1 } }, "start_rate.period_seconds is required"],
  [{ concurrency_key: "k", start_rate: { period_seconds: 1 } }, "start_rate.limit is required"],
  [
    { concurrency_key: "k", start_rate: { limit: 0, period_seconds: 1 } },
    "start_rate.limit must be an integer from 1 to 1000000",
  ],
  [
    { concurrency_key: "k", start_rate: { limit: 1000001, period_seconds: 1 } },
    "start_rate.limit must be an integer from 1 to 1000000",
  ],
  [
    { concurrency_key: "k", start_rate: { limit: 2.5, period_seconds: 1 } },
    "start_rate.limit must be an integer from 1 to 1000000",
  ],
  [
    { concurrency_key: "k", start_rate: { limit: 1, period_seconds: 0 } },
    "start_rate.period_seconds must be a number > 0 and at most 86400",
  ],
  [
    { concurrency_key: "k", start_rate: { limit: 1, period_seconds: -1 } },
    "start_rate.period_seconds must be a number > 0 and at most 86400",
  ],
  [
    { concurrency_key: "k", start_rate: { limit: 1, period_seconds: 86401 } },
    "start_rate.period_seconds must be a number > 0 and at most 86400",
  ],
  [
    { concurrency_key: "k", start_rate: { limit: 1, period_seconds: "1" } },
    "start_rate.period_seconds must be a number > 0 and at most 86400",
  ],
  [
    { concurrency_key: "k", start_rate: { limit: 1, period_second: 1 } },
    "unknown key 'start_rate.period_second'; valid keys are: limit, period_seconds — did you mean 'period_seconds'?",
  ],
  [{ limit: "a b" }, "limit must be a limit name of 1 to 128 characters from A-Z a-z 0-9 _ . : -"],
  [{ limit: "" }, "limit must be a limit name of 1 to 128 characters from A-Z a-z 0-9 _ . : -"],
  [
    { limit: "x".repeat(129) },
    "limit must be a limit name of 1 to 128 characters from A-Z a-z 0-9 _ . : -",
  ],
  [{ limit: 7 }, "limit must be a limit name of 1 to 128 characters from A-Z a-z 0-9 _ . : -"],
  [{ limit: "ok\n" }, "limit must be a limit name of 1 to 128 characters from A-Z a-z 0-9 _ . : -"],
  // several bad options: the first in this order is named (concurrency_key, concurrency_limit,
  // start_rate, limit, ordering_key), whatever order they are given in
  [
    { ordering_key: "", concurrency_limit: "3", concurrency_key: "" },
    "concurrency_key must be a string of 1 to 256 characters",
  ],
];

describe("bad flow-control options are refused and write nothing", () => {
  it.each(ERRORS)("%j", async (raw, message) => {
    const error = await fx.producer
      .enqueue("f", {}, optionsFromSnakeCase(raw))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProducerError);
    expect(error).toMatchObject({ code: "invalid_argument", message });
    expect(await fx.redis.client.dbsize()).toBe(0);
  });

  it("a bad item of a bulk enqueue writes no item", async () => {
    await expect(
      fx.producer.enqueueMany([
        { functionName: "f", options: { orderingKey: "s" } },
        { functionName: "f", options: { concurrencyLimit: 2 } },
      ]),
    ).rejects.toThrow("concurrency_limit needs concurrency_key or limit");
    expect(await fx.redis.client.dbsize()).toBe(0);
  });

  it("start_rate with periodSeconds and period_seconds both is refused", async () => {
    const startRate = { limit: 1, periodSeconds: 1, period_seconds: 1 };
    await expect(fx.producer.enqueue("f", {}, { concurrencyKey: "k", startRate })).rejects.toThrow(
      "start_rate gives period_seconds twice",
    );
  });
});

describe("rrq enqueue", () => {
  it("takes the flow-control options as flags", async () => {
    const config = writeConfig(fx.redis.url);
    const args = ["enqueue", "f", "--concurrency-key", "k", "--concurrency-limit", "2"];
    const more = ["--start-rate", "5/1.5", "--limit", "api", "--ordering-key", "o", "--json"];
    const run = await runCli(config, [...args, ...more]);
    expect(run.code).toBe(0);
    const { job_id: id } = JSON.parse(run.out) as { job_id: string };
    expect(await flowFields(id)).toEqual({
      concurrency_key: "k",
      concurrency_limit: "2",
      start_rate: "5/1500",
      limit_name: "api",
      ordering_key: "o",
    });
    const bad = await runCli(config, ["enqueue", "f", "--concurrency-limit", "2"]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain("--concurrency-limit needs --concurrency-key or limit");
    const shape = await runCli(config, ["enqueue", "f", "--limit", "a", "--start-rate", "5"]);
    expect(shape.err).toContain("--start-rate must be <limit>/<seconds> (e.g. 50/1)");
  });
});
