/**
 * Job contracts in the TypeScript producer: with a catalog, every enqueue path checks the params
 * of a catalogued function before anything is written (InvalidParamsError, code invalid_params,
 * field = JSON Pointer of the first failing location); other functions are not checked.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { JobCatalog } from "@rrqkit/runner/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidParamsError, ProducerError } from "../src/errors.js";
import { Producer } from "../src/producer/producer.js";
import { useProducerFixture } from "./support/producer-fixture.js";

const CATALOG_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "conformance",
  "fixtures",
  "catalog",
);
const GOOD = { to: "a@b.c", subject: "hi" };

const fixture = useProducerFixture();
let producer: Producer;
beforeAll(() => {
  producer = new Producer({ redisDsn: fixture.redis.url, catalog: JobCatalog.load(CATALOG_DIR) });
});
afterAll(() => producer?.close());

/** The error a call throws, which must be an InvalidParamsError. */
async function refusal(call: () => Promise<unknown>): Promise<InvalidParamsError> {
  const error = await call().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InvalidParamsError);
  return error as InvalidParamsError;
}

async function keys(): Promise<string[]> {
  return fixture.redis.client.keys("*");
}

describe("producer with a job catalog", () => {
  it("enqueues valid params of a catalogued function as before", async () => {
    const id = await producer.enqueue("send_email", { ...GOOD, cc: ["c@d.e"], priority: "low" });
    const hash = await fixture.redis.client.hgetall(`rrq:job:${id}`);
    expect(JSON.parse(hash.job_params!)).toEqual({ ...GOOD, cc: ["c@d.e"], priority: "low" });
  });

  it("refuses a wrong type with code invalid_params, the field and the message; writes nothing", async () => {
    const error = await refusal(() => producer.enqueue("send_email", { to: 1, subject: "hi" }));
    expect(error).toBeInstanceOf(ProducerError);
    expect(error.code).toBe("invalid_params");
    expect(error.functionName).toBe("send_email");
    expect(error.field).toBe("/to");
    expect(error.message).toBe("send_email: params/to must be string");
    expect(await keys()).toEqual([]);
  });

  it("reports the root for a missing required key or an unknown key, and nested pointers", async () => {
    const missing = await refusal(() => producer.enqueue("send_email", { to: "a@b.c" }));
    expect(missing.field).toBe("");
    expect(missing.message).toMatch(/^send_email: params .*subject/);
    const extra = await refusal(() => producer.enqueue("send_email", { ...GOOD, bcc: "x" }));
    expect(extra.field).toBe("");
    const nested = await refusal(() =>
      producer.enqueue("send_email", { ...GOOD, attachments: [{ name: "a", bytes: -1 }] }),
    );
    expect(nested.field).toBe("/attachments/0/bytes");
    const noParams = await refusal(() => producer.enqueue("resize_image"));
    expect(noParams.field).toBe("");
    expect(await keys()).toEqual([]);
  });

  it("picks the failing location whose pointer sorts first", async () => {
    const error = await refusal(() =>
      producer.enqueue("resize_image", { url: 3, width: 0, height: "x" }),
    );
    expect(error.field).toBe("/height");
  });

  it("checks every single-job path: rate limit, debounce, deferred, unique key", async () => {
    const bad = { url: "u", width: 0, height: 1 };
    const calls: Array<() => Promise<unknown>> = [
      () =>
        producer.enqueueWithRateLimit("resize_image", bad, {
          rateLimitKey: "r",
          rateLimitSeconds: 5,
        }),
      () => producer.enqueue("resize_image", bad, { rateLimitKey: "r", rateLimitSeconds: 5 }),
      () =>
        producer.enqueueWithDebounce("resize_image", bad, { debounceKey: "d", debounceSeconds: 5 }),
      () => producer.enqueue("resize_image", bad, { deferBySeconds: 60 }),
      () => producer.enqueue("resize_image", bad, { deferUntil: new Date(Date.now() + 60_000) }),
      () => producer.enqueue("resize_image", bad, { uniqueKey: "u1" }),
      () => producer.enqueue("resize_image", bad, { jobId: "fixed-id", maxRetries: 2 }),
    ];
    for (const call of calls) expect((await refusal(call)).field).toBe("/width");
    expect(await keys()).toEqual([]);
  });

  it("fails a whole enqueueMany at the first bad item, naming it, and writes nothing", async () => {
    const error = await refusal(() =>
      producer.enqueueMany([
        { functionName: "send_email", params: GOOD },
        { functionName: "not_catalogued", params: { anything: 1 } },
        { functionName: "resize_image", params: { url: "u", width: 1, height: 1 } },
        { functionName: "send_email", params: { to: "a", subject: 5 } },
        { functionName: "send_email", params: { to: 5 } },
      ]),
    );
    expect(error.message).toBe("items[3]: send_email: params/subject must be string");
    expect(error.field).toBe("/subject");
    expect(await keys()).toEqual([]);
    const ids = await producer.enqueueMany([
      { functionName: "send_email", params: GOOD },
      { functionName: "resize_image", params: { url: "u", width: 1, height: 1 } },
    ]);
    expect(ids).toHaveLength(2);
  });

  it("does not check a function the catalog does not list", async () => {
    const id = await producer.enqueue("not_catalogued", { to: 1, anything: [1, "x"] });
    expect(await fixture.redis.client.exists(`rrq:job:${id}`)).toBe(1);
  });

  it("checks nothing without a catalog", async () => {
    const id = await fixture.producer.enqueue("send_email", { to: 1 });
    expect(await fixture.redis.client.exists(`rrq:job:${id}`)).toBe(1);
  });
});

describe("Producer.fromConfigFile and job_catalog", () => {
  const dir = mkdtempSync(join(tmpdir(), "rrqkit-contracts-producer-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("loads rrq.toml's job_catalog (relative to the file) and checks params", async () => {
    const path = join(dir, "rrq.toml");
    writeFileSync(path, `[rrq]\nredis_dsn = "${fixture.redis.url}"\njob_catalog = "catalog"\n`);
    cpSync(CATALOG_DIR, join(dir, "catalog"), { recursive: true });
    const fromFile = Producer.fromConfigFile(path, {});
    try {
      expect(fromFile.catalog?.names()).toEqual(["resize_image", "send_email"]);
      const error = await refusal(() => fromFile.enqueue("send_email", { to: 1, subject: "s" }));
      expect(error.field).toBe("/to");
      expect(await keys()).toEqual([]);
    } finally {
      await fromFile.close();
    }
  });

  it("has no catalog when rrq.toml names none", async () => {
    const path = join(dir, "plain.toml");
    writeFileSync(path, `[rrq]\nredis_dsn = "${fixture.redis.url}"\n`);
    const fromFile = Producer.fromConfigFile(path, {});
    expect(fromFile.catalog).toBeUndefined();
    await fromFile.close();
  });
});
