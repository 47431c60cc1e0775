import { parseStoredPolicy, type Backoff, type RetryPolicySpec } from "./spec.js";

/** The global defaults a policy falls back to (a {@link ResolvedConfig} has all of them). */
export interface PolicyDefaults {
  readonly defaultMaxRetries: number;
  readonly baseRetryDelaySeconds: number;
  readonly maxRetryDelaySeconds: number;
  /** Global snooze cap (`max_snoozes`, default 100). */
  readonly maxSnoozes?: number;
  /** `[rrq.functions."<name>"]` policies by function name. */
  readonly functionPolicies?: ReadonlyMap<string, RetryPolicySpec>;
}

/** RRQ's default snooze cap when the config says nothing. */
export const DEFAULT_MAX_SNOOZES = 100;

/**
 * The policy one attempt's result is judged by, every field resolved. `maxAttempts` is
 * undefined when neither the job nor its function sets one: the hash's `max_retries`, then
 * `default_max_retries` apply (see {@link maxAttemptsOf}).
 */
export interface EffectivePolicy {
  readonly maxAttempts: number | undefined;
  readonly backoff: Backoff;
  readonly delaySeconds: number;
  readonly maxDelaySeconds: number;
  readonly jitter: number;
  readonly delays: readonly number[] | undefined;
  readonly retryTimeouts: boolean;
  readonly nonRetryableErrorTypes: ReadonlySet<string>;
  readonly retryForSeconds: number | undefined;
  readonly maxSnoozes: number;
}

const NO_TYPES: ReadonlySet<string> = new Set();

/** The global level: RRQ's exponential backoff, no jitter, timeouts not retried. */
function globalPolicy(d: PolicyDefaults): EffectivePolicy {
  return Object.freeze({
    maxAttempts: undefined,
    backoff: "exponential",
    delaySeconds: d.baseRetryDelaySeconds,
    maxDelaySeconds: d.maxRetryDelaySeconds,
    jitter: 0,
    delays: undefined,
    retryTimeouts: false,
    nonRetryableErrorTypes: NO_TYPES,
    retryForSeconds: undefined,
    maxSnoozes: d.maxSnoozes ?? DEFAULT_MAX_SNOOZES,
  });
}

/** `spec`'s fields over `base`, field by field. */
export function overlay(base: EffectivePolicy, spec: RetryPolicySpec): EffectivePolicy {
  return Object.freeze({
    maxAttempts: spec.maxAttempts ?? base.maxAttempts,
    backoff: spec.backoff ?? base.backoff,
    delaySeconds: spec.delaySeconds ?? base.delaySeconds,
    maxDelaySeconds: spec.maxDelaySeconds ?? base.maxDelaySeconds,
    jitter: spec.jitter ?? base.jitter,
    delays: spec.delays ?? base.delays,
    retryTimeouts: spec.retryTimeouts ?? base.retryTimeouts,
    nonRetryableErrorTypes: spec.nonRetryableErrorTypes
      ? new Set(spec.nonRetryableErrorTypes)
      : base.nonRetryableErrorTypes,
    retryForSeconds: spec.retryForSeconds ?? base.retryForSeconds,
    maxSnoozes: spec.maxSnoozes ?? base.maxSnoozes,
  });
}

/** Per-config caches: the global level and each function's merged level, built once. */
interface Cache {
  global: EffectivePolicy;
  byFunction: Map<string, EffectivePolicy>;
}
const caches = new WeakMap<PolicyDefaults, Cache>();

function cacheOf(defaults: PolicyDefaults): Cache {
  let cache = caches.get(defaults);
  if (!cache) {
    cache = { global: globalPolicy(defaults), byFunction: new Map() };
    caches.set(defaults, cache);
  }
  return cache;
}

/**
 * The function level for a stored function name: the policy of the exact name, else of its
 * handler part after a `runner#` prefix; the global level when there is none. Cached per
 * config and name (a worker sees few distinct names).
 */
function functionLevel(defaults: PolicyDefaults, functionName: string): EffectivePolicy {
  const cache = cacheOf(defaults);
  const policies = defaults.functionPolicies;
  if (!policies || policies.size === 0) return cache.global;
  let level = cache.byFunction.get(functionName);
  if (level === undefined) {
    const hash = functionName.indexOf("#");
    const spec =
      policies.get(functionName) ??
      (hash >= 0 ? policies.get(functionName.slice(hash + 1)) : undefined);
    level = spec ? overlay(cache.global, spec) : cache.global;
    // a bound on the cache: function names come from job hashes anyone can write
    if (cache.byFunction.size >= 10_000) cache.byFunction.clear();
    cache.byFunction.set(functionName, level);
  }
  return level;
}

/**
 * Resolves a job's policy: its `retry_policy` field (parsed only when present) over its
 * function's policy over the global defaults. Problems of a damaged `retry_policy` are passed
 * to `warn` and the damaged fields fall back; resolution never throws.
 */
export function resolvePolicy(
  defaults: PolicyDefaults,
  functionName: string,
  retryPolicyField: string | undefined,
  warn?: (problem: string) => void,
): EffectivePolicy {
  const level = functionLevel(defaults, functionName);
  if (retryPolicyField === undefined || retryPolicyField === "") return level;
  const { spec, problems } = parseStoredPolicy(retryPolicyField);
  if (warn) for (const problem of problems) warn(`${problem}; ignored, the fallback applies`);
  return overlay(level, spec);
}

/**
 * Total attempts allowed: the policy's max_attempts (job, then function), else the hash's
 * max_retries, else `default_max_retries`.
 */
export function maxAttemptsOf(
  policy: EffectivePolicy,
  hashMaxRetries: number | undefined,
  defaults: Pick<PolicyDefaults, "defaultMaxRetries">,
): number {
  return policy.maxAttempts ?? hashMaxRetries ?? defaults.defaultMaxRetries;
}

/**
 * Seconds before retry number `k` (1-based: k = current_retries + 1, so the first retry after
 * the first attempt is k = 1). Exponential: min(delay · 2^(k−1), max) with the exponent capped
 * at 30 (RRQ's rule); fixed: delay; list: delays[min(k, len) − 1]. Jitter multiplies by a
 * random factor in [1 − jitter, 1] (`random` is injectable for tests).
 */
export function policyBackoffSeconds(
  policy: EffectivePolicy,
  k: number,
  random: () => number = Math.random,
): number {
  const n = Math.max(k, 1);
  let delay: number;
  if (policy.backoff === "list" && policy.delays && policy.delays.length > 0)
    delay = policy.delays[Math.min(n, policy.delays.length) - 1]!;
  else if (policy.backoff === "fixed") delay = policy.delaySeconds;
  else delay = Math.min(policy.delaySeconds * 2 ** Math.min(n - 1, 30), policy.maxDelaySeconds);
  return policy.jitter > 0 ? delay * (1 - policy.jitter * random()) : delay;
}
