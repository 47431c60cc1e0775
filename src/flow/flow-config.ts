import type { ResolvedConfig } from "../config/config.js";
import { functionFlowOf, type BreakerConfig, type FlowLimit } from "../config/flow-control.js";
import type { BreakerSpec } from "../store/flow-store.js";
import { resolveRunnerName, splitRunnerName } from "../orchestrator/routing.js";

/** A cap and rate as the claim script reads them: `{"c": cap, "r": [limit, period_ms]}`. */
interface WireLimit {
  c?: number;
  r?: [number, number];
}

/** The claim script's flow config (claim-ready-4.lua ARGV[8]). */
export interface WireFlowConfig {
  /** `[rrq.limits.<name>]` by name. */
  l: Record<string, WireLimit>;
  /** Function caps and rates by the job's function_name. */
  f: Record<string, WireLimit>;
  /** Breaker scopes that gate claims (`function:<fn>`, `runner:<name>`). */
  b: Record<string, 1>;
  /** The runner of this queue's jobs without a `runner#` prefix. */
  qr: string;
  /**
   * Routing by capability (issue 23): the tag sets of this worker's runner processes, by runner
   * name (each set sorted). A job whose `requires` no set of its runner covers is parked.
   */
  t?: Record<string, string[][]>;
}

/** The capability tag sets of a worker's runner processes, by runner name. */
export type RunnerTagSets = Readonly<Record<string, readonly (readonly string[])[]>>;

/** A rate's period in whole ms, at least 1 (what the producers store in `start_rate`). */
export const periodMs = (seconds: number): number => Math.max(1, Math.round(seconds * 1000));

function wireLimit(limit: FlowLimit): WireLimit | undefined {
  const wire: WireLimit = {};
  if (limit.concurrency !== undefined) wire.c = limit.concurrency;
  if (limit.rateLimit !== undefined) wire.r = [limit.rateLimit, periodMs(limit.ratePeriodSeconds)];
  return wire.c === undefined && wire.r === undefined ? undefined : wire;
}

/**
 * The names a function table applies to, as the claim script compares them with a job's
 * function_name: the name itself and, for a name without a runner prefix, `<runner>#<name>`
 * for every configured runner not having a table of its own (the lookup of
 * {@link functionFlowOf}, spelled out because the script matches names exactly).
 */
function functionNames(config: ResolvedConfig, name: string): string[] {
  if (name.includes("#")) return [name];
  const prefixed = Object.keys(config.runners)
    .map((runner) => `${runner}#${name}`)
    .filter((full) => !config.functionFlow.has(full));
  return [name, ...prefixed];
}

/**
 * Builds the flow config the claim script gets for `queue` (README "Flow control"), as JSON;
 * "" when nothing is configured and no `tagSets` are given (jobs' own concurrency_key,
 * start_rate and ordering_key work without it). With `tagSets` (a worker always passes them,
 * empty or not) the JSON always has `qr` and `t`, so jobs with `requires` are routed (issue 23).
 * Built per queue at start and again when the tag sets change.
 */
export function buildFlowConfig(
  config: ResolvedConfig,
  queue: string,
  tagSets?: RunnerTagSets,
): string {
  const { limits, functionFlow, runnerBreakers } = config;
  const qr = resolveRunnerName(config, { runner: undefined, handler: "" }, queue);
  if (limits.size === 0 && functionFlow.size === 0 && runnerBreakers.size === 0) {
    if (tagSets === undefined) return "";
    return JSON.stringify({ qr, t: wireTags(tagSets) });
  }
  const wire: WireFlowConfig = { l: {}, f: {}, b: {}, qr };
  if (tagSets !== undefined) wire.t = wireTags(tagSets);
  for (const [name, limit] of limits) {
    const w = wireLimit(limit);
    if (w) wire.l[name] = w;
  }
  for (const [name, flow] of functionFlow)
    for (const fn of functionNames(config, name)) {
      const w = wireLimit(flow);
      if (w) wire.f[fn] = w;
      if (flow.breaker) wire.b[`function:${fn}`] = 1;
    }
  for (const runner of runnerBreakers.keys()) wire.b[`runner:${runner}`] = 1;
  return JSON.stringify(wire);
}

/**
 * `t` as JSON-able arrays. cjson decodes an empty JSON object or array alike, so a runner
 * without tag sets is simply left out.
 */
function wireTags(tagSets: RunnerTagSets): Record<string, string[][]> {
  const t: Record<string, string[][]> = {};
  for (const [runner, sets] of Object.entries(tagSets))
    if (sets.length > 0) t[runner] = sets.map((set) => [...set]);
  return t;
}

/** A breaker's settings as the store takes them. */
export const breakerSpec = (breaker: BreakerConfig): BreakerSpec => ({
  failures: breaker.failures,
  cooldownMs: Math.round(breaker.cooldownSeconds * 1000),
});

/** One breaker a job's outcome is recorded on. */
export interface BreakerScope {
  scope: string;
  spec: BreakerSpec;
}

/**
 * The breakers a job of `functionName` on `queue` counts on: its function's (scope
 * `function:<function_name>`, as the claim script names it) and its runner's. Empty for most
 * jobs; cached per function and queue, as every finished job asks.
 */
export class BreakerScopes {
  private readonly cache = new Map<string, readonly BreakerScope[]>();
  private readonly none: readonly BreakerScope[] = Object.freeze([]);

  constructor(private readonly config: ResolvedConfig) {}

  /** True when no breaker is configured at all (nothing to record). */
  get empty(): boolean {
    return (
      this.config.runnerBreakers.size === 0 &&
      ![...this.config.functionFlow.values()].some((flow) => flow.breaker)
    );
  }

  /** The scopes of one job. */
  of(functionName: string, queue: string): readonly BreakerScope[] {
    const key = `${queue}\n${functionName}`;
    let scopes = this.cache.get(key);
    if (scopes === undefined) {
      const found: BreakerScope[] = [];
      const fn = functionFlowOf(this.config, functionName);
      if (fn?.breaker)
        found.push({ scope: `function:${functionName}`, spec: breakerSpec(fn.breaker) });
      const runner = resolveRunnerName(this.config, splitRunnerName(functionName), queue);
      const rb = this.config.runnerBreakers.get(runner);
      if (rb) found.push({ scope: `runner:${runner}`, spec: breakerSpec(rb) });
      scopes = found.length === 0 ? this.none : Object.freeze(found);
      // function names come from job hashes anyone can write: bound the cache
      if (this.cache.size >= 10_000) this.cache.clear();
      this.cache.set(key, scopes);
    }
    return scopes;
  }
}
