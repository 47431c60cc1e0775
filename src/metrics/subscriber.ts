import { bareQueueName } from "../store/keys.js";
import type { EventBus, JobRef } from "../telemetry/events.js";
import type { Labels, MetricsSink } from "./instruments.js";

/** Dispatches remembered at most (a job whose outcome never shows up must not leak). */
const MAX_TRACKED = 100_000;

/** The queue and function labels of a job. */
export function jobLabels(ref: Pick<JobRef, "queue" | "functionName">): Labels {
  return { queue: bareQueueName(ref.queue), function: ref.functionName };
}

/**
 * Feeds `sink` from the worker's typed events (src/telemetry/events.ts): the only place that
 * turns orchestrator events into measurements. Returns the function that unsubscribes.
 *
 * Durations of failed attempts are measured from `job:dispatched` to their outcome event
 * (successes carry their own duration); the wait comes with `job:claimed`.
 */
export function subscribeMetrics(
  events: EventBus,
  sink: MetricsSink,
  now: () => number = () => performance.now(),
): () => void {
  const dispatchedAt = new Map<string, number>();
  const sinceDispatch = (jobId: string): number | undefined => {
    const at = dispatchedAt.get(jobId);
    dispatchedAt.delete(jobId);
    return at === undefined ? undefined : (now() - at) / 1000;
  };
  const forget = (e: { jobId: string }) => dispatchedAt.delete(e.jobId);
  let redisFailures = 0;
  const offs = [
    events.on("job:claimed", (e) => {
      const labels = jobLabels(e);
      sink.add("started", 1, labels);
      if (e.waitMs !== undefined) sink.record("wait", Math.max(0, e.waitMs) / 1000, labels);
    }),
    events.on("job:dispatched", (e) => {
      if (dispatchedAt.size >= MAX_TRACKED) {
        const oldest = dispatchedAt.keys().next();
        if (!oldest.done) dispatchedAt.delete(oldest.value);
      }
      dispatchedAt.set(e.jobId, now());
    }),
    events.on("job:completed", (e) => {
      dispatchedAt.delete(e.jobId);
      const labels = jobLabels(e);
      sink.add("completed", 1, labels);
      sink.record("duration", e.durationMs / 1000, { ...labels, outcome: "success" });
    }),
    events.on("job:retry", (e) => {
      const labels = jobLabels(e);
      sink.add("failed", 1, labels);
      sink.add("retried", 1, labels);
      const seconds = sinceDispatch(e.jobId);
      if (seconds !== undefined) sink.record("duration", seconds, { ...labels, outcome: "retry" });
    }),
    events.on("job:dlq", (e) => {
      const labels = jobLabels(e);
      sink.add("dead", 1, labels);
      sink.add("failed", 1, labels);
      const seconds = sinceDispatch(e.jobId);
      if (seconds !== undefined) sink.record("duration", seconds, { ...labels, outcome: "dead" });
    }),
    events.on("job:snoozed", (e) => {
      forget(e);
      sink.add("snoozed", 1, jobLabels(e));
    }),
    events.on("job:cancelled", (e) => {
      forget(e);
      sink.add("cancelled", 1, jobLabels(e));
    }),
    events.on("job:expired", (e) => {
      forget(e);
      sink.add("expired", 1, jobLabels(e));
    }),
    events.on("job:released", forget),
    events.on("job:fenced", forget),
    events.on("runner:respawn", (e) => sink.add("runnerRestarts", 1, { runner: e.runner })),
    events.on("live:output-dropped", (e) =>
      sink.add("outputDropped", e.bytes, { runner: e.runner }),
    ),
    events.on("lease:renewed", (e) => {
      if (e.renewed > 0) sink.add("leaseRenewals", e.renewed, {});
    }),
    events.on("recovery:done", (e) => {
      if (e.recovered > 0) sink.add("recoveries", e.recovered, {});
    }),
    events.on("redis:down", (e) => {
      // `failures` counts the outage's failures so far; reports are rate-limited, so add the
      // failures since the last report
      const added = e.first ? e.failures : e.failures - redisFailures;
      redisFailures = e.failures;
      if (added > 0) sink.add("redisErrors", added, {});
    }),
  ];
  return () => {
    for (const off of offs) off();
    dispatchedAt.clear();
  };
}
