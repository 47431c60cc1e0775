import { canonicalJson } from "../store/encoding.js";
import { unknownKeyProblems } from "../config/values.js";

/**
 * A retry policy as given (job option `retry`, hash field `retry_policy`, or an
 * `[rrq.functions."<name>"]` table): every field optional, absent fields fall back to the next
 * level (job → function → global defaults, see ./resolve.ts). Field names are the wire names'
 * camelCase; the stored JSON uses the snake_case names of {@link RETRY_POLICY_KEYS}.
 */
export interface RetryPolicySpec {
  /** Total attempts (RRQ's meaning of max_retries), ≥ 1. */
  readonly maxAttempts?: number;
  /** "list" also when only `delays` was given. */
  readonly backoff?: Backoff;
  /** Exponential base, or the fixed delay, in seconds. */
  readonly delaySeconds?: number;
  /** Cap of the exponential delay. */
  readonly maxDelaySeconds?: number;
  /** The delay is multiplied by a random factor in [1 − jitter, 1]. */
  readonly jitter?: number;
  /** Backoff "list": retry k waits delays[min(k, len) − 1]. */
  readonly delays?: readonly number[];
  /** Whether a timeout is retried (default false: it goes to the DLQ, as in RRQ). */
  readonly retryTimeouts?: boolean;
  /** Runner `error.type`s that go to the DLQ at once. */
  readonly nonRetryableErrorTypes?: readonly string[];
  /** No retry is scheduled later than the first start plus this many seconds. */
  readonly retryForSeconds?: number;
  /** How often the job may snooze before it goes to the DLQ. */
  readonly maxSnoozes?: number;
}

/** The backoff strategies. */
export type Backoff = "exponential" | "fixed" | "list";

/** The keys of a stored retry policy (and of an `[rrq.functions."<name>"]` table). */
export const RETRY_POLICY_KEYS = [
  "max_attempts",
  "backoff",
  "delay_seconds",
  "max_delay_seconds",
  "jitter",
  "delays",
  "retry_timeouts",
  "non_retryable_error_types",
  "retry_for_seconds",
  "max_snoozes",
] as const;

type Key = (typeof RETRY_POLICY_KEYS)[number];

/** A TOML integer may arrive as a bigint; everything else compares as a number. */
const asNumber = (v: unknown): unknown => (typeof v === "bigint" ? Number(v) : v);
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * One reader per key: the value as the spec wants it, or the words for what it must be (the
 * message is then "<path> must be <words>", e.g. "retry.jitter must be a number between 0 and 1").
 */
const READERS: Record<Key, (v: unknown) => { ok: unknown } | { must: string }> = {
  max_attempts: (v) =>
    Number.isInteger(v) && (v as number) >= 1 ? { ok: v } : { must: "an integer >= 1" },
  backoff: (v) =>
    v === "exponential" || v === "fixed" || v === "list"
      ? { ok: v }
      : { must: 'one of "exponential", "fixed", "list"' },
  delay_seconds: (v) => (isNum(v) && v >= 0 ? { ok: v } : { must: "a number >= 0" }),
  max_delay_seconds: (v) => (isNum(v) && v >= 0 ? { ok: v } : { must: "a number >= 0" }),
  jitter: (v) => (isNum(v) && v >= 0 && v <= 1 ? { ok: v } : { must: "a number between 0 and 1" }),
  delays: (v) => {
    const list = Array.isArray(v) ? v.map(asNumber) : undefined;
    return list && list.length > 0 && list.every((d) => isNum(d) && d >= 0)
      ? { ok: Object.freeze(list) }
      : { must: "a non-empty array of numbers >= 0" };
  },
  retry_timeouts: (v) => (typeof v === "boolean" ? { ok: v } : { must: "true or false" }),
  non_retryable_error_types: (v) =>
    Array.isArray(v) && v.every((t) => typeof t === "string" && t !== "")
      ? { ok: Object.freeze([...(v as string[])]) }
      : { must: "an array of non-empty strings" },
  retry_for_seconds: (v) => (isNum(v) && v > 0 ? { ok: v } : { must: "a number > 0" }),
  max_snoozes: (v) =>
    Number.isInteger(v) && (v as number) >= 0 ? { ok: v } : { must: "an integer >= 0" },
};

const CAMEL: Record<Key, keyof RetryPolicySpec> = {
  max_attempts: "maxAttempts",
  backoff: "backoff",
  delay_seconds: "delaySeconds",
  max_delay_seconds: "maxDelaySeconds",
  jitter: "jitter",
  delays: "delays",
  retry_timeouts: "retryTimeouts",
  non_retryable_error_types: "nonRetryableErrorTypes",
  retry_for_seconds: "retryForSeconds",
  max_snoozes: "maxSnoozes",
};

function shown(value: unknown): string {
  if (typeof value === "string") return `"${value}"`;
  if (typeof value === "bigint") return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A validated policy, or every problem found (each naming its key path). */
export type PolicyCheck =
  | { ok: true; spec: RetryPolicySpec; problems?: undefined }
  | { ok: false; spec: RetryPolicySpec; problems: string[] };

/**
 * Validates a retry policy object — the one validator of the producer option, the hash field
 * and the config tables. `where` is the key path messages start with ("retry",
 * "functions.charge_card", "retry_policy"). Unknown keys are problems (with a did-you-mean);
 * `spec` holds every valid field even when there are problems, so a reader may use the valid
 * part of a damaged stored policy.
 */
export function checkRetryPolicy(raw: unknown, where: string): PolicyCheck {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw) || raw instanceof Date)
    return { ok: false, spec: {}, problems: [`${where} must be an object (a table)`] };
  const record = raw as Record<string, unknown>;
  const problems = unknownKeyProblems(record, RETRY_POLICY_KEYS, where);
  const spec: { -readonly [K in keyof RetryPolicySpec]: RetryPolicySpec[K] } = {};
  for (const key of RETRY_POLICY_KEYS) {
    const value = record[key];
    if (value === undefined) continue;
    const read = READERS[key](asNumber(value));
    if ("ok" in read) (spec as Record<string, unknown>)[CAMEL[key]] = read.ok;
    else problems.push(`${where}.${key} must be ${read.must}, got ${shown(value)}`);
  }
  if (spec.backoff === undefined && spec.delays !== undefined) spec.backoff = "list";
  else if (spec.backoff === "list" && spec.delays === undefined && record.delays === undefined)
    problems.push(`${where}.delays is required with backoff "list"`);
  else if (spec.backoff !== "list" && spec.backoff !== undefined && spec.delays !== undefined) {
    problems.push(`${where}.delays is only used with backoff "list" (got "${spec.backoff}")`);
    delete spec.delays;
  }
  const frozen = Object.freeze(spec) as RetryPolicySpec;
  return problems.length === 0 ? { ok: true, spec: frozen } : { ok: false, spec: frozen, problems };
}

/**
 * The `retry_policy` hash field of a valid policy object: canonical JSON (sorted keys, the
 * encoding of job_params) of the object as given, so every producer stores the same bytes.
 */
export function retryPolicyJson(raw: Readonly<Record<string, unknown>>): string {
  return canonicalJson(raw, "retry");
}

/**
 * Parses a stored `retry_policy` field. Invalid content never throws: the valid fields are
 * kept and `problems` says what was ignored (the worker logs it and falls back for the rest).
 */
export function parseStoredPolicy(json: string): { spec: RetryPolicySpec; problems: string[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return { spec: {}, problems: ["retry_policy is not JSON"] };
  }
  const check = checkRetryPolicy(raw, "retry_policy");
  return { spec: check.spec, problems: check.problems ?? [] };
}
