/**
 * Retry policies as pure logic (README "Job control"): the one validator shared by the producer
 * option, the stored retry_policy field and rrq.toml's functions tables; resolution job →
 * function → global defaults; backoff fixed / list / exponential / jitter; and the decisions
 * the policy drives (permanent errors, snooze and its cap, retry_timeouts, retry_for_seconds).
 */
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config/config.js";
import { ConfigError, ProducerError } from "../src/errors.js";
import {
  decide,
  decideTimeout,
  type DecisionContext,
  type RetryPolicy,
} from "../src/orchestrator/decisions.js";
import {
  checkRetryPolicy,
  maxAttemptsOf,
  policyBackoffSeconds,
  resolvePolicy,
  retryPolicyJson,
  type EffectivePolicy,
} from "../src/policy/index.js";
import { planEnqueue, type ProducerDefaults } from "../src/producer/options.js";
import { parseJob } from "../src/store/job.js";

const defaults = {
  defaultMaxRetries: 5,
  baseRetryDelaySeconds: 5,
  maxRetryDelaySeconds: 3600,
};

describe("checkRetryPolicy: one validator, messages naming the key path", () => {
  it("accepts every key and reports the spec in camelCase", () => {
    const check = checkRetryPolicy(
      {
        max_attempts: 4,
        backoff: "exponential",
        delay_seconds: 0.5,
        max_delay_seconds: 10,
        jitter: 0.25,
        retry_timeouts: true,
        non_retryable_error_types: ["ValueError"],
        retry_for_seconds: 60,
        max_snoozes: 0,
      },
      "retry",
    );
    expect(check).toMatchObject({
      ok: true,
      spec: {
        maxAttempts: 4,
        backoff: "exponential",
        delaySeconds: 0.5,
        maxDelaySeconds: 10,
        jitter: 0.25,
        retryTimeouts: true,
        nonRetryableErrorTypes: ["ValueError"],
        retryForSeconds: 60,
        maxSnoozes: 0,
      },
    });
  });

  it("names the key and the rule of each bad value", () => {
    const problems = (raw: unknown) => checkRetryPolicy(raw, "retry").problems;
    expect(problems({ jitter: 2 })).toEqual([
      "retry.jitter must be a number between 0 and 1, got 2",
    ]);
    expect(problems({ max_attempts: 0 })).toEqual([
      "retry.max_attempts must be an integer >= 1, got 0",
    ]);
    expect(problems({ max_attempts: 1.5 })?.[0]).toContain("retry.max_attempts");
    expect(problems({ backoff: "linear" })?.[0]).toContain(
      'retry.backoff must be one of "exponential"',
    );
    expect(problems({ delay_seconds: -1 })?.[0]).toContain(
      "retry.delay_seconds must be a number >= 0",
    );
    expect(problems({ delays: [] })?.[0]).toContain("retry.delays must be a non-empty array");
    expect(problems({ delays: [1, -2] })?.[0]).toContain("retry.delays");
    expect(problems({ retry_timeouts: "yes" })?.[0]).toContain(
      "retry.retry_timeouts must be true or false",
    );
    expect(problems({ non_retryable_error_types: [""] })?.[0]).toContain(
      "retry.non_retryable_error_types",
    );
    expect(problems({ retry_for_seconds: 0 })?.[0]).toContain(
      "retry.retry_for_seconds must be a number > 0",
    );
    expect(problems({ max_snoozes: -1 })?.[0]).toContain(
      "retry.max_snoozes must be an integer >= 0",
    );
    expect(problems([1])?.[0]).toBe("retry must be an object (a table)");
  });

  it("rejects unknown keys with a did-you-mean", () => {
    const [problem] = checkRetryPolicy({ max_attemps: 3 }, "functions.charge").problems ?? [];
    expect(problem).toContain("unknown key 'functions.charge.max_attemps'");
    expect(problem).toContain("did you mean 'max_attempts'?");
  });

  it("delays alone mean the list backoff; list needs delays; other backoffs refuse them", () => {
    expect(checkRetryPolicy({ delays: [1, 2] }, "retry").spec.backoff).toBe("list");
    expect(checkRetryPolicy({ backoff: "list" }, "retry").problems?.[0]).toBe(
      'retry.delays is required with backoff "list"',
    );
    expect(checkRetryPolicy({ backoff: "fixed", delays: [1] }, "retry").problems?.[0]).toContain(
      'only used with backoff "list"',
    );
  });

  it("stores canonical JSON (sorted keys)", () => {
    expect(retryPolicyJson({ max_attempts: 3, backoff: "fixed", delay_seconds: 0.2 })).toBe(
      '{"backoff":"fixed","delay_seconds":0.2,"max_attempts":3}',
    );
  });
});

describe("resolution: job → function → global", () => {
  const config = resolveConfig({
    functions: {
      charge_card: { max_attempts: 4, backoff: "fixed", delay_seconds: 0.2 },
      report: { non_retryable_error_types: ["ValueError"] },
    },
    max_snoozes: 7,
  });

  it("uses the global defaults when nothing is set (RRQ's exponential backoff)", () => {
    const policy = resolvePolicy(config, "other", undefined);
    expect(policy).toMatchObject({
      maxAttempts: undefined,
      backoff: "exponential",
      delaySeconds: 5,
      maxDelaySeconds: 3600,
      jitter: 0,
      retryTimeouts: false,
      maxSnoozes: 7,
    });
    expect(maxAttemptsOf(policy, 3, config)).toBe(3);
    expect(maxAttemptsOf(policy, undefined, config)).toBe(5);
    // cached: the same object for every job without a policy
    expect(resolvePolicy(config, "other", undefined)).toBe(policy);
  });

  it("finds a function policy by exact name or by the handler after runner#", () => {
    expect(resolvePolicy(config, "charge_card", undefined).maxAttempts).toBe(4);
    expect(resolvePolicy(config, "node#charge_card", undefined).backoff).toBe("fixed");
    expect(resolvePolicy(config, "node#charge_card", undefined)).toBe(
      resolvePolicy(config, "node#charge_card", undefined),
    );
  });

  it("overlays the job's retry_policy field by field", () => {
    const policy = resolvePolicy(
      config,
      "charge_card",
      '{"delay_seconds":1,"retry_timeouts":true}',
    );
    expect(policy).toMatchObject({
      maxAttempts: 4,
      backoff: "fixed",
      delaySeconds: 1,
      retryTimeouts: true,
    });
    // the job's max_attempts beats the function's, which beats the hash's max_retries
    const job = resolvePolicy(config, "charge_card", '{"max_attempts":2}');
    expect(maxAttemptsOf(job, 9, config)).toBe(2);
    expect(maxAttemptsOf(resolvePolicy(config, "charge_card", undefined), 9, config)).toBe(4);
  });

  it("ignores a damaged retry_policy field-wise, with a warning, never throwing", () => {
    const warnings: string[] = [];
    const policy = resolvePolicy(
      config,
      "charge_card",
      '{"max_attempts":"many","delay_seconds":2}',
      (w) => warnings.push(w),
    );
    expect(policy.maxAttempts).toBe(4);
    expect(policy.delaySeconds).toBe(2);
    expect(warnings[0]).toContain("retry_policy.max_attempts");
    const broken = resolvePolicy(config, "x", "{not json", (w) => warnings.push(w));
    expect(broken.backoff).toBe("exponential");
    expect(warnings.at(-1)).toContain("retry_policy is not JSON");
  });
});

describe("backoff", () => {
  const base = resolvePolicy(defaults, "f", undefined);
  const with_ = (spec: string): EffectivePolicy => resolvePolicy(defaults, "f", spec);

  it("exponential: RRQ's min(base · 2^(k−1), max)", () => {
    expect([1, 2, 3, 4].map((k) => policyBackoffSeconds(base, k))).toEqual([5, 10, 20, 40]);
    const capped = with_('{"delay_seconds":1,"max_delay_seconds":3}');
    expect([1, 2, 3].map((k) => policyBackoffSeconds(capped, k))).toEqual([1, 2, 3]);
  });

  it("fixed and list", () => {
    const fixed = with_('{"backoff":"fixed","delay_seconds":0.2}');
    expect([1, 2, 3].map((k) => policyBackoffSeconds(fixed, k))).toEqual([0.2, 0.2, 0.2]);
    const list = with_('{"delays":[1,5,30]}');
    expect([1, 2, 3, 4, 9].map((k) => policyBackoffSeconds(list, k))).toEqual([1, 5, 30, 30, 30]);
  });

  it("jitter multiplies by a factor in [1 − jitter, 1]", () => {
    const jittered = with_('{"backoff":"fixed","delay_seconds":10,"jitter":0.5}');
    expect(policyBackoffSeconds(jittered, 1, () => 0)).toBe(10);
    expect(policyBackoffSeconds(jittered, 1, () => 0.999999)).toBeCloseTo(5, 4);
    for (let i = 0; i < 100; i++) {
      const d = policyBackoffSeconds(jittered, 1);
      expect(d).toBeGreaterThanOrEqual(5);
      expect(d).toBeLessThanOrEqual(10);
    }
  });
});

describe("decisions driven by the policy", () => {
  const rrq: RetryPolicy = defaults;
  const job = (fields: Record<string, string> = {}) =>
    parseJob("j1", {
      id: "j1",
      function_name: "f",
      status: "ACTIVE",
      enqueue_time: "2026-01-01T00:00:00+00:00",
      current_retries: "0",
      max_retries: "5",
      ...fields,
    });
  const ctx = (spec?: string, extra: Partial<DecisionContext> = {}): DecisionContext => ({
    policy: resolvePolicy(defaults, "f", spec),
    nowMs: Date.parse("2026-01-01T00:00:10Z"),
    snoozes: 0,
    ...extra,
  });
  const error = (type: string | null, message = "bad input") =>
    ({ job_id: "j1", request_id: "r", status: "error", error: { message, type } }) as const;

  it("a non_retryable error goes to the DLQ at once, saying why", () => {
    expect(decide(job(), error("non_retryable"), rrq, 1, ctx())).toMatchObject({
      kind: "dlq",
      error: "bad input (not retried: error type 'non_retryable' is non-retryable)",
      outcome: "error",
      errorType: "non_retryable",
    });
  });

  it("non_retryable_error_types lists other types; others still retry", () => {
    const c = ctx('{"non_retryable_error_types":["ValueError"]}');
    expect(decide(job(), error("ValueError"), rrq, 1, c)).toMatchObject({
      kind: "dlq",
      error: "bad input (not retried: error type 'ValueError' is non-retryable)",
    });
    expect(decide(job(), error("KeyError"), rrq, 1, c)).toMatchObject({ kind: "retry" });
  });

  it("max_attempts and the fixed backoff decide retry or DLQ", () => {
    const c = ctx('{"max_attempts":4,"backoff":"fixed","delay_seconds":0.2}');
    expect(decide(job({ current_retries: "2" }), error(null), rrq, 1, c)).toMatchObject({
      kind: "retry",
      delaySeconds: 0.2,
    });
    expect(decide(job({ current_retries: "3" }), error(null), rrq, 1, c)).toMatchObject({
      kind: "dlq",
      error: "bad input",
    });
  });

  it("a runner's retry_after_seconds still wins over the backoff", () => {
    const c = ctx('{"backoff":"fixed","delay_seconds":9}');
    const outcome = {
      job_id: "j1",
      request_id: "r",
      status: "retry",
      retry_after_seconds: 2,
    } as const;
    expect(decide(job(), outcome, rrq, 1, c)).toMatchObject({ kind: "retry", delaySeconds: 2 });
  });

  it("a snooze keeps the attempt and counts; past max_snoozes it goes to the DLQ", () => {
    const snooze = {
      job_id: "j1",
      request_id: "r",
      status: "retry",
      retry_after_seconds: 30,
      error: { message: "Job snoozed", type: null },
      snooze: true,
    } as const;
    expect(decide(job(), snooze, rrq, 1, ctx(undefined, { snoozes: 2 }))).toEqual({
      kind: "snooze",
      delaySeconds: 30,
      snoozes: 3,
    });
    // snoozing does not use up attempts: even on the last attempt it snoozes
    expect(decide(job({ current_retries: "4" }), snooze, rrq, 1, ctx())).toMatchObject({
      kind: "snooze",
    });
    expect(decide(job(), snooze, rrq, 1, ctx('{"max_snoozes":2}', { snoozes: 2 }))).toMatchObject({
      kind: "dlq",
      error: "Job snoozed more than 2 times",
    });
    const noDelay = { ...snooze, retry_after_seconds: null };
    expect(decide(job(), noDelay, rrq, 1, ctx())).toMatchObject({ delaySeconds: 0 });
  });

  it("timeouts go to the DLQ unless retry_timeouts", () => {
    const timeout = { job_id: "j1", request_id: "r", status: "timeout" } as const;
    expect(decide(job(), timeout, rrq, 1, ctx())).toMatchObject({
      kind: "dlq",
      outcome: "timeout",
    });
    expect(decide(job(), timeout, rrq, 1, ctx('{"retry_timeouts":true}'))).toMatchObject({
      kind: "retry",
      error: "Job timed out after 1s.",
      outcome: "timeout",
    });
    expect(decideTimeout(job(), rrq, 2, ctx())).toMatchObject({ kind: "dlq" });
    expect(decideTimeout(job(), rrq, 2, ctx('{"retry_timeouts":true}'))).toMatchObject({
      kind: "retry",
      error: "Job timed out after 2s.",
    });
  });

  it("retry_for_seconds: no retry runs later than first start + budget", () => {
    const c = ctx('{"retry_for_seconds":12,"backoff":"fixed","delay_seconds":1}');
    // now = enqueue + 10 s: a retry at +11 s is within the budget, at +13 s it is not
    expect(decide(job(), error(null), rrq, 1, c)).toMatchObject({ kind: "retry" });
    const late = { ...c, nowMs: c.nowMs + 2000 };
    expect(decide(job(), error(null), rrq, 1, late)).toMatchObject({
      kind: "dlq",
      error: "bad input (retry budget of 12s exhausted)",
    });
    // the first run's start is the origin when known
    const started = job({ run_1_started_at: "2026-01-01T00:00:05+00:00" });
    expect(decide(started, error(null), rrq, 1, late)).toMatchObject({ kind: "retry" });
    // an operator's DLQ requeue restarts the budget; an earlier requeue time changes nothing
    const requeued = job({ dlq_requeued_at: "2026-01-01T00:00:05+00:00" });
    expect(decide(requeued, error(null), rrq, 1, late)).toMatchObject({ kind: "retry" });
    const before = job({ dlq_requeued_at: "2025-12-31T00:00:00+00:00" });
    expect(decide(before, error(null), rrq, 1, late)).toMatchObject({ kind: "dlq" });
  });

  it("without a context, RRQ's table applies", () => {
    expect(decide(job(), error("non_retryable"), rrq, 1)).toMatchObject({ kind: "dlq" });
    expect(decide(job(), error(null), rrq, 1)).toMatchObject({ kind: "retry", delaySeconds: 5 });
  });
});

describe("rrq.toml job-control keys", () => {
  it("reads functions, max_snoozes, DLQ caps and death handlers", () => {
    const config = resolveConfig({
      functions: { "node#charge": { max_attempts: 2 } },
      max_snoozes: 3,
      dlq_max_jobs: 10000,
      dlq_max_age_seconds: 15552000,
      death_handlers: [
        { function: "on_death" },
        { function: "alert", queue: "ops", functions: ["charge"], queues: ["payments"] },
      ],
    });
    expect(config.functionPolicies.get("node#charge")).toEqual({ maxAttempts: 2 });
    expect(config).toMatchObject({ maxSnoozes: 3, dlqMaxJobs: 10000, dlqMaxAgeSeconds: 15552000 });
    expect(config.deathHandlers).toEqual([
      { function: "on_death", queue: "rrq:queue:default", functions: null, queues: null },
      {
        function: "alert",
        queue: "rrq:queue:ops",
        functions: ["charge"],
        queues: ["rrq:queue:payments"],
      },
    ]);
  });

  it("defaults: no policies, 100 snoozes, no caps, no handlers", () => {
    const config = resolveConfig({});
    expect(config.functionPolicies.size).toBe(0);
    expect(config).toMatchObject({ maxSnoozes: 100, dlqMaxJobs: 0, dlqMaxAgeSeconds: 0 });
    expect(config.deathHandlers).toEqual([]);
  });

  it("reports every mistake with its key path", () => {
    let message = "";
    try {
      resolveConfig({
        functions: { charge: { jiter: 0.1, max_attempts: 0 } },
        max_snoozes: -1,
        death_handlers: [{ queue: "x" }],
      });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toContain("unknown key 'functions.charge.jiter'");
    expect(message).toContain("did you mean 'jitter'?");
    expect(message).toContain("functions.charge.max_attempts must be an integer >= 1");
    expect(message).toContain("max_snoozes must be an integer >= 0");
    expect(message).toContain("death_handlers[0].function is required");
  });
});

describe("producer options retry / expires_at / expires_in", () => {
  const producerDefaults: ProducerDefaults = {
    queueName: "rrq:queue:default",
    maxRetries: 5,
    jobTimeoutSeconds: 300,
    resultTtlSeconds: 86400,
    idempotencyTtlSeconds: 21600,
    correlationMappings: {},
  };
  const now = Date.parse("2026-01-01T00:00:00Z");
  const plan = (options: Record<string, unknown>) =>
    planEnqueue("f", {}, options, producerDefaults, now);
  const refused = (options: Record<string, unknown>) => {
    try {
      plan(options);
    } catch (error) {
      expect(error).toBeInstanceOf(ProducerError);
      return { code: (error as ProducerError).code, message: (error as Error).message };
    }
    throw new Error("accepted");
  };

  it("writes nothing extra without the options (RRQ's bytes)", () => {
    expect(plan({}).extraFields).toBeUndefined();
  });

  it("stores retry as canonical JSON and max_attempts as max_retries", () => {
    const p = plan({ retry: { max_attempts: 3, backoff: "fixed", delay_seconds: 0.2 } });
    expect(p.extraFields).toEqual({
      retry_policy: '{"backoff":"fixed","delay_seconds":0.2,"max_attempts":3}',
    });
    expect(p.maxRetries).toBe(3);
    expect(plan({ retry: { max_attempts: 3 }, maxRetries: 3 }).maxRetries).toBe(3);
    expect(plan({ retry: { jitter: 0.5 } }).maxRetries).toBe(5);
  });

  it("stores expires_at in the enqueue_time format", () => {
    expect(plan({ expiresIn: 30 }).extraFields).toEqual({
      expires_at: "2026-01-01T00:00:30+00:00",
    });
    expect(plan({ expiresIn: 0.25 }).extraFields?.expires_at).toBe("2026-01-01T00:00:00.250+00:00");
    expect(plan({ expiresAt: "2026-01-02T00:00:00Z" }).extraFields?.expires_at).toBe(
      "2026-01-02T00:00:00+00:00",
    );
    expect(plan({ expiresAt: new Date(now + 1500) }).extraFields?.expires_at).toBe(
      "2026-01-01T00:00:01.500+00:00",
    );
    expect(plan({ expiresAt: now / 1000 + 60 }).extraFields?.expires_at).toBe(
      "2026-01-01T00:01:00+00:00",
    );
  });

  it("refuses bad options, naming them", () => {
    expect(refused({ retry: { jitter: 2 } })).toEqual({
      code: "invalid_argument",
      message: "retry.jitter must be a number between 0 and 1, got 2",
    });
    expect(refused({ retry: { max_atempts: 2 } }).message).toContain("did you mean 'max_attempts'");
    expect(refused({ retry: "3" }).code).toBe("invalid_argument");
    expect(refused({ retry: { max_attempts: 2 }, maxRetries: 3 }).code).toBe("conflicting_options");
    expect(refused({ expiresIn: 5, expiresAt: new Date(now + 9000) }).code).toBe(
      "conflicting_options",
    );
    expect(refused({ expiresAt: "2025-12-31T23:59:59Z" })).toEqual({
      code: "invalid_argument",
      message: "expires_at is in the past",
    });
    expect(refused({ expiresIn: 0 }).message).toContain("expires_in must be a finite number > 0");
    expect(refused({ expiresAt: "soon" }).message).toContain("expires_at must be an RFC 3339");
  });
});
