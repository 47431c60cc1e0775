import type { Redis } from "ioredis";
import { matchValue } from "./matching.js";
import type { Failure } from "./runner-script.js";

type Step = Record<string, unknown>;

/** How long an `output` expectation waits for the closed entry once the job has finished. */
const CLOSED_WAIT_MS = 5000;

/** How often it looks again. */
const POLL_MS = 50;

/** One entry of an attempt's output stream, as the orchestrator writes it (README "Live jobs"). */
interface StreamEntry {
  k: string;
  d?: string;
  dropped?: string;
  status?: string;
}

async function readStream(redis: Redis, key: string): Promise<StreamEntry[]> {
  const raw = (await redis.xrange(key, "-", "+")) as Array<[string, string[]]>;
  return raw.map(([, flat]) => {
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
    return fields as unknown as StreamEntry;
  });
}

/**
 * Reads `rrq:output:<job>:<attempt>`, looking again until its closed entry shows: the orchestrator
 * writes it just after the outcome, so a finished job may still be a moment without it.
 */
async function streamWhenClosed(redis: Redis, key: string): Promise<StreamEntry[]> {
  const deadline = Date.now() + CLOSED_WAIT_MS;
  for (;;) {
    const entries = await readStream(redis, key);
    if (entries.some((e) => e.k === "closed") || Date.now() >= deadline) return entries;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Checks one attempt's output stream (conformance/README.md "End-to-end and producer cases"):
 * the job expectation's `output` object, `e` here: `attempt` (default 1) names the stream;
 * `text` is the data of its `out`/`err`/`log` entries joined, `bytes` its UTF-8 length, `kind`
 * is matched against the sorted distinct kinds of those entries,
 * `truncated` the `dropped` count of its one truncation entry (null: none), `closed` the status of
 * its closed entry, which must be the last; `ttl` is matched against the key's TTL in seconds.
 */
export async function checkOutputStream(
  redis: Redis,
  name: string,
  jobId: string,
  e: Step,
  rule: (fallback: string) => string,
): Promise<Failure[]> {
  const attempt = typeof e.attempt === "number" ? e.attempt : 1;
  const key = `rrq:output:${jobId}:${attempt}`;
  const entries = await streamWhenClosed(redis, key);
  const fail = (fallback: string, message: string): Failure => ({
    rule: rule(fallback),
    message: `job ${name} ${key}: ${message}`,
  });
  if (!entries.length)
    return [fail("the attempt's output is stored", "the stream is empty or absent")];
  const failures: Failure[] = [];
  const data = entries.filter((x) => x.k === "out" || x.k === "err" || x.k === "log");
  const text = data.map((x) => x.d ?? "").join("");
  if (typeof e.text === "string" && text !== e.text)
    failures.push(
      fail(
        "the stream holds what the handler wrote, in order",
        `text ${JSON.stringify(text.slice(0, 200))}, expected ${JSON.stringify(e.text.slice(0, 200))}`,
      ),
    );
  if (typeof e.bytes === "number" && Buffer.byteLength(text) !== e.bytes)
    failures.push(
      fail(
        "the stream keeps at most output_max_bytes_per_attempt bytes",
        `${Buffer.byteLength(text)} bytes of data, expected ${e.bytes}`,
      ),
    );
  if (e.kind !== undefined)
    for (const m of matchValue([...new Set(data.map((x) => x.k))].sort(), e.kind))
      failures.push(fail("output entry kinds", `kinds ${m.path}: ${m.message}`));
  if ("truncated" in e) failures.push(...truncation(entries, e.truncated, fail));
  if (typeof e.closed === "string") {
    const last = entries.at(-1)!;
    const closed = entries.filter((x) => x.k === "closed");
    if (closed.length !== 1 || last.k !== "closed" || last.status !== e.closed)
      failures.push(
        fail(
          "the stream ends with one closed entry giving the outcome",
          `${closed.length} closed entries, the last entry is ${JSON.stringify(last)}, expected {k: closed, status: ${e.closed}}`,
        ),
      );
  }
  if (e.ttl !== undefined) {
    const ttl = await redis.ttl(key);
    for (const m of matchValue(ttl, e.ttl))
      failures.push(fail("the stream expires with the result", `ttl ${m.path}: ${m.message}`));
  }
  return failures;
}

function truncation(
  entries: readonly StreamEntry[],
  expected: unknown,
  fail: (fallback: string, message: string) => Failure,
): Failure[] {
  const marks = entries.filter((x) => x.k === "truncated");
  const rule = "a capped attempt records one truncation entry with the dropped bytes";
  if (expected === null)
    return marks.length ? [fail(rule, `a truncation entry ${JSON.stringify(marks[0])}`)] : [];
  if (marks.length !== 1) return [fail(rule, `${marks.length} truncation entries, expected 1`)];
  const closedAt = entries.findIndex((x) => x.k === "closed");
  const failures: Failure[] = [];
  if (closedAt >= 0 && entries.indexOf(marks[0]!) > closedAt)
    failures.push(fail(rule, "the truncation entry follows the closed entry"));
  for (const m of matchValue(Number(marks[0]!.dropped), expected))
    failures.push(fail(rule, `dropped ${m.path}: ${m.message}`));
  return failures;
}
