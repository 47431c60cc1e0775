/**
 * Handler middleware (rrqkit docs/middleware.md): an onion around every handler, first
 * registered outermost; it may change params, map errors, short-circuit; a second `next()` is an
 * error outcome; contract validation and handler lookup come before the chain; the deadline and
 * the cancel signal cover the whole chain.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { JobCatalog } from "../src/contracts/index.js";
import {
  ErrorTypes,
  NonRetryableError,
  Outcome,
  Registry,
  RunnerRuntime,
  type Middleware,
} from "../src/index.js";
import { memoryChannelPair, type Frame } from "../src/protocol/index.js";
import type { ExecutionOutcome } from "../src/protocol/generated/wire.js";
import { request, type RequestOptions } from "./support/requests.js";

const here = dirname(fileURLToPath(import.meta.url));
const CATALOG_DIR = join(here, "..", "..", "..", "conformance", "fixtures", "catalog");

/** A runtime serving `registry` on an in-memory pair; `call` sends a request, awaits its outcome. */
function harness(registry: Registry, catalog?: JobCatalog) {
  const runtime = new RunnerRuntime(registry, { catalog, log: () => {} });
  const [orchestrator, runner] = memoryChannelPair();
  runtime.serve(runner);
  const waiting = new Map<string, (outcome: ExecutionOutcome) => void>();
  orchestrator.on({
    frame: (frame: Frame) => {
      if (frame.type === "response") waiting.get(frame.payload.request_id ?? "")?.(frame.payload);
    },
    close: () => {},
  });
  const call = (fn: string, params: Record<string, unknown> = {}, options?: RequestOptions) => {
    const { frame, requestId } = request(fn, params, options);
    const outcome = new Promise<ExecutionOutcome>((resolve) => waiting.set(requestId, resolve));
    orchestrator.send(frame);
    return outcome;
  };
  return { call, close: () => runtime.closeAll() };
}

/** A middleware that records entering and leaving under `name`. */
function tracer(name: string, log: string[]): Middleware {
  return async (_request, next) => {
    log.push(`${name}>`);
    try {
      return await next();
    } finally {
      log.push(`<${name}`);
    }
  };
}

describe("runner middleware", () => {
  it("wraps the handler as an onion, first registered outermost", async () => {
    const log: string[] = [];
    const registry = new Registry()
      .register("echo", (r) => (log.push("handler"), r.params))
      .use(tracer("a", log))
      .use(tracer("b", log));
    const h = harness(registry);
    const outcome = await h.call("echo", { x: 1 });
    expect(outcome).toMatchObject({ status: "success", result: { x: 1 } });
    expect(log).toEqual(["a>", "b>", "handler", "<b", "<a"]);
    h.close();
  });

  it("can change params before next and the result after it", async () => {
    const registry = new Registry()
      .register("echo", (r) => r.params)
      .use(async (request, next) => {
        request.params = { ...request.params, tenant: "acme" };
        return { wrapped: await next() };
      });
    const h = harness(registry);
    expect(await h.call("echo", { x: 1 })).toMatchObject({
      status: "success",
      result: { wrapped: { x: 1, tenant: "acme" } },
    });
    h.close();
  });

  it("short-circuits: returning without next never runs the handler or inner middleware", async () => {
    const log: string[] = [];
    const registry = new Registry()
      .register("echo", () => log.push("handler"))
      .use((request) => (request.params?.cached ? { from: "cache" } : undefined))
      .use(tracer("inner", log));
    const h = harness(registry);
    expect(await h.call("echo", { cached: true })).toMatchObject({
      status: "success",
      result: { from: "cache" },
    });
    expect(log).toEqual([]);
    h.close();
  });

  it("maps errors: a thrown error becomes non-retryable, or an Outcome", async () => {
    const registry = new Registry()
      .register("boom", () => {
        throw new Error("db down");
      })
      .use(async (request, next) => {
        try {
          return await next();
        } catch (error) {
          if (request.params?.mode === "outcome") return Outcome.retry("later", 5);
          throw new NonRetryableError(`mapped: ${(error as Error).message}`);
        }
      });
    const h = harness(registry);
    expect(await h.call("boom")).toMatchObject({
      status: "error",
      error: { type: ErrorTypes.nonRetryable, message: "mapped: db down" },
    });
    expect(await h.call("boom", { mode: "outcome" })).toMatchObject({
      status: "retry",
      retry_after_seconds: 5,
    });
    h.close();
  });

  it("a handler error passes through a middleware that does not catch it", async () => {
    const registry = new Registry()
      .register("boom", () => {
        throw new TypeError("bad input");
      })
      .use((_r, next) => next());
    const h = harness(registry);
    expect(await h.call("boom")).toMatchObject({
      status: "error",
      error: { type: "TypeError", message: "bad input" },
    });
    h.close();
  });

  it("calling next twice is an error outcome, even when the middleware catches it", async () => {
    let runs = 0;
    const registry = new Registry().register("once", () => ++runs);
    registry.use(async (_r, next) => {
      const first = await next();
      try {
        await next();
      } catch {
        // swallowed on purpose: the runtime still reports the misuse
      }
      return first;
    });
    const h = harness(registry);
    expect(await h.call("once")).toMatchObject({
      status: "error",
      error: { type: "MiddlewareError", message: "middleware called next twice" },
    });
    expect(runs).toBe(1);
    h.close();
  });

  it("runs after the contract check and not at all for a missing handler", async () => {
    const log: string[] = [];
    const registry = new Registry()
      .register("send_email", (r) => ({ message_id: String(r.params?.to) }))
      .use(tracer("mw", log));
    const h = harness(registry, JobCatalog.load(CATALOG_DIR));
    expect(await h.call("send_email", { to: 1, subject: "s" })).toMatchObject({
      status: "error",
      error: { type: ErrorTypes.invalidParams },
    });
    expect(await h.call("nope")).toMatchObject({
      status: "error",
      error: { type: ErrorTypes.handlerNotFound },
    });
    expect(log).toEqual([]);
    h.close();
  });

  it("gives the middleware the cancel signal and job context; the deadline covers the chain", async () => {
    const seen: { aborted: boolean; jobId: string }[] = [];
    const registry = new Registry()
      .register("fast", () => "done")
      .use(async (request, next, ctx) => {
        ctx.job.progress(0.5); // no-op without live options, but callable
        if (request.params?.slow)
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        seen.push({ aborted: ctx.signal.aborted, jobId: ctx.job.jobId });
        return next();
      });
    const h = harness(registry);
    const outcome = await h.call("fast", { slow: true }, { deadlineMs: 200, jobId: "j-slow" });
    expect(outcome).toMatchObject({ status: "timeout", error: { type: ErrorTypes.timeout } });
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([{ aborted: true, jobId: "j-slow" }]);
    h.close();
  });

  it("refuses a middleware that is not a function", () => {
    expect(() => new Registry().use({} as never)).toThrow(TypeError);
  });
});
