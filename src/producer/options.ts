import { randomUUID } from "node:crypto";
import { MAX_FRAME_BYTES, MAX_PARAMS_DEPTH, nestsDeeperThan } from "@rrqkit/runner/protocol";
import { ProducerError } from "../errors.js";
import { checkRetryPolicy, retryPolicyJson } from "../policy/index.js";
import {
  canonicalJson,
  formatTimestampMicros,
  NotJsonError,
  parseTimestampMicros,
} from "../store/encoding.js";
import { debounceKey, idempotencyKey, queueKey, rateLimitKey } from "../store/keys.js";
import { extractCorrelation } from "./correlation.js";
import {
  FLOW_OPTION_NAMES,
  flowControlFields,
  hasFlowControl,
  type FlowControlOptions,
} from "./flow-options.js";
import { jsonValueProblem } from "./json-params.js";

/**
 * Options of one enqueue (the parity spec's options, camelCased), with rrqkit's job-control and
 * flow-control options (concurrencyKey, concurrencyLimit, startRate, limit, orderingKey: see
 * ./flow-options.ts).
 */
export interface EnqueueOptions extends FlowControlOptions {
  queueName?: string;
  jobId?: string;
  /** Idempotency key: a second enqueue with the same key returns the first job's id. */
  uniqueKey?: string;
  uniqueTtlSeconds?: number;
  /** Total attempts allowed (RRQ's meaning of max_retries). */
  maxRetries?: number;
  jobTimeoutSeconds?: number;
  /** 0 keeps the result forever; a negative value leaves the TTL unchanged. */
  resultTtlSeconds?: number;
  traceContext?: Record<string, string>;
  /** When to run (RFC 3339 string or Date); not together with deferBySeconds. */
  deferUntil?: Date | string;
  deferBySeconds?: number;
  /** Overrides the recorded enqueue time (RFC 3339 string or Date). */
  enqueueTime?: Date | string;
  rateLimitKey?: string;
  rateLimitSeconds?: number;
  debounceKey?: string;
  debounceSeconds?: number;
  /**
   * rrqkit: the job's retry policy, with the snake_case keys every binding and rrq.toml share
   * (`max_attempts`, `backoff`, `delay_seconds`, `max_delay_seconds`, `jitter`, `delays`,
   * `retry_timeouts`, `non_retryable_error_types`, `retry_for_seconds`, `max_snoozes`); stored
   * as `retry_policy`. `max_attempts` also sets max_retries (so RRQ's orchestrator counts the
   * same).
   */
  retry?: Readonly<Record<string, unknown>>;
  /**
   * rrqkit: a job not started by then is not run (it ends FAILED). Date, RFC 3339 string or
   * epoch seconds; not together with expiresIn.
   */
  expiresAt?: Date | string | number;
  /** rrqkit: seconds from now (the producer's clock) after which the job is not started. */
  expiresIn?: number;
}

/** The snake_case option names of the wire and config world, and their TS names. */
export const OPTION_NAMES: Readonly<Record<string, keyof EnqueueOptions>> = {
  queue_name: "queueName",
  job_id: "jobId",
  unique_key: "uniqueKey",
  unique_ttl_seconds: "uniqueTtlSeconds",
  max_retries: "maxRetries",
  job_timeout_seconds: "jobTimeoutSeconds",
  result_ttl_seconds: "resultTtlSeconds",
  trace_context: "traceContext",
  defer_until: "deferUntil",
  defer_by_seconds: "deferBySeconds",
  enqueue_time: "enqueueTime",
  rate_limit_key: "rateLimitKey",
  rate_limit_seconds: "rateLimitSeconds",
  debounce_key: "debounceKey",
  debounce_seconds: "debounceSeconds",
  retry: "retry",
  expires_at: "expiresAt",
  expires_in: "expiresIn",
  ...FLOW_OPTION_NAMES,
};

/** Converts snake_case options (CLI, adapters, JSON) to {@link EnqueueOptions}; unknown names are errors. */
export function optionsFromSnakeCase(raw: Record<string, unknown>): EnqueueOptions {
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    const camel =
      OPTION_NAMES[name] ??
      (Object.values(OPTION_NAMES).includes(name as keyof EnqueueOptions) ? name : undefined);
    if (!camel) throw new ProducerError("invalid_argument", `unknown option '${name}'`);
    if (value !== null && value !== undefined) options[camel] = value;
  }
  return options;
}

/** Producer defaults (protocol/PRODUCER.md §2). */
export interface ProducerDefaults {
  queueName: string;
  maxRetries: number;
  jobTimeoutSeconds: number;
  resultTtlSeconds: number;
  idempotencyTtlSeconds: number;
  correlationMappings: Readonly<Record<string, string>>;
}

/** Everything one enqueue writes, validated. */
export interface EnqueuePlan {
  mode: "enqueue" | "rate_limit" | "debounce";
  jobId: string;
  functionName: string;
  paramsJson: string;
  /** Epoch microseconds (parsed options keep microseconds, as RRQ does). */
  enqueueTimeUs: number;
  runAtUs: number;
  queue: string;
  maxRetries: number;
  jobTimeoutSeconds: number;
  resultTtlSeconds: number;
  traceJson: string;
  correlationJson: string;
  guard?: { key: string; ttlSeconds: number };
  /**
   * rrqkit's additive job fields, written only when their option is given (so an RRQ option
   * set writes RRQ's bytes): `retry_policy`, `expires_at`, and the flow-control fields
   * `concurrency_key`, `concurrency_limit`, `start_rate`, `limit_name`, `ordering_key` (see
   * ../store/lua/enqueue-fields-1.lua).
   */
  extraFields?: Readonly<Record<string, string>>;
}

/** Encoded params may not exceed the frame cap minus 64 KiB for the envelope. */
export const MAX_PARAMS_BYTES = MAX_FRAME_BYTES - 64 * 1024;

const invalid = (message: string) => new ProducerError("invalid_argument", message);

function name(value: unknown, label: string): string {
  if (typeof value !== "string" || value.trim() === "") throw invalid(`${label} cannot be empty`);
  return value;
}

function integer(value: unknown, label: string, rule: "positive" | "non-negative" | "any"): number {
  const ok =
    typeof value === "number" &&
    Number.isInteger(value) &&
    (rule === "any" || (rule === "positive" ? value > 0 : value >= 0));
  if (ok) return value;
  const words = {
    positive: "a positive integer",
    "non-negative": "a non-negative integer",
    any: "an integer",
  }[rule];
  throw invalid(`${label} must be ${words}`);
}

function seconds(value: unknown, label: string, allowZero: boolean): number {
  const ok =
    typeof value === "number" && Number.isFinite(value) && (allowZero ? value >= 0 : value > 0);
  if (ok) return value;
  throw invalid(`${label} must be a finite number ${allowZero ? ">= 0" : "> 0"}`);
}

/**
 * The job-control options as hash fields (protocol/PRODUCER.md "Job control"): the validated
 * `retry` object as canonical JSON and `expires_at` in the enqueue_time format; undefined when
 * none is given. Also returns the max_retries that `retry.max_attempts` implies.
 */
function jobControlFields(
  o: EnqueueOptions,
  now: number,
): { fields: Record<string, string> | undefined; maxAttempts: number | undefined } {
  const fields: Record<string, string> = {};
  let maxAttempts: number | undefined;
  if (o.retry !== undefined) {
    const check = checkRetryPolicy(o.retry, "retry");
    if (!check.ok) throw invalid(check.problems.join("; "));
    maxAttempts = check.spec.maxAttempts;
    if (maxAttempts !== undefined && o.maxRetries !== undefined && o.maxRetries !== maxAttempts)
      throw new ProducerError(
        "conflicting_options",
        `max_retries (${String(o.maxRetries)}) and retry.max_attempts (${maxAttempts}) differ; give one`,
      );
    fields.retry_policy = retryPolicyJson(o.retry);
  }
  if (o.expiresAt !== undefined && o.expiresIn !== undefined)
    throw new ProducerError(
      "conflicting_options",
      "expires_at and expires_in are mutually exclusive; give one",
    );
  let expiresUs: number | undefined;
  if (o.expiresIn !== undefined)
    expiresUs = now * 1000 + Math.ceil(seconds(o.expiresIn, "expires_in", false) * 1000) * 1000;
  else if (o.expiresAt !== undefined) {
    expiresUs =
      typeof o.expiresAt === "number" && Number.isFinite(o.expiresAt)
        ? Math.round(o.expiresAt * 1_000_000)
        : instant(o.expiresAt, "expires_at");
    if (expiresUs <= now * 1000) throw invalid("expires_at is in the past");
  }
  if (expiresUs !== undefined) fields.expires_at = formatTimestampMicros(expiresUs);
  return { fields: Object.keys(fields).length > 0 ? fields : undefined, maxAttempts };
}

/** An instant option (Date or RFC 3339 text) as epoch microseconds. */
function instant(value: unknown, label: string): number {
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.getTime() * 1000;
  const micros = typeof value === "string" ? parseTimestampMicros(value) : undefined;
  if (micros !== undefined) return micros;
  throw invalid(`${label} must be an RFC 3339 timestamp`);
}

function traceContext(value: unknown): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const ok =
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string");
  if (!ok) throw invalid("trace_context must map strings to strings");
  return value as Record<string, string>;
}

function encodeParams(params: unknown): { json: string; value: Record<string, unknown> } {
  const value = params ?? {};
  if (
    typeof value !== "object" ||
    Array.isArray(value) ||
    (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null)
  ) {
    throw new ProducerError("invalid_params", "params must be a JSON object");
  }
  // Checked first: it bounds the recursion of the encoder below.
  if (nestsDeeperThan(value, MAX_PARAMS_DEPTH)) {
    throw new ProducerError(
      "invalid_params",
      `params nest deeper than ${MAX_PARAMS_DEPTH} levels; a runner could not receive them`,
    );
  }
  const problem = jsonValueProblem(value, "params");
  if (problem) throw new ProducerError("invalid_params", problem);
  let json: string;
  try {
    json = canonicalJson(value);
  } catch (error) {
    if (error instanceof NotJsonError) {
      const message =
        error.reason === "non_finite"
          ? `params contains a non-finite number at ${error.path}`
          : `params must be JSON-serializable: ${error.message}`;
      throw new ProducerError("invalid_params", message);
    }
    throw error;
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_PARAMS_BYTES) {
    throw new ProducerError(
      "payload_too_large",
      `params are ${bytes} bytes when encoded; the limit is ${MAX_PARAMS_BYTES}`,
    );
  }
  return { json, value: value as Record<string, unknown> };
}

function guardMode(o: EnqueueOptions): EnqueuePlan["mode"] {
  const rate = o.rateLimitKey !== undefined || o.rateLimitSeconds !== undefined;
  const debounce = o.debounceKey !== undefined || o.debounceSeconds !== undefined;
  if (rate && debounce)
    throw new ProducerError(
      "conflicting_options",
      "rate_limit and debounce options are mutually exclusive",
    );
  if (rate) {
    if (o.rateLimitKey === undefined)
      throw invalid("rate_limit_key is required with rate_limit_seconds");
    if (o.rateLimitSeconds === undefined)
      throw invalid("rate_limit_seconds is required with rate_limit_key");
    return "rate_limit";
  }
  if (debounce) {
    if (o.debounceKey === undefined)
      throw invalid("debounce_key is required with debounce_seconds");
    if (o.debounceSeconds === undefined)
      throw invalid("debounce_seconds is required with debounce_key");
    return "debounce";
  }
  return "enqueue";
}

/**
 * Validates one enqueue call and computes exactly what it writes (protocol/PRODUCER.md §3–§6).
 * Throws {@link ProducerError}; nothing has been written when it does.
 */
export function planEnqueue(
  functionName: unknown,
  params: unknown,
  options: EnqueueOptions,
  defaults: ProducerDefaults,
  now = Date.now(),
): EnqueuePlan {
  if (typeof options !== "object" || options === null) throw invalid("options must be an object");
  for (const key of Object.keys(options)) {
    if (!Object.values(OPTION_NAMES).includes(key as keyof EnqueueOptions))
      throw invalid(`unknown option '${key}'`);
  }
  const fn = name(functionName, "function_name");
  const { json: paramsJson, value: paramsValue } = encodeParams(params);
  const o = options;
  const mode = guardMode(o);
  const queue = queueKey(
    o.queueName === undefined ? defaults.queueName : name(o.queueName, "queue_name"),
  );
  const jobId = o.jobId === undefined ? randomUUID() : name(o.jobId, "job_id");
  const control =
    o.retry === undefined && o.expiresAt === undefined && o.expiresIn === undefined
      ? undefined
      : jobControlFields(o, now);
  const maxRetries =
    o.maxRetries === undefined
      ? (control?.maxAttempts ?? defaults.maxRetries)
      : integer(o.maxRetries, "max_retries", "non-negative");
  const jobTimeoutSeconds =
    o.jobTimeoutSeconds === undefined
      ? defaults.jobTimeoutSeconds
      : integer(o.jobTimeoutSeconds, "job_timeout_seconds", "positive");
  const resultTtlSeconds =
    o.resultTtlSeconds === undefined
      ? defaults.resultTtlSeconds
      : integer(o.resultTtlSeconds, "result_ttl_seconds", "any");
  const trace = traceContext(o.traceContext);
  const enqueueTimeUs =
    o.enqueueTime === undefined ? now * 1000 : instant(o.enqueueTime, "enqueue_time");
  if (o.deferUntil !== undefined && o.deferBySeconds !== undefined)
    throw new ProducerError(
      "conflicting_options",
      "defer_until and defer_by_seconds are mutually exclusive; give one",
    );
  const deferBy =
    o.deferBySeconds === undefined ? 0 : seconds(o.deferBySeconds, "defer_by_seconds", true);
  let runAtUs =
    o.deferUntil !== undefined
      ? instant(o.deferUntil, "defer_until")
      : enqueueTimeUs + Math.ceil(deferBy * 1000) * 1000;
  let guard: EnqueuePlan["guard"];
  if (mode === "rate_limit") {
    const window = seconds(o.rateLimitSeconds, "rate_limit_seconds", false);
    guard = {
      key: rateLimitKey(name(o.rateLimitKey, "rate_limit_key")),
      ttlSeconds: Math.ceil(window),
    };
  } else if (mode === "debounce") {
    const window = seconds(o.debounceSeconds, "debounce_seconds", false);
    guard = {
      key: debounceKey(name(o.debounceKey, "debounce_key")),
      ttlSeconds: Math.ceil(window),
    };
    runAtUs = enqueueTimeUs + Math.ceil(window * 1000) * 1000;
  }
  if (o.uniqueKey !== undefined) {
    const key = idempotencyKey(name(o.uniqueKey, "unique_key"));
    const baseTtl =
      o.uniqueTtlSeconds === undefined
        ? defaults.idempotencyTtlSeconds
        : integer(o.uniqueTtlSeconds, "unique_ttl_seconds", "positive");
    const deferral = Math.ceil(Math.max(0, runAtUs - enqueueTimeUs) / 1_000_000);
    if (mode !== "enqueue")
      throw new ProducerError(
        "conflicting_options",
        "unique_key cannot be combined with rate_limit or debounce options",
      );
    guard = { key, ttlSeconds: Math.max(baseTtl, deferral) };
  } else if (o.uniqueTtlSeconds !== undefined) {
    integer(o.uniqueTtlSeconds, "unique_ttl_seconds", "positive");
  }
  const correlation = extractCorrelation(defaults.correlationMappings, paramsValue, trace);
  const extraFields = {
    ...control?.fields,
    ...(hasFlowControl(o) ? flowControlFields(o) : undefined),
  };
  return {
    mode,
    jobId,
    functionName: fn,
    paramsJson,
    enqueueTimeUs,
    runAtUs,
    queue,
    maxRetries,
    jobTimeoutSeconds,
    resultTtlSeconds,
    traceJson: trace && Object.keys(trace).length > 0 ? canonicalJson(trace, "trace_context") : "",
    correlationJson: correlation ? canonicalJson(correlation, "correlation_context") : "",
    guard,
    ...(Object.keys(extraFields).length > 0 && { extraFields }),
  };
}

/**
 * The ARGV of enqueue-fields-1.lua for a plan with {@link EnqueuePlan.extraFields} (after the
 * mode, which the caller picks): function_name, job_params, queue_name, then field/value pairs.
 */
export function extraFieldArgs(plan: EnqueuePlan): string[] {
  const pairs = Object.entries(plan.extraFields ?? {}).flat();
  return [plan.functionName, plan.paramsJson, plan.queue, ...pairs];
}

/** The job-field ARGV (positions 1–14 of the enqueue scripts) for a plan. */
export function jobFieldArgs(plan: EnqueuePlan): string[] {
  return [
    plan.jobId,
    plan.functionName,
    plan.paramsJson,
    formatTimestampMicros(plan.enqueueTimeUs),
    "PENDING",
    "0",
    formatTimestampMicros(plan.runAtUs),
    String(plan.maxRetries),
    String(plan.jobTimeoutSeconds),
    String(plan.resultTtlSeconds),
    plan.queue,
    "null",
    plan.traceJson,
    plan.correlationJson,
  ];
}
