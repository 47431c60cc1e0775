import { queueKey } from "../store/keys.js";
import {
  bool,
  field,
  int,
  isTable,
  num,
  oneOf,
  Problems,
  unknownKeyProblems,
  type Reader,
} from "./values.js";

/** A circuit breaker's settings: `{ failures = 5, cooldown_seconds = 30 }`. */
export interface BreakerConfig {
  /** Consecutive failures that open the breaker (≥ 1). */
  readonly failures: number;
  /** How long it stays open before one probe job may run. */
  readonly cooldownSeconds: number;
}

/**
 * A concurrency cap and/or a smooth start rate: a `[rrq.limits.<name>]` table, or the flow
 * part of an `[rrq.functions."<name>"]` table.
 */
export interface FlowLimit {
  /** Jobs of the key running at once (1..100000). */
  readonly concurrency: number | undefined;
  /** Starts per `ratePeriodSeconds` (1..1e6), spread evenly (a leaky bucket, no burst). */
  readonly rateLimit: number | undefined;
  /** The rate's period (default 1 s); stored in the claim's flow config as ms, at least 1. */
  readonly ratePeriodSeconds: number;
}

/** The flow part of an `[rrq.functions."<name>"]` table. */
export interface FunctionFlow extends FlowLimit {
  readonly breaker: BreakerConfig | undefined;
}

/** One queue of `[rrq] queues` or `--queue name[:weight]`. */
export interface QueueSpec {
  /** Full queue key. */
  readonly queue: string;
  /** The weighted strategy's weight; undefined when none was given. */
  readonly weight: number | undefined;
}

/** The flow-control part of {@link ResolvedConfig} (README "Flow control"). */
export interface FlowControlConfig {
  /** `[rrq.limits.<name>]` by name (what a job's `limit` option names). */
  readonly limits: ReadonlyMap<string, FlowLimit>;
  /** Flow keys of `[rrq.functions."<name>"]` tables, by function name (tables with some). */
  readonly functionFlow: ReadonlyMap<string, FunctionFlow>;
  /** `[rrq.runner_breakers.<runner>]` by runner name. */
  readonly runnerBreakers: ReadonlyMap<string, BreakerConfig>;
  /** `[rrq] queues`: the queues a worker serves when no `--queue` is given (empty: the default rule). */
  readonly queueSpecs: readonly QueueSpec[];
  /** `strict_queues`: claim in list order, a queue only when the ones before it are drained. */
  readonly strictQueues: boolean;
  /** `session_on_dead`: a session job that dies lets the next one run ("skip") or blocks it. */
  readonly sessionOnDead: "skip" | "block";
  /** `flow_sweep_interval_seconds`: how often one orchestrator sweeps the parked jobs. */
  readonly flowSweepIntervalSeconds: number;
}

/** The top-level keys this file reads. */
export const FLOW_CONTROL_KEYS = [
  "limits",
  "runner_breakers",
  "queues",
  "strict_queues",
  "session_on_dead",
  "flow_sweep_interval_seconds",
] as const;

/** The keys of an `[rrq.functions."<name>"]` table that are flow control, not retry policy. */
export const FUNCTION_FLOW_KEYS = [
  "concurrency",
  "rate_limit",
  "rate_period_seconds",
  "breaker",
] as const;

const LIMIT_KEYS = ["concurrency", "rate_limit", "rate_period_seconds"] as const;
const BREAKER_KEYS = ["failures", "cooldown_seconds"] as const;
/** A limit name as the producers accept it (`limit` option). */
const LIMIT_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
/** Upper bound of a queue weight: more only makes the smooth rotation longer. */
export const MAX_QUEUE_WEIGHT = 1000;
const MAX_TIMER_SECONDS = 2147483;

/**
 * Splits an `[rrq.functions."<name>"]` table into its retry-policy keys and its flow keys, so
 * each part is checked by its own reader (the job's `retry` option, checked alone, still
 * rejects the flow keys).
 */
export function splitFunctionTable(raw: Record<string, unknown>): {
  retry: Record<string, unknown>;
  flow: Record<string, unknown>;
} {
  const retry: Record<string, unknown> = {};
  const flow: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw))
    ((FUNCTION_FLOW_KEYS as readonly string[]).includes(key) ? flow : retry)[key] = value;
  return { retry, flow };
}

const reader =
  (p: Problems, raw: Record<string, unknown>, where: string) =>
  <T>(key: string, read: Reader<T>, fallback: T): T =>
    p.attempt(() => field(raw, key, where, read, fallback), fallback);

function readBreaker(raw: unknown, where: string, problems: Problems): BreakerConfig | undefined {
  if (!isTable(raw)) {
    problems.add(`${where} must be a table like { failures = 5, cooldown_seconds = 30 }`);
    return undefined;
  }
  const before = problems.messages.length;
  problems.add(...unknownKeyProblems(raw, BREAKER_KEYS, where));
  const f = reader(problems, raw, where);
  const breaker = Object.freeze({
    failures: f("failures", int(1, 1_000_000), 5),
    cooldownSeconds: f("cooldown_seconds", num(0, 86400, true), 30),
  });
  return problems.messages.length === before ? breaker : undefined;
}

/** The cap and rate keys of a limit or function table (`where` names the table). */
function readLimitKeys(raw: Record<string, unknown>, where: string, problems: Problems): FlowLimit {
  const f = reader(problems, raw, where);
  const limit = Object.freeze({
    concurrency: f<number | undefined>("concurrency", int(1, 100_000), undefined),
    rateLimit: f<number | undefined>("rate_limit", int(1, 1_000_000), undefined),
    ratePeriodSeconds: f("rate_period_seconds", num(0, 86400, true), 1),
  });
  if (raw.rate_period_seconds !== undefined && raw.rate_limit === undefined)
    problems.add(`${where}.rate_period_seconds needs ${where}.rate_limit`);
  return limit;
}

function readLimits(raw: unknown, problems: Problems): Map<string, FlowLimit> {
  const limits = new Map<string, FlowLimit>();
  if (raw === undefined) return limits;
  if (!isTable(raw)) {
    problems.add("limits must be a table of tables ([rrq.limits.<name>])");
    return limits;
  }
  for (const [name, table] of Object.entries(raw)) {
    const where = `limits.${name}`;
    if (!LIMIT_NAME.test(name)) {
      problems.add(`${where}: a limit name is 1 to 128 of A-Z a-z 0-9 _ . : - (got "${name}")`);
      continue;
    }
    if (!isTable(table)) {
      problems.add(`${where} must be a table, got ${JSON.stringify(table)}`);
      continue;
    }
    const before = problems.messages.length;
    problems.add(...unknownKeyProblems(table, LIMIT_KEYS, where));
    const limit = readLimitKeys(table, where, problems);
    if (table.concurrency === undefined && table.rate_limit === undefined)
      problems.add(`${where} needs concurrency or rate_limit`);
    if (problems.messages.length === before) limits.set(name, limit);
  }
  return limits;
}

/**
 * The flow parts of the `[rrq.functions."<name>"]` tables (unknown keys and the retry keys are
 * checked by job-control.ts, which reads the same tables).
 */
function readFunctionFlow(raw: unknown, problems: Problems): Map<string, FunctionFlow> {
  const flows = new Map<string, FunctionFlow>();
  if (!isTable(raw)) return flows;
  for (const [name, table] of Object.entries(raw)) {
    if (!isTable(table)) continue;
    const { flow } = splitFunctionTable(table);
    if (Object.keys(flow).length === 0) continue;
    const where = `functions.${name}`;
    const before = problems.messages.length;
    const limit = readLimitKeys(flow, where, problems);
    const breaker =
      flow.breaker === undefined
        ? undefined
        : readBreaker(flow.breaker, `${where}.breaker`, problems);
    if (problems.messages.length === before) flows.set(name, Object.freeze({ ...limit, breaker }));
  }
  return flows;
}

function readRunnerBreakers(
  raw: unknown,
  runners: readonly string[],
  problems: Problems,
): Map<string, BreakerConfig> {
  const breakers = new Map<string, BreakerConfig>();
  if (raw === undefined) return breakers;
  if (!isTable(raw)) {
    problems.add("runner_breakers must be a table of tables ([rrq.runner_breakers.<runner>])");
    return breakers;
  }
  for (const [name, table] of Object.entries(raw)) {
    const where = `runner_breakers.${name}`;
    if (!runners.includes(name)) {
      const known = runners.length ? runners.join(", ") : "none";
      problems.add(`${where}: no runner '${name}' is configured (configured runners: ${known})`);
      continue;
    }
    const breaker = readBreaker(table, where, problems);
    if (breaker) breakers.set(name, breaker);
  }
  return breakers;
}

/**
 * Parses `name` or `name:weight` (the weight is what follows the last `:` when it looks like a
 * number, so `rrq:queue:critical` is a name and `critical:5` a name with weight 5). Throws a
 * message naming `where` and the value.
 */
export function parseQueueSpec(text: string, where: string): QueueSpec {
  const colon = text.lastIndexOf(":");
  const suffix = colon < 0 ? "" : text.slice(colon + 1);
  if (colon < 0 || !/^[+-]?[\d.]+$/.test(suffix)) {
    if (text.trim() === "") throw new Error(`${where} must be a queue name, got "${text}"`);
    return { queue: queueKey(text), weight: undefined };
  }
  const name = text.slice(0, colon);
  const weight = Number(suffix);
  if (!Number.isInteger(weight) || weight < 1 || weight > MAX_QUEUE_WEIGHT)
    throw new Error(
      `${where}: the weight of queue '${name}' must be an integer from 1 to ${MAX_QUEUE_WEIGHT}, got "${suffix}"`,
    );
  if (name.trim() === "") throw new Error(`${where} must be a queue name, got "${text}"`);
  return { queue: queueKey(name), weight };
}

/**
 * Parses a list of `name[:weight]` (`[rrq] queues` or the `--queue` flags); every problem is
 * added to `problems` (a queue listed twice with different weights included).
 */
export function parseQueueSpecs(
  texts: readonly string[],
  where: (i: number) => string,
  problems: Problems,
): QueueSpec[] {
  const specs: QueueSpec[] = [];
  texts.forEach((text, i) => {
    try {
      const spec = parseQueueSpec(text, where(i));
      const twin = specs.find((s) => s.queue === spec.queue);
      // the same queue twice is harmless (served once); with two weights it is a mistake
      if (twin !== undefined && twin.weight !== spec.weight)
        problems.add(`${where(i)}: queue '${text}' is listed twice, with different weights`);
      else if (twin === undefined) specs.push(Object.freeze(spec));
    } catch (error) {
      problems.add((error as Error).message);
    }
  });
  return specs;
}

function readQueues(raw: unknown, problems: Problems): QueueSpec[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || !raw.every((q) => typeof q === "string")) {
    problems.add(
      `queues must be an array of "name" or "name:weight" strings, got ${JSON.stringify(raw)}`,
    );
    return [];
  }
  return parseQueueSpecs(raw, (i) => `queues[${i}]`, problems);
}

/**
 * Reads the flow-control keys of a `[rrq]` table (README "Flow control"): limits, the flow keys
 * of the function tables, runner breakers, queue weights and order, and the sweeper's pace.
 * Problems are collected in `problems`, each naming its key path.
 */
export function readFlowControl(
  raw: Record<string, unknown>,
  runners: readonly string[],
  problems: Problems,
): FlowControlConfig {
  const f = reader(problems, raw, "");
  const queueSpecs = readQueues(raw.queues, problems);
  const strictQueues = f("strict_queues", bool, false);
  if (strictQueues && queueSpecs.some((s) => s.weight !== undefined))
    problems.add(
      "strict_queues claims in list order and takes no weights: drop the :weight suffixes of queues, or strict_queues",
    );
  return Object.freeze({
    limits: readLimits(raw.limits, problems),
    functionFlow: readFunctionFlow(raw.functions, problems),
    runnerBreakers: readRunnerBreakers(raw.runner_breakers, runners, problems),
    queueSpecs: Object.freeze(queueSpecs),
    strictQueues,
    sessionOnDead: f<"skip" | "block">("session_on_dead", oneOf("skip", "block"), "skip"),
    flowSweepIntervalSeconds: f("flow_sweep_interval_seconds", num(0.05, MAX_TIMER_SECONDS), 1),
  });
}

/**
 * The flow settings of a function: its own table, else (for `runner#name`) the table of its
 * handler part — the lookup the retry policies use.
 */
export function functionFlowOf(
  config: Pick<FlowControlConfig, "functionFlow">,
  functionName: string,
): FunctionFlow | undefined {
  const own = config.functionFlow.get(functionName);
  if (own !== undefined || config.functionFlow.size === 0) return own;
  const hash = functionName.indexOf("#");
  return hash >= 0 ? config.functionFlow.get(functionName.slice(hash + 1)) : undefined;
}
