import type { ResolvedConfig } from "../config/config.js";
import { bareQueueName, queueKey } from "../store/keys.js";

/** A function name split on its first `#` (rrq-0.11-facts §2.5). */
export interface SplitName {
  /** The explicit runner, when the name had a non-empty `runner#` prefix. */
  runner: string | undefined;
  /** The handler name sent to the runner. */
  handler: string;
}

/** `a#b` → runner a, handler b; `#b` → handler b; `a#` → empty handler; `b` → handler b. */
export function splitRunnerName(functionName: string): SplitName {
  const hash = functionName.indexOf("#");
  if (hash < 0) return { runner: undefined, handler: functionName };
  const runner = functionName.slice(0, hash);
  return { runner: runner === "" ? undefined : runner, handler: functionName.slice(hash + 1) };
}

/** The route configured for a queue: tried as the full key, as given, then bare (RRQ's order). */
export function routedRunner(config: ResolvedConfig, queue: string): string | undefined {
  const routes = config.runnerRoutes;
  return routes[queueKey(queue)] ?? routes[queue] ?? routes[bareQueueName(queue)];
}

/** The runner for a job: its explicit prefix, else its queue's route, else the default runner. */
export function resolveRunnerName(config: ResolvedConfig, split: SplitName, queue: string): string {
  return split.runner ?? routedRunner(config, queue) ?? config.defaultRunnerName;
}

/**
 * The runners a worker must start for its queues: each queue's routed runner, plus the default
 * runner when some queue has no route (RRQ's determine_needed_runners).
 */
export function neededRunners(config: ResolvedConfig, queues: readonly string[]): string[] {
  const needed = new Set<string>();
  for (const queue of queues) needed.add(routedRunner(config, queue) ?? config.defaultRunnerName);
  return [...needed].sort();
}

/**
 * The queues a worker serves: the explicit list when one is given (`--queue`), else the default
 * queue and every queue `[rrq.routing]` sends to a runner configured here, as full keys,
 * deduplicated and sorted. RRQ's worker serves only the default queue then, so jobs enqueued to
 * a routed queue waited forever unless every worker was started with the right `--queue` flags.
 */
export function servedQueues(config: ResolvedConfig, explicit?: readonly string[]): string[] {
  const queues = explicit?.length
    ? explicit
    : [
        config.defaultQueueName,
        ...Object.entries(config.runnerRoutes)
          .filter(([, runner]) => config.runners[runner] !== undefined)
          .map(([queue]) => queue),
      ];
  return [...new Set(queues.map(queueKey))].sort();
}

/**
 * Routed queues (bare names) that `served` leaves out, with the runner each routes to and
 * whether that runner is configured here.
 */
export function unservedRoutes(
  config: ResolvedConfig,
  served: readonly string[],
): Array<{ queue: string; runner: string; configured: boolean }> {
  return Object.entries(config.runnerRoutes)
    .filter(([queue]) => !served.includes(queueKey(queue)))
    .map(([queue, runner]) => ({
      queue: bareQueueName(queue),
      runner,
      configured: config.runners[runner] !== undefined,
    }));
}
