/**
 * `rrqkit/testing`: run jobs in tests without an orchestrator (docs/testing.md).
 *
 * - {@link FakeProducer}: records enqueues in memory (no Redis, no network); `drain()` runs them.
 * - {@link InlineProducer}: every enqueue runs its job to its end before it returns.
 * - {@link startLiveRrq}: a private redis-server and an in-process orchestrator for one test.
 *
 * The fake and inline producers have the real producer's enqueue API, validation, catalog check
 * and middleware, and run jobs by the orchestrator's rules (retries, non-retryable errors,
 * timeouts, snoozes), recording delays instead of sleeping them.
 */
export { FakeProducer } from "./fake-producer.js";
export { InlineProducer } from "./inline-producer.js";
export { MAX_EXECUTIONS, type TestingProducerOptions } from "./local-producer.js";
export type { RecordedJob, RecordedStatus } from "./inline-rules.js";
export { startLiveRrq, LIVE_RUNNER, type LiveRrq, type LiveRrqOptions } from "./live.js";
