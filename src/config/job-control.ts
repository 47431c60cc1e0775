import {
  checkRetryPolicy,
  DEFAULT_MAX_SNOOZES,
  RETRY_POLICY_KEYS,
  type RetryPolicySpec,
} from "../policy/index.js";
import { queueKey } from "../store/keys.js";
import { FUNCTION_FLOW_KEYS } from "./flow-control.js";
import { field, int, isTable, type Problems, str, strings, unknownKeyProblems } from "./values.js";

/** One `[[rrq.death_handlers]]` table, resolved. */
export interface DeathHandlerConfig {
  /** The function enqueued for each matching death. */
  readonly function: string;
  /** Full queue key the handler job goes to (default: the default queue). */
  readonly queue: string;
  /** Only deaths of these function names (null: every function). */
  readonly functions: readonly string[] | null;
  /** Only deaths of jobs from these queues, as full queue keys (null: every queue). */
  readonly queues: readonly string[] | null;
}

/** The job-control part of {@link ResolvedConfig} (README "Job control"). */
export interface JobControlConfig {
  /** `[rrq.functions."<name>"]` retry policies by function name. */
  readonly functionPolicies: ReadonlyMap<string, RetryPolicySpec>;
  /** How often a job may snooze before it goes to the DLQ (default 100). */
  readonly maxSnoozes: number;
  /** Longest a DLQ list may grow; older entries are trimmed (0: no cap). */
  readonly dlqMaxJobs: number;
  /** DLQ entries older than this many seconds are trimmed (0: no cap). */
  readonly dlqMaxAgeSeconds: number;
  /** `[[rrq.death_handlers]]`, in file order (handler i gets job ids ending in `:<i>`). */
  readonly deathHandlers: readonly DeathHandlerConfig[];
}

/** The top-level keys this file reads. */
export const JOB_CONTROL_KEYS = [
  "functions",
  "max_snoozes",
  "dlq_max_jobs",
  "dlq_max_age_seconds",
  "death_handlers",
] as const;

/** Every key of an `[rrq.functions."<name>"]` table: its retry policy and its flow control. */
const FUNCTION_TABLE_KEYS: readonly string[] = [...RETRY_POLICY_KEYS, ...FUNCTION_FLOW_KEYS];

const DEATH_HANDLER_KEYS = ["function", "queue", "functions", "queues"] as const;

function readFunctions(raw: unknown, problems: Problems): Map<string, RetryPolicySpec> {
  const policies = new Map<string, RetryPolicySpec>();
  if (raw === undefined) return policies;
  if (!isTable(raw)) {
    problems.add(`functions must be a table of tables ([rrq.functions."<name>"])`);
    return policies;
  }
  for (const [name, table] of Object.entries(raw)) {
    const where = `functions.${name}`;
    if (!isTable(table)) {
      problems.add(...(checkRetryPolicy(table, where).problems ?? []));
      continue;
    }
    // the table also holds flow keys (read by flow-control.ts): unknown keys are judged against
    // both sets, and the retry-policy reader sees its own keys only
    problems.add(...unknownKeyProblems(table, FUNCTION_TABLE_KEYS, where));
    const known = Object.fromEntries(
      Object.entries(table).filter(([key]) =>
        (RETRY_POLICY_KEYS as readonly string[]).includes(key),
      ),
    );
    if (Object.keys(known).length === 0) continue;
    const check = checkRetryPolicy(known, where);
    if (check.ok) policies.set(name, check.spec);
    else problems.add(...check.problems);
  }
  return policies;
}

function readDeathHandlers(
  raw: unknown,
  defaultQueue: string,
  problems: Problems,
): DeathHandlerConfig[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    problems.add("death_handlers must be an array of tables ([[rrq.death_handlers]])");
    return [];
  }
  const handlers: DeathHandlerConfig[] = [];
  raw.forEach((entry, i) => {
    const where = `death_handlers[${i}]`;
    if (!isTable(entry)) {
      problems.add(`${where} must be a table`);
      return;
    }
    const before = problems.messages.length;
    problems.add(...unknownKeyProblems(entry, DEATH_HANDLER_KEYS, where));
    if (entry.function === undefined) problems.add(`${where}.function is required`);
    const f = <T>(key: string, read: (v: unknown, k: string) => T, fallback: T) =>
      problems.attempt(() => field(entry, key, where, read, fallback), fallback);
    const fn = f("function", str(), "");
    const queue = f<string | undefined>("queue", str(), undefined);
    const functions = f<string[] | null>("functions", strings(), null);
    const queues = f<string[] | null>("queues", strings(), null);
    if (problems.messages.length !== before) return;
    handlers.push(
      Object.freeze({
        function: fn,
        queue: queue === undefined ? defaultQueue : queueKey(queue),
        functions: functions && Object.freeze(functions),
        queues: queues && Object.freeze(queues.map(queueKey)),
      }),
    );
  });
  return handlers;
}

/**
 * Reads the job-control keys of a `[rrq]` table. Problems are collected in `problems` (each
 * names its key path; unknown keys of a function or death-handler table get a did-you-mean),
 * so one run reports every mistake with the rest of the configuration's.
 */
export function readJobControl(
  raw: Record<string, unknown>,
  defaultQueue: string,
  problems: Problems,
): JobControlConfig {
  const f = <T>(key: string, read: (v: unknown, k: string) => T, fallback: T) =>
    problems.attempt(() => field(raw, key, "", read, fallback), fallback);
  return Object.freeze({
    functionPolicies: readFunctions(raw.functions, problems),
    maxSnoozes: f("max_snoozes", int(0), DEFAULT_MAX_SNOOZES),
    dlqMaxJobs: f("dlq_max_jobs", int(0), 0),
    dlqMaxAgeSeconds: f("dlq_max_age_seconds", int(0), 0),
    deathHandlers: Object.freeze(readDeathHandlers(raw.death_handlers, defaultQueue, problems)),
  });
}
