/**
 * The operator surface of flow control in the CLI, against a real Redis: `queue pause|resume`
 * (with the wake on resume), `queue list` with paused queues, parked jobs and circuit breakers,
 * `check` with breakers and pauses, `job show` with a job's flow fields and why it waits. Parked
 * jobs and open breakers come from the real claim and breaker scripts (JobStore, FlowStore).
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FlowApi } from "../src/api/flow.js";
import { Producer } from "../src/producer/producer.js";
import { JobStore } from "../src/store/job-store.js";
import { runCli, writeConfig } from "./support/cli-harness.js";
import { startRedis, type TestRedis } from "./support/redis-server.js";

let redis: TestRedis;
let config: string;
let producer: Producer;
let connection: Redis;
let store: JobStore;
let flow: FlowApi;

const cli = (...args: string[]) => runCli(config, args);
const parse = <T>(text: string) => JSON.parse(text) as T;

beforeAll(async () => {
  redis = await startRedis();
  config = writeConfig(redis.url);
  producer = new Producer({ redisDsn: redis.url });
  connection = new Redis(redis.url);
  store = new JobStore(connection);
  flow = new FlowApi(connection);
});
beforeEach(() => redis.flush());
afterAll(async () => {
  await producer?.close();
  connection?.disconnect();
  await redis?.stop();
});

/** A live health record, so that `rrq check` reports a healthy fleet. */
async function liveWorker(): Promise<void> {
  await redis.client.set(
    "rrq:health:worker:w1",
    JSON.stringify({ worker_id: "w1", status: "running", active_jobs: 0 }),
    "EX",
    60,
  );
}

/** Messages published on a channel while `action` runs (and shortly after). */
async function published(channel: string, action: () => Promise<unknown>): Promise<string[]> {
  const subscriber = redis.client.duplicate();
  const messages: string[] = [];
  subscriber.on("message", (ch: string, message: string) => {
    if (ch === channel) messages.push(message);
  });
  await subscriber.subscribe(channel);
  try {
    await action();
    // a PING on the subscriber returns after every message published before it
    for (let i = 0; i < 50 && messages.length === 0; i++) await subscriber.ping();
  } finally {
    subscriber.disconnect();
  }
  return messages;
}

describe("queue pause and resume", () => {
  it("pause writes the paused key; again leaves it; resume deletes it and wakes workers", async () => {
    await producer.enqueue("work", {}, { queueName: "emails" });
    const paused = await cli("queue", "pause", "emails", "--reason", "provider outage");
    expect(paused.code).toBe(0);
    expect(paused.out).toContain("Queue 'rrq:queue:emails' paused (reason: provider outage)");
    expect(paused.out).toContain("rrq queue resume emails");
    expect(paused.out).not.toContain("no queue");
    const stored = parse<{ since: number; reason?: string }>(
      (await redis.client.get("rrq:paused:emails"))!,
    );
    expect(stored.reason).toBe("provider outage");
    expect(stored.since).toBeGreaterThan(0);

    const again = await cli("queue", "pause", "rrq:queue:emails", "--reason", "other");
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/was already paused since .*, reason: provider outage; left as it/);
    expect(parse<{ reason: string }>((await redis.client.get("rrq:paused:emails"))!).reason).toBe(
      "provider outage",
    );

    let resumed: Awaited<ReturnType<typeof cli>> | undefined;
    const wakes = await published("rrq:wake:rrq:queue:emails", async () => {
      resumed = await cli("queue", "resume", "emails");
    });
    expect(resumed).toMatchObject({ code: 0 });
    expect(resumed!.out).toMatch(
      /^Queue 'rrq:queue:emails' resumed; it had been paused since \S+ \(\d+s ago\)\. Workers woken\.\n$/,
    );
    expect(wakes.length).toBeGreaterThanOrEqual(1);
    expect(await redis.client.exists("rrq:paused:emails")).toBe(0);

    expect(await cli("queue", "resume", "emails")).toMatchObject({
      code: 0,
      out: "Queue 'rrq:queue:emails' was not paused\n",
    });
  });

  it("a queue nothing has seen may be paused, and the output says so", async () => {
    const run = await cli("queue", "pause", "brand_new");
    expect(run.code).toBe(0);
    expect(run.out).toContain("Queue 'rrq:queue:brand_new' paused\n");
    expect(run.out).toContain("Note: no queue 'rrq:queue:brand_new' is known yet");
    expect(await redis.client.exists("rrq:paused:brand_new")).toBe(1);
    // paused, it is listed (and known to queue inspect) although it holds no job
    const list = await cli("queue", "list");
    expect(list.out).toMatch(/^rrq:queue:brand_new +0 +N\/A +N\/A +0 +yes \(\d+s ago\)$/m);
    expect(list.out).toContain("Paused: rrq:queue:brand_new since ");
    expect((await cli("queue", "inspect", "brand_new")).out).toBe(
      "Queue 'rrq:queue:brand_new' is empty (0 running)\n",
    );
  });

  it("--json for pause and resume", async () => {
    const paused = parse<Record<string, unknown>>(
      (await cli("queue", "pause", "jq", "--reason", "deploy", "--json")).out,
    );
    expect(paused).toMatchObject({
      queue: "rrq:queue:jq",
      wasPaused: false,
      known: false,
      paused: { reason: "deploy" },
    });
    expect((paused.paused as { since: number }).since).toBeGreaterThan(0);
    const resumed = parse<Record<string, unknown>>(
      (await cli("queue", "resume", "jq", "--json")).out,
    );
    expect(resumed).toMatchObject({
      queue: "rrq:queue:jq",
      resumed: true,
      wasPaused: { reason: "deploy" },
    });
    const idle = parse<Record<string, unknown>>((await cli("queue", "resume", "jq", "--json")).out);
    expect(idle).toEqual({ queue: "rrq:queue:jq", resumed: false, wasPaused: null });
  });

  it("bad queue names are usage errors that name the value", async () => {
    for (const [name, problem] of [
      ["", "is empty"],
      ["rrq:queue:", "is empty"],
      ["two words", "whitespace"],
      ["rrq:dlq:default", "another rrq key"],
      ["x".repeat(300), "longer than 256"],
    ] as const) {
      const run = await cli("queue", "pause", name);
      expect(run.code, name).toBe(2);
      expect(run.err, name).toContain(problem);
      expect(run.err, name).toMatch(/^rrq: queue name "/);
      expect((await cli("queue", "resume", name)).code, name).toBe(2);
    }
    expect(await redis.client.keys("rrq:paused:*")).toEqual([]);
    const missing = await cli("queue", "pause");
    expect(missing.code).toBe(2);
    expect(missing.err).toContain("missing required argument 'queue'");
  });

  it("help lists pause and resume", async () => {
    const help = await cli("queue", "--help");
    expect(help.out).toMatch(/pause \[options\] <queue>/);
    expect(help.out).toMatch(/resume \[options\] <queue>/);
    expect((await cli("queue", "pause", "--help")).out).toContain("--reason <text>");
  });
});

describe("queue list with flow control", () => {
  it("without flow control the table is RRQ's (no Parked/Paused columns)", async () => {
    await producer.enqueue("work", {}, { queueName: "plain" });
    const list = await cli("queue", "list");
    expect(list.out.split("\n")[0]).toMatch(/^Queue +Pending +Oldest +Newest$/);
    expect(list.out).not.toContain("Parked");
    expect(list.out).not.toContain("Circuit breakers");
    const json = parse<{ queues: Array<Record<string, unknown>>; breakers: unknown[] }>(
      (await cli("queue", "list", "--json")).out,
    );
    expect(json.queues[0]).toMatchObject({ name: "rrq:queue:plain", paused: null, parked: 0 });
    expect(json.breakers).toEqual([]);
  });

  it("parked jobs (a full concurrency key) and a paused queue get their columns", async () => {
    const options = { queueName: "limited", concurrencyKey: "tenant-1", concurrencyLimit: 1 };
    const first = await producer.enqueue("work", {}, options);
    const second = await producer.enqueue("work", {}, options);
    const claim = await store.claim("rrq:queue:limited", "w1", 5, 60_000, "");
    expect(claim.claimed.map((j) => j.id)).toEqual([first]);
    expect(claim.parked).toBe(1);
    await cli("queue", "pause", "limited", "--reason", "maintenance");

    const list = await cli("queue", "list");
    expect(list.out.split("\n")[0]).toMatch(/^Queue +Pending +Oldest +Newest +Parked +Paused$/);
    expect(list.out).toMatch(/^rrq:queue:limited +0 +N\/A +N\/A +1 +yes \(\d+s ago\)$/m);
    expect(list.out).toContain("Parked: 1 jobs held by flow control (not counted as pending)");
    expect(list.out).toMatch(/Paused: rrq:queue:limited since .*, reason: maintenance/);
    const json = parse<{ queues: Array<Record<string, unknown>>; totalParked: number }>(
      (await cli("queue", "list", "--json")).out,
    );
    expect(json.totalParked).toBe(1);
    expect(json.queues.find((q) => q.name === "rrq:queue:limited")).toMatchObject({
      parked: 1,
      paused: { reason: "maintenance" },
    });

    // job show: the flow fields, and why the parked job waits
    const show = await cli("job", "show", second);
    expect(show.out).toContain("Flow control:\n  concurrency_key        tenant-1 (limit 1)\n");
    expect(show.out).toMatch(/^Waiting: .*tenant-1/m);
    const shown = parse<{ flow: Record<string, unknown> }>(
      (await cli("job", "show", second, "--json")).out,
    );
    expect(shown.flow).toMatchObject({ concurrencyKey: "tenant-1", concurrencyLimit: 1 });
    expect(shown.flow.waiting).toEqual(expect.stringContaining("tenant-1"));
  });

  it("an open circuit breaker is listed apart from the queues, and by check", async () => {
    await producer.enqueue("charge", {}, { queueName: "payments" });
    const opened = await flow.store.recordBreaker(
      "function:charge",
      "failure",
      "job-1",
      { failures: 1, cooldownMs: 120_000 },
      "card gateway down",
    );
    expect(opened).toBe("opened");
    const list = await cli("queue", "list");
    expect(list.out).toContain("\nCircuit breakers not closed:\n");
    expect(list.out).toMatch(/^Breaker +State +Failures +Trips +Held +Retry +Last error$/m);
    expect(list.out).toMatch(/^function:charge +open +1 +1 +0 +in [12]m +card gateway down$/m);
    const json = parse<{ breakers: Array<Record<string, unknown>> }>(
      (await cli("queue", "list", "--json")).out,
    );
    expect(json.breakers).toEqual([
      expect.objectContaining({ scope: "function:charge", state: "open", trips: 1 }),
    ]);

    await liveWorker();
    await cli("queue", "pause", "payments", "--reason", "audit");
    const check = await cli("check");
    expect(check.code).toBe(0);
    expect(check.out).toContain("Circuit Breakers: 1 not closed:\n");
    expect(check.out).toMatch(
      /^ {2}- function:charge: open; opened \S+; retry at (\S+) \(in [12]m\); 0 job\(s\) held; 1 trip\(s\); last error: card gateway down$/m,
    );
    expect(check.out).toMatch(
      /^Paused Queues: 1 \(info\):\n {2}- rrq:queue:payments: paused since .*, reason: audit$/m,
    );
    const checkJson = parse<{ breakers: unknown[]; pausedQueues: unknown[] }>(
      (await cli("check", "--json")).out,
    );
    expect(checkJson.breakers).toEqual([
      expect.objectContaining({ scope: "function:charge", state: "open" }),
    ]);
    expect(checkJson.pausedQueues).toEqual([
      expect.objectContaining({ queue: "rrq:queue:payments", reason: "audit" }),
    ]);

    // closed again: nothing to say
    await flow.store.recordBreaker("function:charge", "success", "job-2", {
      failures: 1,
      cooldownMs: 120_000,
    });
    await cli("queue", "resume", "payments");
    const calm = await cli("check");
    expect(calm.out).not.toContain("Circuit Breakers");
    expect(calm.out).not.toContain("Paused Queues");
    expect((await cli("queue", "list")).out).not.toContain("Circuit breakers");
  });

  it("a half-open breaker shows its probe; a job it holds says so", async () => {
    const breaker = { failures: 1, cooldownMs: 0 };
    await flow.store.recordBreaker("function:charge", "failure", "job-0", breaker, "timeout");
    const options = { queueName: "payments" };
    const probe = await producer.enqueue("charge", {}, options);
    const held = await producer.enqueue("charge", {}, options);
    // Two enqueues within one millisecond share a score, and the claim then takes them in
    // member (job id) order: queue the held job strictly after the probe.
    const probeScore = Number(await redis.client.zscore("rrq:queue:payments", probe));
    await redis.client.zadd("rrq:queue:payments", "XX", probeScore + 1, held);
    // the cool-down (0 ms) is over: the claim sends the first job as the probe, parks the other
    const claim = await store.claim(
      "rrq:queue:payments",
      "w1",
      5,
      60_000,
      JSON.stringify({ b: { "function:charge": 1 } }),
    );
    expect(claim.claimed.map((j) => j.id)).toEqual([probe]);
    expect(claim.parked).toBe(1);
    const list = await cli("queue", "list");
    expect(list.out).toMatch(
      new RegExp(`^function:charge +half-open +1 +1 +1 +probe ${probe} running +timeout$`, "m"),
    );
    await liveWorker();
    expect((await cli("check")).out).toMatch(
      new RegExp(
        `^ {2}- function:charge: half-open; opened \\S+; probe ${probe} running; 1 job\\(s\\) held;`,
        "m",
      ),
    );
    expect((await cli("job", "show", held)).out).toContain(
      `Waiting: held by circuit breaker function:charge (half-open, probing with job ${probe})`,
    );
  });

  it("check reports breakers and pauses even when no worker is alive (exit 1 stays)", async () => {
    await cli("queue", "pause", "solo");
    const check = await cli("check");
    expect(check.code).toBe(1);
    expect(check.out).toContain("Worker Health Check: FAIL (No active workers found)\n");
    expect(check.out).toContain("Paused Queues: 1 (info):\n  - rrq:queue:solo: paused since ");
  });
});

describe("job show with flow control", () => {
  it("prints the flow fields in words; a job without them shows none", async () => {
    const id = await producer.enqueue(
      "work",
      {},
      {
        queueName: "sessions",
        concurrencyKey: "acct-9",
        concurrencyLimit: 2,
        startRate: { limit: 50, periodSeconds: 1 },
        orderingKey: "order-77",
      },
    );
    const show = await cli("job", "show", id);
    expect(show.out).toContain(
      [
        "Flow control:",
        "  concurrency_key        acct-9 (limit 2)",
        "  start_rate             50 per 1.0s",
        "  ordering_key           order-77",
      ].join("\n"),
    );
    const json = parse<{ flow: Record<string, unknown> }>(
      (await cli("job", "show", id, "--json")).out,
    );
    expect(json.flow).toMatchObject({
      concurrencyKey: "acct-9",
      concurrencyLimit: 2,
      startRate: { limit: 50, periodMs: 1000 },
      orderingKey: "order-77",
    });
    const plain = await producer.enqueue("work", {}, { queueName: "sessions" });
    expect((await cli("job", "show", plain)).out).not.toContain("Flow control:");
    expect(
      parse<Record<string, unknown>>((await cli("job", "show", plain, "--json")).out),
    ).not.toHaveProperty("flow");
  });

  it("a pending job of a paused queue says it waits for the queue", async () => {
    const id = await producer.enqueue("work", {}, { queueName: "held", limit: "partner_api" });
    await cli("queue", "pause", "held");
    const show = await cli("job", "show", id);
    expect(show.out).toContain("  limit_name             partner_api\n");
    expect(show.out).toMatch(/^Waiting: .*paused/m);
  });
});

describe("data API", () => {
  it("pausedQueues reads the index: a queue paused elsewhere shows at once, a resumed one drops out", async () => {
    const api = new FlowApi(connection);
    await api.pauseQueue("seen");
    expect([...(await api.pausedQueues()).keys()]).toEqual(["rrq:queue:seen"]);
    // paused and resumed elsewhere (the CLI), a queue nothing has seen included
    await cli("queue", "pause", "ghost");
    await cli("queue", "pause", "registered");
    await cli("queue", "resume", "seen");
    expect([...(await api.pausedQueues()).keys()].sort()).toEqual([
      "rrq:queue:ghost",
      "rrq:queue:registered",
    ]);
    expect((await redis.client.smembers("rrq:fc:paused-queues")).sort()).toEqual([
      "ghost",
      "registered",
    ]);
    // no keyspace SCAN (nor KEYS) on the way
    const monitor = await redis.client.monitor();
    const commands: string[][] = [];
    monitor.on("monitor", (_time: string, args: string[]) => commands.push(args));
    await api.pausedQueues();
    await api.breakers();
    // MONITOR shows commands in the order Redis ran them: once the sentinel shows, so did they
    const sentinel = "flow-cli-index-sentinel";
    await redis.client.echo(sentinel);
    for (let i = 0; i < 200 && !commands.some((c) => c.includes(sentinel)); i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    monitor.disconnect();
    expect(commands.some((c) => c.includes(sentinel))).toBe(true);
    expect(commands.map((c) => c[0]!.toLowerCase())).toContain("smembers");
    expect(commands.map((c) => c[0]!.toLowerCase())).not.toContain("scan");
    expect(commands.map((c) => c[0]!.toLowerCase())).not.toContain("keys");
  });
});
