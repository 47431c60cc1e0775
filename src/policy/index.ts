/**
 * Retry policies (README "Job control"): the one validator of the producer option, the stored
 * `retry_policy` field and `[rrq.functions."<name>"]` tables, and the per-job resolution
 * job → function → global defaults with its backoff.
 */
export * from "./spec.js";
export * from "./resolve.js";
