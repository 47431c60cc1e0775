import { randomUUID } from "node:crypto";
import { NODE_RUNNER } from "../lib/paths.js";
import { sleep } from "../lib/redis.js";
import type { Rng } from "../lib/rng.js";
import { waitTerminal } from "../lib/invariants.js";
import type { Scenario } from "../lib/scenario.js";

const STATUSES = ["PENDING", "ACTIVE", "COMPLETED", "FAILED", "RETRYING", "CANCELLED"];
const QUARANTINE = "Failed to parse claimed job definition. Moved to DLQ.";

const isTimestamp = (v: string) => {
  const m = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?$/.exec(
    v.trim(),
  );
  return /^-?\d+(\.\d+)?$/.test(v.trim()) || (!!m && !Number.isNaN(Date.parse(`${m[1]}T${m[2]}Z`)));
};
const jsonObjectOrNull = (v: string | undefined, nullWords: string[]) => {
  if (v === undefined || nullWords.includes(v)) return true;
  try {
    const parsed = JSON.parse(v) as unknown;
    return parsed === null || (typeof parsed === "object" && !Array.isArray(parsed));
  } catch {
    return false;
  }
};

/**
 * The field that makes a job hash unusable, by the rules rrqkit documents (src/store/job.ts,
 * README "Malformed job hash"): status must be one of the six, enqueue_time a timestamp,
 * job_params empty / JSON null / a JSON object, trace_context and correlation_context empty /
 * "null" / a JSON object. Written independently of the parser it checks.
 */
export function malformedField(hash: Record<string, string>): string | undefined {
  // (status is not checked: the claim itself sets it to ACTIVE, as RRQ's does)
  if (hash.enqueue_time === undefined || !isTimestamp(hash.enqueue_time)) return "enqueue_time";
  if (!jsonObjectOrNull(hash.job_params, [""])) return "job_params";
  if (!jsonObjectOrNull(hash.trace_context, ["", "null"])) return "trace_context";
  if (!jsonObjectOrNull(hash.correlation_context, ["", "null"])) return "correlation_context";
  return undefined;
}

/** A catalogue of bad hashes (each a change to a good hash); undefined deletes the field. */
const CATALOGUE: Array<[string, Record<string, string | undefined>]> = [
  ["status missing (fine: the claim sets ACTIVE)", { status: undefined }],
  ["status bogus (fine)", { status: "DONE" }],
  ["enqueue_time missing", { enqueue_time: undefined }],
  ["enqueue_time words", { enqueue_time: "yesterday" }],
  ["enqueue_time impossible", { enqueue_time: "2026-13-45T99:99:99Z" }],
  ["job_params not JSON", { job_params: "{not json" }],
  ["job_params array", { job_params: "[1,2,3]" }],
  ["job_params number", { job_params: "42" }],
  ["job_params string", { job_params: '"text"' }],
  ["job_params invalid UTF-8", { job_params: "\udcff\udcfe" }],
  ["trace_context not JSON", { trace_context: "traceparent=00-abc" }],
  ["trace_context array", { trace_context: '["a"]' }],
  ["correlation_context number", { correlation_context: "7" }],
  ["only a status", { __only: "status" }],
  ["only an enqueue_time", { __only: "enqueue_time" }],
  ["job_params null (fine)", { job_params: "null" }],
  ["current_retries garbage (fine)", { current_retries: "many" }],
  ["current_retries garbage, handler fails", { current_retries: "many", function_name: "fail" }],
  ["current_retries fractional, handler fails", { current_retries: "1.5", function_name: "fail" }],
  ["max_retries garbage (fine)", { max_retries: "x" }],
  ["job_timeout_seconds zero", { job_timeout_seconds: "0" }],
  ["job_timeout_seconds negative", { job_timeout_seconds: "-5" }],
  ["job_timeout_seconds over 24.8 days", { job_timeout_seconds: "2200000" }],
  ["job_timeout_seconds 1e14", { job_timeout_seconds: "100000000000000" }],
  ["function_name missing", { function_name: undefined }],
  ["function_name unknown", { function_name: "no_such_handler" }],
  ["function_name unknown runner", { function_name: "ghost#echo" }],
  ["id field differs from the key", { id: "someone-else" }],
  ["result_ttl_seconds huge", { result_ttl_seconds: "1e300" }],
  ["result_ttl_seconds garbage (fine)", { result_ttl_seconds: "soon" }],
  ["dlq_name odd (fine)", { dlq_name: "chaos odd dlq" }],
];

/** What some catalogue entries must end as (beyond "terminal, exactly once"). */
const EXPECT: Record<
  string,
  { expect?: "COMPLETED" | "FAILED"; check?: (hash: Record<string, string>) => string | undefined }
> = {
  "job_timeout_seconds over 24.8 days": {
    expect: "COMPLETED",
    check: (h) =>
      h.status === "COMPLETED"
        ? undefined
        : `an echo job with job_timeout_seconds 2200000 (> 2^31 ms) must run, but ended ${h.status}: ${h.last_error} (setTimeout overflow: the timer fires after 1 ms)`,
  },
  "job_timeout_seconds 1e14": {
    check: (h) =>
      /recoveries/.test(h.last_error ?? "") || Number(h.recovery_count ?? 0) > 0
        ? `job_timeout_seconds 1e14 crashed its attempt (RangeError from new Date(deadline).toISOString() in buildRequest) and was recovered ${h.recovery_count} times: status ${h.status}, last_error ${JSON.stringify(h.last_error)}`
        : undefined,
  },
  "id field empty": {
    check: (h) =>
      /Runner transport error/.test(h.last_error ?? "") || Number(h.current_retries ?? 0) > 0
        ? `a hash with id "" is dispatched with job_id "" (invalid_frame for every runner: the connection is closed and every request on it fails): status ${h.status}, retries ${h.current_retries}, last_error ${JSON.stringify(h.last_error)}`
        : undefined,
  },
  "result_ttl_seconds huge": {
    check: (h) =>
      h.status === "COMPLETED" && h.result !== undefined ? undefined : `ended ${h.status}`,
  },
};

function randomValue(rng: Rng): string | undefined {
  return rng.pick<() => string | undefined>([
    () => undefined,
    () => "",
    () => String(rng.int(-5, 5)),
    () => String(rng.next() * 1e6),
    () => "1e308",
    () => "null",
    () => "{}",
    () => "[]",
    () => '{"a":1}',
    () => "{",
    () => "NaN",
    () => "x".repeat(rng.int(1, 5000)),
    () => String.fromCharCode(...Array.from({ length: rng.int(1, 20) }, () => rng.int(0, 0xd7ff))),
    () => new Date(rng.int(0, 4102444800000)).toISOString(),
    () => rng.pick(STATUSES),
    () => "echo",
  ])();
}

const MUTABLE = [
  // (not `id`: the catalogue covers it; a changed id renames the job for runners)
  "status",
  "enqueue_time",
  "job_params",
  "current_retries",
  "max_retries",
  "job_timeout_seconds",
  "trace_context",
  "correlation_context",
  "function_name",
  "result_ttl_seconds",
  "next_scheduled_run_time",
  "dlq_name",
];

/**
 * Job hashes that are broken in Redis (written there directly, as a buggy or foreign producer
 * or a manual edit would): a catalogue of known cases plus random field mutations of a good
 * hash. Every job must end terminal: the ones rrqkit documents as malformed in the DLQ with
 * the fixed message plus the reason naming the field (and no attempt counted); the others
 * however their handler and fields decide. A key of the wrong type in the queue must not stall
 * the queue. The orchestrator must never crash.
 */
export const malformedJobs: Scenario = {
  name: "malformed-jobs",
  description: "malformed job hashes planted in Redis (catalogue and random mutations)",
  async run(ctx) {
    await ctx.startDaemon(
      ctx.settings({
        default_runner_name: "node",
        lease_seconds: 1,
        lease_renew_interval_seconds: 0.25,
        max_job_recoveries: 2,
      }),
      { node: ctx.runner([process.execPath, NODE_RUNNER], { pool_size: 2, max_in_flight: 8 }) },
    );
    const redis = ctx.redis.client;
    // A good hash, exactly as the producer writes it (deferred so nobody runs it), as the base.
    const baseId = await ctx.producer.enqueue(
      "echo",
      { base: true },
      { deferBySeconds: 86_400, maxRetries: 2, jobTimeoutSeconds: 5 },
    );
    const base = await redis.hgetall(`rrq:job:${baseId}`);
    delete base.next_scheduled_run_time; // it was deferred; planted copies are due now
    await redis.del(`rrq:job:${baseId}`);
    await redis.zrem("rrq:queue:default", baseId);
    const plant = async (name: string, hash: Record<string, string>) => {
      const id = randomUUID();
      const full: Record<string, string> = { ...hash, ...(hash.id === base.id ? { id } : {}) };
      const bad = malformedField(full);
      const expectations = EXPECT[name];
      const pipeline = redis.pipeline();
      pipeline.hset(`rrq:job:${id}`, full);
      pipeline.zadd("rrq:queue:default", Date.now(), id);
      await pipeline.exec();
      ctx.jobs.set(id, {
        id,
        kind: name,
        maxRetries: 5, // the config default, used when the hash has no integer max_retries
        identity: false,
        execId: full.id && full.id !== id ? full.id : undefined,
        expect: bad ? "FAILED" : expectations?.expect,
        check: expectations?.check
          ? (final) => expectations.check!(final)
          : bad
            ? (final) => {
                const error = final.last_error ?? "";
                if (!error.startsWith(`${QUARANTINE} (`) || !error.includes(bad))
                  return `${name}: expected quarantine naming ${bad}, got last_error ${JSON.stringify(error)}`;
                if ((final.current_retries ?? "") !== (full.current_retries ?? ""))
                  return `${name}: quarantine changed current_retries`;
                return undefined;
              }
            : undefined,
      });
    };
    const withChanges = (changes: Record<string, string | undefined>) => {
      if (changes.__only === "status") return { status: "PENDING" };
      if (changes.__only === "enqueue_time") return { enqueue_time: base.enqueue_time! };
      const hash: Record<string, string> = { ...base };
      for (const [k, v] of Object.entries(changes)) {
        if (v === undefined) delete hash[k];
        else hash[k] = v;
      }
      return hash;
    };
    for (const [name, changes] of CATALOGUE) await plant(name, withChanges(changes));
    const randomCount = ctx.size(40, 800);
    for (let i = 0; i < randomCount; i++) {
      const changes: Record<string, string | undefined> = {};
      for (let n = ctx.rng.int(1, 3); n > 0; n--)
        changes[ctx.rng.pick(MUTABLE)] = randomValue(ctx.rng);
      // A short result TTL lets the finished hash expire before the check (it would count as
      // lost): such values are tested by the producer and worker suites, not here.
      const ttl = Number(changes.result_ttl_seconds);
      if (ttl > 0 && ttl < 3600) changes.result_ttl_seconds = "3600";
      // Runnable handlers only; a random name is handler_not_found, which is fine too.
      if (
        "function_name" in changes &&
        changes.function_name !== undefined &&
        changes.function_name !== "echo"
      )
        changes.function_name = ctx.rng.pick(["echo", "no_such", ""]);
      await plant(`random: ${Object.keys(changes).join(",")}`, withChanges(changes));
    }
    // Keys of the wrong type and queue entries without any hash.
    const wrongType = randomUUID();
    await redis.set(`rrq:job:${wrongType}`, "not a hash");
    const ghost = randomUUID();
    await redis.zadd("rrq:queue:default", Date.now(), wrongType, Date.now(), ghost);
    // Good jobs behind them must still run.
    await ctx.enqueue(
      Array.from({ length: ctx.size(20, 200) }, () => ({
        fn: "inspect",
        identity: true,
        expect: "COMPLETED" as const,
      })),
    );
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await redis.zscore("rrq:queue:default", wrongType)) !== null)
      await sleep(200);
    // A non-hash key is no job: its queue entry is dropped like a stale one (claim-ready-4.lua),
    // the key itself is left as it was, and the jobs claimed with it are not disturbed (before
    // the fix, HINCRBY on it failed the claim half-way and its batch was only recovered later).
    if ((await redis.zscore("rrq:queue:default", wrongType)) !== null)
      ctx.extraViolations.push({
        kind: "stuck",
        job: wrongType,
        detail: "a non-hash rrq:job key stays in its queue",
      });
    else if ((await redis.get(`rrq:job:${wrongType}`)) !== "not a hash")
      ctx.extraViolations.push({
        kind: "unexpected_outcome",
        job: wrongType,
        detail: "the claim changed a non-hash rrq:job:<id> key",
      });
    if ((await redis.zscore("rrq:queue:default", ghost)) !== null)
      ctx.extraViolations.push({
        kind: "stuck",
        job: ghost,
        detail: "a queue entry without a hash was not cleaned up",
      });
    // Last, alone: a hash whose id field is empty, dispatched among innocent jobs on the same
    // runner processes (so any damage it does to the connection shows on them).
    await waitTerminal(redis, [...ctx.jobs.keys()], 30_000, undefined, 8_000);
    const innocents = await ctx.enqueue(
      Array.from({ length: 12 }, () => ({
        fn: "sleep",
        params: { ms: 600 },
        options: { maxRetries: 3 },
      })),
    );
    for (const id of innocents) ctx.jobs.get(id)!.kind = "innocent beside an empty id";
    await sleep(150);
    await plant("id field empty", withChanges({ id: "" }));
    ctx.notes.push(`${CATALOGUE.length} catalogued + ${randomCount} random malformed hashes`);
  },
  async verify(ctx) {
    // No fault is injected here besides the hashes: a transport error on any other job is
    // collateral damage from one of them.
    for (const job of ctx.jobs.values()) {
      if (job.kind === "id field empty") continue;
      const [error, recoveries] = await ctx.redis.client.hmget(
        `rrq:job:${job.id}`,
        "last_error",
        "recovery_count",
      );
      // Nothing dies here either: a recovery means a claim or an attempt failed half-way.
      if (Number(recoveries ?? 0) > 0 && !job.kind.includes("recovery_count"))
        ctx.extraViolations.push({
          kind: "unexpected_outcome",
          job: job.id,
          detail: `${job.kind}: recovered ${recoveries} times although no process died (last_error ${JSON.stringify(error)})`,
        });
      if (/Runner transport error/.test(error ?? ""))
        ctx.extraViolations.push({
          kind: "unexpected_outcome",
          job: job.id,
          detail: `collateral: ${job.kind} failed with ${JSON.stringify(error)} although nothing is wrong with it (another job's hash broke the runner connection)`,
        });
    }
  },
};
