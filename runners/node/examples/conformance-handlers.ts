/**
 * The standard test-handler set (conformance/handlers.md) for the Node runtime, as a module whose
 * default export is the {@link Registry}: `conformance-runner.ts` serves it as a runner process,
 * and an orchestrator runner with `transport = "inprocess"` loads it directly
 * (`handlers = "runners/node/dist/examples/conformance-handlers.js"`).
 */
import { appendFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import {
  NonRetryableError,
  Outcome,
  Registry,
  snooze,
  type ExecutionRequest,
  type Handler,
} from "../src/index.js";

type Params = Record<string, unknown>;
const params = (request: ExecutionRequest): Params => request.params ?? {};
const num = (value: unknown, fallback: number): number =>
  typeof value === "number" && Number.isFinite(value) ? value : fallback;
const str = (value: unknown): string | null => (typeof value === "string" ? value : null);

/** Snoozes so far per job id, for the `snooze` handler (a per-process count, handlers.md). */
const snoozeCounts = new Map<string, number>();

/** Blocks the event loop, as a handler that ignores cancellation would. */
function busyWait(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    /* spin */
  }
}

const handlers: Record<string, Handler> = {
  echo: (request) => request.params ?? {},
  inspect: (request) => ({
    job_id: request.job_id,
    request_id: request.request_id,
    function_name: request.function_name,
    params: request.params ?? {},
    context: {
      job_id: request.context.job_id,
      attempt: request.context.attempt,
      enqueue_time: request.context.enqueue_time,
      queue_name: request.context.queue_name,
      deadline: request.context.deadline ?? null,
      trace_context: request.context.trace_context ?? null,
      correlation_context: request.context.correlation_context ?? null,
      worker_id: request.context.worker_id ?? null,
    },
  }),
  sleep: async (request, signal) => {
    const ms = num(params(request).ms, 100);
    await sleep(ms, undefined, { signal });
    return { slept_ms: ms };
  },
  fail: (request) => {
    const p = params(request);
    return Outcome.error(str(p.message) ?? "boom", str(p.type), str(p.code));
  },
  throw: (request) => {
    throw new Error(str(params(request).message) ?? "boom");
  },
  retry: (request) => {
    const p = params(request);
    const after = typeof p.after_seconds === "number" ? p.after_seconds : undefined;
    return Outcome.retry(str(p.message) ?? undefined, after);
  },
  flaky: (request) => {
    const p = params(request);
    const attempt = request.context.attempt;
    if (attempt <= num(p.fail_until_attempt, 1)) {
      return p.mode === "retry"
        ? Outcome.retry(undefined, 0)
        : Outcome.error(`flaky failure on attempt ${attempt}`);
    }
    return { attempt };
  },
  timeout: (request) => Outcome.timeout(str(params(request).message) ?? undefined),
  large: (request) => ({ data: "x".repeat(num(params(request).bytes, 1048576)) }),
  nan: () => ({ value: NaN }),
  crash: (request) => {
    const p = params(request);
    const signal = str(p.signal);
    if (signal) process.kill(process.pid, signal);
    process.exit(num(p.code, 1));
  },
  noise: (request) => {
    const lines = num(params(request).lines, 3);
    for (let i = 0; i < lines; i++) {
      console.log(`noise ${i}`);
      process.stdout.write(`noise ${i}\n`);
      process.stderr.write(`noise ${i}\n`);
    }
    return { lines };
  },
  fail_permanently: (request) => {
    throw new NonRetryableError(str(params(request).message) ?? "boom");
  },
  snooze: (request) => {
    const p = params(request);
    const times = num(p.times, 1);
    const count = snoozeCounts.get(request.job_id) ?? 0;
    if (count < times) {
      snoozeCounts.set(request.job_id, count + 1);
      return snooze(num(p.seconds, 0.1));
    }
    return { snoozed: times, attempt: request.context.attempt };
  },
  ignore_cancel: (request) => {
    const ms = num(params(request).ms, 1000);
    busyWait(ms);
    return { slept_ms: ms };
  },
  report_progress: async (request, signal, ctx) => {
    const p = params(request);
    const values = Array.isArray(p.values) ? (p.values as unknown[]) : [0.25, 0.5, 0.75, 1];
    const delay = num(p.delay_ms, 0);
    for (const [i, value] of values.entries()) {
      const message = str(p.message) ?? `step ${i + 1} of ${values.length}`;
      ctx.progress(typeof value === "number" ? value : null, message, p.detail ?? null);
      if (delay > 0) await sleep(delay, undefined, { signal });
    }
    return { reported: values.length };
  },
  write_output: async (request, signal, ctx) => {
    const p = params(request);
    const lines = num(p.lines, 3);
    const text = str(p.text) ?? "line";
    const size = typeof p.size === "number" ? p.size : null;
    const delay = num(p.delay_ms, 0);
    for (let i = 0; i < lines; i++) {
      if (size !== null) ctx.output.write("x".repeat(size));
      else if (p.json === true) ctx.output.json({ line: i, text });
      else ctx.output.write(`${text} ${i}\n`);
      if (delay > 0) await sleep(delay, undefined, { signal });
    }
    return { lines };
  },
};

/** Appends one handler start to the exec log at `path` (conformance/handlers.md). */
export function logExecution(path: string, request: ExecutionRequest, name: string): void {
  const line = {
    job_id: request.job_id,
    request_id: request.request_id,
    attempt: request.context.attempt,
    function_name: name,
    pid: process.pid,
    ts_ms: performance.timeOrigin + performance.now(),
  };
  appendFileSync(path, `${JSON.stringify(line)}\n`);
}

/** Wraps a handler so each invocation is appended to RRQ_TEST_EXEC_LOG (handlers.md). */
function logged(name: string, handler: Handler, path: string): Handler {
  return (request, signal, ctx) => {
    logExecution(path, request, name);
    return handler(request, signal, ctx);
  };
}

const registry = new Registry();
const execLog = process.env.RRQ_TEST_EXEC_LOG;
for (const [name, handler] of Object.entries(handlers)) {
  registry.register(name, execLog ? logged(name, handler, execLog) : handler);
}
export default registry;
