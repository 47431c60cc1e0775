/**
 * The shared scenarios of the testing modes (conformance/cases/testing/inline.json), run through
 * the TypeScript InlineProducer and through FakeProducer + drain(), with this file's own
 * implementation of the scenario handlers. The Python and Rust testing modes run the same file.
 */
import { readFileSync } from "node:fs";
import { NonRetryableError, Registry, snooze, type ExecutionRequest } from "@rrqkit/runner";
import { JobCatalog, type JobContract } from "@rrqkit/runner/contracts";
import { describe, expect, it } from "vitest";
import { ProducerError } from "../src/errors.js";
import { optionsFromSnakeCase } from "../src/producer/options.js";
import { FakeProducer, InlineProducer, type RecordedJob } from "../src/testing/index.js";

interface Scenario {
  name: string;
  handler: string;
  handler_params: Record<string, unknown>;
  options: Record<string, unknown>;
  catalog?: JobContract[];
  expect: {
    status?: string;
    attempts?: number;
    result?: unknown;
    error_type?: string;
    snoozes?: number;
    retry_delays?: number[];
    deferred_seconds?: number;
    child?: { function_name: string; status: string; result?: unknown };
    refused?: { error: string; field?: string };
  };
}

const FILE = new URL("../conformance/cases/testing/inline.json", import.meta.url);
const { scenarios } = JSON.parse(readFileSync(FILE, "utf8")) as { scenarios: Scenario[] };

type AnyProducer = FakeProducer | InlineProducer;

/** The scenario handlers; `producer()` is the producer under test (for enqueue_child). */
function scenarioRegistry(producer: () => AnyProducer): Registry {
  const snoozed = new Map<string, number>();
  const p = (request: ExecutionRequest) => request.params as Record<string, unknown>;
  return new Registry()
    .register("echo", (request) => request.params)
    .register("flaky", (request) => {
      const { fail_times, result } = p(request);
      if (request.context.attempt <= (fail_times as number))
        throw new Error(`flaky attempt ${request.context.attempt}`);
      return result;
    })
    .register("sleep", (request, signal) => {
      const ms = p(request).ms as number;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve({ slept: ms }), ms);
        const abort = () => {
          clearTimeout(timer);
          reject(signal.reason as Error);
        };
        signal.addEventListener("abort", abort, { once: true });
      });
    })
    .register("fail_permanent", (request) => {
      throw new NonRetryableError(String(p(request).message));
    })
    .register("enqueue_child", async (request) => {
      const { name, params } = p(request);
      const id = await producer().enqueue(name as string, params as Record<string, unknown>);
      return { child_id: id };
    })
    .register("snooze", (request) => {
      const { times, seconds, result } = p(request);
      const done = snoozed.get(request.job_id) ?? 0;
      if (done >= (times as number)) return result;
      snoozed.set(request.job_id, done + 1);
      return snooze(seconds as number);
    });
}

/** Enqueues the scenario's job in `mode`; the job once final (undefined when refused). */
async function run(scenario: Scenario, mode: "inline" | "fake") {
  const registry = scenarioRegistry(() => producer);
  const catalog = scenario.catalog && JobCatalog.fromContracts(scenario.catalog);
  const producer: AnyProducer =
    mode === "inline"
      ? new InlineProducer({ registry, catalog })
      : new FakeProducer({ registry, catalog });
  const options = optionsFromSnakeCase(scenario.options);
  try {
    const id = await producer.enqueue(scenario.handler, scenario.handler_params, options);
    if (producer instanceof FakeProducer) {
      expect(producer.jobs.every((j) => j.status === "PENDING")).toBe(true);
      await producer.drain();
    }
    return { producer, job: producer.jobs.find((j) => j.id === id)!, refused: undefined };
  } catch (error) {
    if (!(error instanceof ProducerError)) throw error;
    return { producer, job: undefined, refused: error };
  } finally {
    await producer.close();
  }
}

function check(scenario: Scenario, producer: AnyProducer, job: RecordedJob | undefined): void {
  const want = scenario.expect;
  expect(job).toBeDefined();
  const got = job!;
  expect(got.status).toBe(want.status);
  if (want.attempts !== undefined) expect(got.attempts).toBe(want.attempts);
  if ("result" in want) expect(got.result).toEqual(want.result);
  if (want.error_type !== undefined) expect(got.errorType).toBe(want.error_type);
  if (want.snoozes !== undefined) expect(got.snoozes).toBe(want.snoozes);
  if (want.retry_delays !== undefined) expect(got.retryDelays).toEqual(want.retry_delays);
  if (want.deferred_seconds !== undefined) expect(got.deferredSeconds).toBe(want.deferred_seconds);
  if (want.child) {
    const children = producer.jobsFor(want.child.function_name);
    expect(children).toHaveLength(1);
    expect(children[0]!.status).toBe(want.child.status);
    if ("result" in want.child) expect(children[0]!.result).toEqual(want.child.result);
  }
}

describe.each(["inline", "fake"] as const)("testing scenarios, %s mode", (mode) => {
  it.each(scenarios.map((s) => [s.name, s] as const))("%s", async (_name, scenario) => {
    const { producer, job, refused } = await run(scenario, mode);
    if (scenario.expect.refused) {
      expect(refused?.code).toBe(scenario.expect.refused.error);
      if (scenario.expect.refused.field !== undefined)
        expect((refused as { field?: string }).field).toBe(scenario.expect.refused.field);
      expect(producer.jobs).toEqual([]);
      return;
    }
    expect(refused).toBeUndefined();
    check(scenario, producer, job);
  });
});

it("the scenario file has the scenarios every language runs", () => {
  expect(scenarios.length).toBeGreaterThanOrEqual(8);
  expect(new Set(scenarios.map((s) => s.name)).size).toBe(scenarios.length);
});
