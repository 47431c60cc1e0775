import { randomUUID } from "node:crypto";
import {
  cancelFrame,
  requestFrame,
  type Frame,
  type LiveOptions,
} from "../../src/protocol/index.js";

/** Options of {@link request}. */
export interface RequestOptions {
  jobId?: string;
  requestId?: string;
  attempt?: number;
  deadlineMs?: number | null;
  protocolVersion?: string;
  /** The request's `live` (RUNNER_PROTOCOL.md §13.1); absent when not given. */
  live?: LiveOptions;
}

/** A request frame for handler `fn` with `params`, with fresh ids unless given. */
export function request(fn: string, params: Record<string, unknown> = {}, o: RequestOptions = {}) {
  const jobId = o.jobId ?? `job-${randomUUID()}`;
  const requestId = o.requestId ?? randomUUID();
  const deadline =
    o.deadlineMs === null ? null : new Date(Date.now() + (o.deadlineMs ?? 30_000)).toISOString();
  const frame: Frame = requestFrame({
    protocol_version: o.protocolVersion ?? "2",
    request_id: requestId,
    job_id: jobId,
    function_name: fn,
    params,
    context: {
      job_id: jobId,
      attempt: o.attempt ?? 1,
      enqueue_time: new Date().toISOString(),
      queue_name: "rrq:queue:default",
      deadline,
      trace_context: null,
      correlation_context: null,
      worker_id: "test-worker",
    },
    live: o.live ?? null,
  });
  return { frame, jobId, requestId };
}

/** A cancel frame for one request, or for every request of a job when requestId is omitted. */
export function cancel(jobId: string, requestId?: string): Frame {
  return cancelFrame({ job_id: jobId, request_id: requestId ?? null });
}
