/**
 * Flow-control configuration (README "Flow control"): [rrq.limits.<name>], the flow keys of
 * [rrq.functions."<name>"], [rrq.runner_breakers.<runner>], queues / strict_queues /
 * session_on_dead / flow_sweep_interval_seconds, and the claim's flow config built from them.
 * Pure: no Redis.
 */
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import { parseQueueSpec } from "../src/config/flow-control.js";
import { checkRetryPolicy } from "../src/policy/index.js";
import { BreakerScopes, buildFlowConfig } from "../src/flow/flow-config.js";
import { queuePlan } from "../src/flow/queue-schedule.js";

const runners = { node: { cmd: ["node", "r.js"] }, py: { cmd: ["python", "r.py"] } };
const config = (extra: Record<string, unknown>) =>
  resolveConfig({ runners, default_runner_name: "node", ...extra });

/** The message of the ConfigError `extra` raises. */
function problem(extra: Record<string, unknown>): string {
  try {
    config(extra);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a configuration error");
}

describe("reading", () => {
  it("has defaults that configure nothing", () => {
    const c = config({});
    expect(c.limits.size).toBe(0);
    expect(c.functionFlow.size).toBe(0);
    expect(c.runnerBreakers.size).toBe(0);
    expect(c.queueSpecs).toEqual([]);
    expect(c.strictQueues).toBe(false);
    expect(c.sessionOnDead).toBe("skip");
    expect(c.flowSweepIntervalSeconds).toBe(1);
    expect(buildFlowConfig(c, "rrq:queue:default")).toBe("");
  });

  it("reads limits, function flow keys beside retry keys, runner breakers and queues", () => {
    const c = config({
      limits: {
        exports: { concurrency: 3 },
        "api.v2": { rate_limit: 100, rate_period_seconds: 60 },
      },
      functions: {
        charge: { concurrency: 2, max_attempts: 4, breaker: { failures: 3, cooldown_seconds: 10 } },
        sync: { rate_limit: 5 },
      },
      runner_breakers: { py: {} },
      queues: ["critical:5", "bulk:1", "rrq:queue:other"],
      session_on_dead: "block",
      flow_sweep_interval_seconds: 0.5,
    });
    expect(c.limits.get("exports")).toEqual({
      concurrency: 3,
      rateLimit: undefined,
      ratePeriodSeconds: 1,
    });
    expect(c.limits.get("api.v2")).toMatchObject({ rateLimit: 100, ratePeriodSeconds: 60 });
    expect(c.functionFlow.get("charge")).toMatchObject({
      concurrency: 2,
      breaker: { failures: 3, cooldownSeconds: 10 },
    });
    // the retry policy of the same table is still read
    expect(c.functionPolicies.get("charge")).toEqual({ maxAttempts: 4 });
    // a table with flow keys only has no retry policy
    expect(c.functionPolicies.has("sync")).toBe(false);
    expect(c.runnerBreakers.get("py")).toEqual({ failures: 5, cooldownSeconds: 30 });
    expect(c.queueSpecs).toEqual([
      { queue: "rrq:queue:critical", weight: 5 },
      { queue: "rrq:queue:bulk", weight: 1 },
      { queue: "rrq:queue:other", weight: undefined },
    ]);
    expect(c.sessionOnDead).toBe("block");
    expect(c.flowSweepIntervalSeconds).toBe(0.5);
  });

  it("names every problem with its key path", () => {
    const message = problem({
      limits: { exports: { concurrency: 0 }, empty: {}, "bad name!": { concurrency: 1 } },
      functions: {
        charge: { concurency: 2, breaker: { failures: 0, cooldown: 1 } },
        sync: { rate_period_seconds: 2 },
      },
      runner_breakers: { ruby: { failures: 2 } },
      queues: ["a:0", "b", "b:2"],
      session_on_dead: "drop",
      flow_sweep_interval_seconds: 0,
    });
    expect(message).toContain("limits.exports.concurrency must be an integer >= 1");
    expect(message).toContain("got 0");
    expect(message).toContain("limits.empty needs concurrency or rate_limit");
    expect(message).toContain("limits.bad name!: a limit name is 1 to 128 of");
    expect(message).toContain("unknown key 'functions.charge.concurency'");
    expect(message).toContain("did you mean 'concurrency'?");
    expect(message).toContain("functions.charge.breaker.failures must be an integer >= 1");
    expect(message).toContain("unknown key 'functions.charge.breaker.cooldown'");
    expect(message).toContain("functions.sync.rate_period_seconds needs functions.sync.rate_limit");
    expect(message).toContain("runner_breakers.ruby: no runner 'ruby' is configured");
    expect(message).toContain("queues[0]: the weight of queue 'a' must be an integer from 1");
    expect(message).toContain("queues[2]: queue 'b:2' is listed twice, with different weights");
    expect(message).toContain('session_on_dead must be one of "skip", "block", got "drop"');
    expect(message).toContain("flow_sweep_interval_seconds must be a number >= 0.05");
  });

  it("rejects strict_queues with weights, and unknown top-level keys", () => {
    expect(problem({ strict_queues: true, queues: ["a:2", "b"] })).toContain(
      "strict_queues claims in list order and takes no weights",
    );
    expect(problem({ limit: {} })).toContain("unknown key 'limit'");
  });

  it("keeps the flow keys out of a job's retry option", () => {
    const check = checkRetryPolicy({ max_attempts: 2, concurrency: 3 }, "retry");
    expect(check.ok).toBe(false);
    expect(check.problems?.[0]).toContain("unknown key 'retry.concurrency'");
  });

  it("parses name[:weight], leaving full keys whole", () => {
    expect(parseQueueSpec("critical:5", "q")).toEqual({ queue: "rrq:queue:critical", weight: 5 });
    expect(parseQueueSpec("rrq:queue:critical", "q")).toEqual({
      queue: "rrq:queue:critical",
      weight: undefined,
    });
    expect(parseQueueSpec("rrq:queue:bulk:2", "q")).toEqual({ queue: "rrq:queue:bulk", weight: 2 });
    expect(() => parseQueueSpec("a:1.5", "--queue")).toThrow(
      "--queue: the weight of queue 'a' must be an integer from 1 to 1000, got \"1.5\"",
    );
  });
});

describe("the claim's flow config", () => {
  it("lists limits, function caps and rates (also under runner prefixes), and breakers", () => {
    const c = config({
      limits: { exports: { concurrency: 3, rate_limit: 100, rate_period_seconds: 60 } },
      functions: {
        charge: { concurrency: 2, breaker: { failures: 3 } },
        "py#sync": { rate_limit: 5, rate_period_seconds: 0.0001 },
      },
      runner_breakers: { py: { failures: 2 } },
      routing: { slow: "py" },
    });
    const wire = JSON.parse(buildFlowConfig(c, "rrq:queue:slow")) as Record<string, unknown>;
    expect(wire).toEqual({
      l: { exports: { c: 3, r: [100, 60000] } },
      f: {
        charge: { c: 2 },
        "node#charge": { c: 2 },
        "py#charge": { c: 2 },
        "py#sync": { r: [5, 1] },
      },
      b: {
        "function:charge": 1,
        "function:node#charge": 1,
        "function:py#charge": 1,
        "runner:py": 1,
      },
      qr: "py",
    });
    expect((JSON.parse(buildFlowConfig(c, "rrq:queue:default")) as { qr: string }).qr).toBe("node");
  });

  it("names the breakers a job counts on", () => {
    const c = config({
      functions: { charge: { breaker: { failures: 3, cooldown_seconds: 1.5 } } },
      runner_breakers: { py: { failures: 2 } },
      routing: { slow: "py" },
    });
    const scopes = new BreakerScopes(c);
    expect(scopes.empty).toBe(false);
    expect(scopes.of("charge", "rrq:queue:default")).toEqual([
      { scope: "function:charge", spec: { failures: 3, cooldownMs: 1500 } },
    ]);
    expect(scopes.of("py#charge", "rrq:queue:default").map((s) => s.scope)).toEqual([
      "function:py#charge",
      "runner:py",
    ]);
    expect(scopes.of("other", "rrq:queue:slow").map((s) => s.scope)).toEqual(["runner:py"]);
    expect(scopes.of("other", "rrq:queue:default")).toEqual([]);
    expect(new BreakerScopes(config({})).empty).toBe(true);
  });
});

describe("the worker's queue plan", () => {
  it("is fair and sorted by default, weighted with weights, strict in list order", () => {
    const c = config({ queues: ["b:3", "a:1"] });
    expect(queuePlan(c)).toEqual({
      strategy: "weighted",
      specs: [
        { queue: "rrq:queue:b", weight: 3 },
        { queue: "rrq:queue:a", weight: 1 },
      ],
    });
    expect(queuePlan(c, ["z", "y"])).toEqual({
      strategy: "fair",
      specs: [
        { queue: "rrq:queue:y", weight: undefined },
        { queue: "rrq:queue:z", weight: undefined },
      ],
    });
    expect(queuePlan(c, ["z", "y"], true).specs.map((s) => s.queue)).toEqual([
      "rrq:queue:z",
      "rrq:queue:y",
    ]);
    expect(queuePlan(config({})).specs).toEqual([
      { queue: "rrq:queue:default", weight: undefined },
    ]);
  });

  it("names a bad --queue value", () => {
    const c = config({});
    expect(() => queuePlan(c, ["a:0"])).toThrow(
      '--queue "a:0": the weight of queue \'a\' must be an integer from 1 to 1000, got "0"',
    );
    expect(() => queuePlan(c, ["a:2"], true)).toThrow("takes no weights");
  });
});
