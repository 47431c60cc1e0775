import type { Redis } from "ioredis";
import type { AdapterClient } from "./adapter-client.js";
import { checkE2eRunnerSpan, checkJobSpan } from "./e2e-spans.js";
import { matchValue } from "./matching.js";
import type { OtlpReceiver } from "./otlp-receiver.js";
import type { Failure } from "./runner-script.js";
import { checkOutputStream } from "./e2e-output.js";
import { checkRunTimes } from "./e2e-run-times.js";

type Step = Record<string, unknown>;

/** A job a case knows: enqueued by a step (alias) or named by id in an expectation. */
export interface KnownJob {
  id: string;
  /** The enqueue step (function_name, options), or `{}` for a job the case did not enqueue. */
  step: Step;
}

/** What an expectation check needs from its cell. */
export interface CheckContext {
  adapter: AdapterClient;
  redis: Redis;
  receiver: OtlpReceiver;
  jobs: Map<string, KnownJob>;
  /** Waits for the job to finish through the producer; a string says why it did not. */
  waitDone: (jobId: string) => Promise<unknown>;
}

/** How long `no_runner_span` waits for a span that must not come. */
const NO_SPAN_WAIT_MS = 1500;

/** How often `within_ms` looks again. */
const POLL_MS = 50;

/**
 * Replaces `{alias}` placeholders in every string of a value with the job ids of enqueued
 * aliases (`death:{j}:1:0`); unknown names stay as they are.
 */
export function fillJobIds(value: unknown, jobs: Map<string, KnownJob>): unknown {
  if (typeof value === "string")
    return value.replace(/\{([A-Za-z0-9_#-]+)\}/g, (m, n: string) => jobs.get(n)?.id ?? m);
  if (Array.isArray(value)) return value.map((v) => fillJobIds(v, jobs));
  if (typeof value === "object" && value !== null)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fillJobIds(v, jobs)]));
  return value;
}

/** The full Redis key of a DLQ named bare (`default`) or already prefixed. */
function dlqKey(name: unknown): string {
  const bare = typeof name === "string" && name !== "" ? name : "default";
  return bare.startsWith("rrq:dlq:") ? bare : `rrq:dlq:${bare}`;
}

/** Every key matching a glob, by SCAN (the case's own database only). */
async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  return keys;
}

/**
 * Checks one e2e expectation (conformance/README.md "End-to-end and producer cases"):
 * `{job | job_id, wait?, within_ms?, exists?, status, hash, in_dlq, runner_span, no_runner_span,
 * job_span, output}`, `{dlq_length, dlq?}` or `{keys, count}`; `{alias}` placeholders in any string of
 * it are replaced by job ids first.
 */
export async function checkExpectation(
  caseId: string,
  expectation: Step,
  ctx: CheckContext,
): Promise<Failure[]> {
  const e = fillJobIds(expectation, ctx.jobs) as Step;
  // `within_ms`: a state the job passes through (ACTIVE), polled until it shows or time is up.
  if (typeof e.within_ms === "number") {
    const deadline = Date.now() + e.within_ms;
    for (;;) {
      const failures = await checkOnce(caseId, { ...e, wait: false }, ctx);
      if (!failures.length || Date.now() >= deadline) return failures;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  return checkOnce(caseId, e, ctx);
}

async function checkOnce(caseId: string, e: Step, ctx: CheckContext): Promise<Failure[]> {
  const rule = (fallback: string) => (typeof e.rule === "string" ? e.rule : fallback);
  if (e.running_at_once !== undefined || e.start_order !== undefined || e.share !== undefined)
    return checkRunTimes(caseId, e, ctx);
  if (typeof e.dlq_length === "number") {
    const key = dlqKey(e.dlq);
    const length = await ctx.redis.llen(key);
    return length === e.dlq_length
      ? []
      : [
          {
            rule: rule("dead-letter queue length"),
            message: `${key} holds ${length}, expected ${e.dlq_length}`,
          },
        ];
  }
  if (typeof e.keys === "string") {
    const pattern = e.keys;
    const found = await scanKeys(ctx.redis, pattern);
    return found.length === e.count
      ? []
      : [
          {
            rule: rule("keys written"),
            message: `${found.length} keys match ${pattern} (${found.slice(0, 5).join(", ")}), expected ${String(e.count)}`,
          },
        ];
  }
  const names =
    typeof e.job_id === "string"
      ? [e.job_id]
      : String(e.job).endsWith("#*")
        ? [...ctx.jobs.keys()].filter((k) => k.startsWith(String(e.job).slice(0, -1)))
        : [String(e.job)];
  const failures: Failure[] = [];
  for (const name of names) {
    const job: KnownJob | undefined =
      typeof e.job_id === "string" ? { id: name, step: {} } : ctx.jobs.get(name);
    if (!job) throw new Error(`${caseId} expects job '${name}', which it never enqueued`);
    failures.push(...(await checkJob(name, job, e, ctx, rule)));
  }
  return failures;
}

async function checkJob(
  name: string,
  job: KnownJob,
  e: Step,
  ctx: CheckContext,
  rule: (fallback: string) => string,
): Promise<Failure[]> {
  if (e.exists === false) {
    const exists = await ctx.redis.exists(`rrq:job:${job.id}`);
    return exists
      ? [
          {
            rule: rule("the job hash is gone"),
            message: `job ${name}: rrq:job:${job.id} still exists`,
          },
        ]
      : [];
  }
  // `wait: false` looks at the job as it is now (a job that must not have run yet).
  if (e.wait !== false) {
    const done = await ctx.waitDone(job.id);
    if (typeof done === "string")
      return [{ rule: rule("the job finishes"), message: `job ${name}: ${done}` }];
  }
  const failures: Failure[] = [];
  const status = await ctx.adapter.call("get_job_status", { job_id: job.id });
  if (!status.ok)
    failures.push({
      rule: "get_job_status answers",
      message: `${status.error.code}: ${status.error.message}`,
    });
  else if (e.status !== undefined)
    for (const m of matchValue(status.result, e.status))
      failures.push({
        rule: rule("the job ends as the spec says"),
        message: `job ${name} status ${m.path}: ${m.message}`,
      });
  if (e.hash !== undefined) {
    const hash = await ctx.redis.hgetall(`rrq:job:${job.id}`);
    for (const m of matchValue(hash, e.hash))
      failures.push({
        rule: rule("the job hash as RRQ writes it"),
        message: `job ${name} hash ${m.path}: ${m.message}`,
      });
  }
  if (typeof e.in_dlq === "boolean") {
    const key = dlqKey(e.dlq);
    const dlq = await ctx.redis.lrange(key, 0, -1);
    if (dlq.includes(job.id) !== e.in_dlq)
      failures.push({
        rule: rule("dead-letter queue membership"),
        message: `job ${name} is ${e.in_dlq ? "not " : ""}in ${key}`,
      });
  }
  if (e.runner_span)
    failures.push(
      ...(await checkE2eRunnerSpan(ctx.receiver, job.id, job.step, e.runner_span as Step)),
    );
  if (e.no_runner_span === true) {
    const span = await ctx.receiver.waitFor(
      (s) => s.name === "rrq.runner" && s.attributes["rrq.job_id"]?.value === job.id,
      NO_SPAN_WAIT_MS,
    );
    if (span)
      failures.push({
        rule: rule("the job never reaches a runner"),
        message: `job ${name}: a runner ran attempt ${String(span.attributes["rrq.attempt"]?.value)}`,
      });
  }
  if (e.job_span)
    failures.push(...(await checkJobSpan(ctx.receiver, job.id, job.step, e.job_span as Step)));
  if (typeof e.output === "object" && e.output !== null)
    failures.push(...(await checkOutputStream(ctx.redis, name, job.id, e.output as Step, rule)));
  return failures;
}
