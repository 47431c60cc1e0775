import { unknownKeyProblems } from "../config/values.js";
import { ProducerError } from "../errors.js";
import { MAX_REQUIRED_TAGS, normalizeTags, tagsProblem } from "../live/tags.js";

/**
 * Flow-control options of one enqueue (issue 22; README "Flow control"): concurrency caps, start
 * rates, named limits and sessions. Every binding validates them with the same rules and words
 * (runners/python/src/rrqkit/flow_options.py, runners/rust/src/producer/flow.rs) and stores them
 * as additive hash fields through enqueue-fields-1.lua, only when given.
 */

/** A start rate: at most `limit` starts per `periodSeconds`, spread evenly (smooth). */
export interface StartRate {
  /** Starts per period, 1..1000000. */
  limit: number;
  /** The period in seconds (> 0, may be fractional; stored in ms, at least 1, at most 86400 s). */
  periodSeconds: number;
}

/** The flow-control part of {@link EnqueueOptions} (see ./options.ts). */
export interface FlowControlOptions {
  /** Jobs with the same key share a concurrency cap and a start rate (1..256 characters). */
  concurrencyKey?: string;
  /** At most this many jobs of the key run at once (1..100000); needs concurrencyKey or limit. */
  concurrencyLimit?: number;
  /** Starts per period for the key; needs concurrencyKey or limit. */
  startRate?: StartRate;
  /** Name of a `[rrq.limits.<name>]` table of rrq.toml (1..128 of `A-Za-z0-9_.:-`). */
  limit?: string;
  /** A session: jobs of one key run one at a time in enqueue order (1..256 characters). */
  orderingKey?: string;
  /**
   * Capability tags the runner must offer (issue 23, routing by capability): the job is
   * dispatched only to a runner process whose hello lists them all, and waits, without an
   * attempt, while none is connected. Each tag 1..64 of `A-Za-z0-9_.:/=-`, at most 16.
   */
  requires?: readonly string[];
}

/** The snake_case option names and their TS names (merged into OPTION_NAMES). */
export const FLOW_OPTION_NAMES = {
  concurrency_key: "concurrencyKey",
  concurrency_limit: "concurrencyLimit",
  start_rate: "startRate",
  limit: "limit",
  ordering_key: "orderingKey",
  requires: "requires",
} as const;

/** Bounds of the contract (flow-design table), the same in every binding. */
export const MAX_FLOW_KEY_CHARS = 256;
export const MAX_LIMIT_NAME_CHARS = 128;
export const MAX_CONCURRENCY_LIMIT = 100_000;
export const MAX_START_RATE_LIMIT = 1_000_000;
export const MAX_START_RATE_PERIOD_MS = 86_400_000;
const LIMIT_NAME = /^[A-Za-z0-9_.:-]+$/;
const START_RATE_KEYS = ["limit", "period_seconds"] as const;

const invalid = (message: string) => new ProducerError("invalid_argument", message);

/** Characters as Python and Rust count them (code points, not UTF-16 units). */
const chars = (s: string): number => [...s].length;

function key(value: unknown, label: string): string {
  const n = typeof value === "string" ? chars(value) : 0;
  if (n >= 1 && n <= MAX_FLOW_KEY_CHARS) return value as string;
  throw invalid(`${label} must be a string of 1 to ${MAX_FLOW_KEY_CHARS} characters`);
}

function limitName(value: unknown): string {
  if (typeof value === "string" && LIMIT_NAME.test(value) && value.length <= MAX_LIMIT_NAME_CHARS)
    return value;
  throw invalid(
    `limit must be a limit name of 1 to ${MAX_LIMIT_NAME_CHARS} characters from A-Z a-z 0-9 _ . : -`,
  );
}

function concurrencyLimit(value: unknown): number {
  if (
    typeof value === "number" &&
    Number.isInteger(value) &&
    value >= 1 &&
    value <= MAX_CONCURRENCY_LIMIT
  )
    return value;
  throw invalid(`concurrency_limit must be an integer from 1 to ${MAX_CONCURRENCY_LIMIT}`);
}

/**
 * `start_rate` as stored: `"<limit>/<period_ms>"`. Takes `periodSeconds` or, as the JSON and
 * CLI world spells it, `period_seconds` (optionsFromSnakeCase passes the object through).
 */
function startRate(value: unknown): string {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw invalid("start_rate must be an object with limit and period_seconds");
  const raw = { ...(value as Record<string, unknown>) };
  if ("periodSeconds" in raw) {
    if ("period_seconds" in raw)
      throw invalid("start_rate gives period_seconds twice (periodSeconds and period_seconds)");
    raw.period_seconds = raw.periodSeconds;
    delete raw.periodSeconds;
  }
  const [unknown] = unknownKeyProblems(raw, START_RATE_KEYS, "start_rate");
  if (unknown !== undefined) throw invalid(unknown);
  const { limit, period_seconds: period } = raw;
  if (limit === undefined || limit === null) throw invalid("start_rate.limit is required");
  if (period === undefined || period === null)
    throw invalid("start_rate.period_seconds is required");
  if (
    typeof limit !== "number" ||
    !Number.isInteger(limit) ||
    limit < 1 ||
    limit > MAX_START_RATE_LIMIT
  )
    throw invalid(`start_rate.limit must be an integer from 1 to ${MAX_START_RATE_LIMIT}`);
  // Rounded half up to whole ms (as Rust's f64::round and Python's floor(x + 0.5) for x > 0).
  const ms = typeof period === "number" ? Math.max(1, Math.round(period * 1000)) : NaN;
  if (typeof period !== "number" || !(period > 0) || !(ms <= MAX_START_RATE_PERIOD_MS))
    throw invalid(
      `start_rate.period_seconds must be a number > 0 and at most ${MAX_START_RATE_PERIOD_MS / 1000}`,
    );
  return `${limit}/${ms}`;
}

/** Whether any flow-control option is given (undefined counts as not given). */
export function hasFlowControl(o: FlowControlOptions): boolean {
  return (
    o.concurrencyKey !== undefined ||
    o.concurrencyLimit !== undefined ||
    o.startRate !== undefined ||
    o.limit !== undefined ||
    o.orderingKey !== undefined ||
    o.requires !== undefined
  );
}

/**
 * The flow-control options as the hash fields they write (`concurrency_key`,
 * `concurrency_limit`, `start_rate`, `limit_name`, `ordering_key`), each only when given.
 * Checked in that order; a cap or rate needs a key to apply to (`concurrency_key` or `limit`).
 * Throws `invalid_argument` naming the option.
 */
export function flowControlFields(o: FlowControlOptions): Record<string, string> {
  const fields: Record<string, string> = {};
  if (o.concurrencyKey !== undefined)
    fields.concurrency_key = key(o.concurrencyKey, "concurrency_key");
  if (o.concurrencyLimit !== undefined)
    fields.concurrency_limit = String(concurrencyLimit(o.concurrencyLimit));
  if (o.startRate !== undefined) fields.start_rate = startRate(o.startRate);
  if (o.limit !== undefined) fields.limit_name = limitName(o.limit);
  if (o.orderingKey !== undefined) fields.ordering_key = key(o.orderingKey, "ordering_key");
  if (o.requires !== undefined) {
    const problem = tagsProblem(o.requires, "requires", MAX_REQUIRED_TAGS);
    if (problem) throw invalid(problem);
    // stored sorted and deduplicated: the one spelling the claim's needs-sets are keyed by
    if (o.requires.length > 0) fields.requires = JSON.stringify(normalizeTags(o.requires));
  }
  const keyed = fields.concurrency_key !== undefined || fields.limit_name !== undefined;
  if (!keyed && fields.concurrency_limit !== undefined)
    throw invalid("concurrency_limit needs concurrency_key or limit");
  if (!keyed && fields.start_rate !== undefined)
    throw invalid("start_rate needs concurrency_key or limit");
  return fields;
}
