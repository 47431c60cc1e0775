/**
 * Every Redis key and channel name, built in one place (rrq-0.11-facts §1.1). Prefix rules
 * are RRQ's: queue, DLQ, rate-limit and debounce names get their prefix only when they lack
 * it; the idempotency and unique-lock prefixes are always added.
 */
export const Prefix = {
  job: "rrq:job:",
  queue: "rrq:queue:",
  dlq: "rrq:dlq:",
  active: "rrq:active:jobs:",
  jobLock: "rrq:lock:job:",
  uniqueLock: "rrq:lock:unique:",
  events: "rrq:events:job:",
  health: "rrq:health:worker:",
  idempotency: "rrq:idempotency:",
  rateLimit: "rrq:rate_limit:",
  debounce: "rrq:debounce:",
  /** rrqkit: pub/sub channel announcing new work on a queue (no key is written). */
  wake: "rrq:wake:",
} as const;

/** rrqkit: ZSET job_id → lease expiry (epoch ms), so expired leases are found without a scan. */
export const LEASES_KEY = "rrq:leases";
/** rrqkit: counter handing out lease fences (monotonic, one per claim). */
export const FENCE_KEY = "rrq:fence";
/** rrqkit: the worker id whose turn it is to run the orphan scan (STRING, PX = the interval). */
export const ORPHAN_SCAN_KEY = "rrq:orphan-scan";

const withPrefix = (prefix: string, name: string) =>
  name.startsWith(prefix) ? name : prefix + name;

/** `rrq:queue:<name>` unless already prefixed. */
export const queueKey = (name: string): string => withPrefix(Prefix.queue, name);
/** The bare queue name (prefix stripped). */
export const bareQueueName = (name: string): string =>
  name.startsWith(Prefix.queue) ? name.slice(Prefix.queue.length) : name;
/** `rrq:dlq:<name>` unless already prefixed. */
export const dlqKey = (name: string): string => withPrefix(Prefix.dlq, name);
/** The job hash key. */
export const jobKey = (jobId: string): string => Prefix.job + jobId;
/** A worker's active-jobs ZSET. */
export const activeKey = (workerId: string): string => Prefix.active + workerId;
/** The per-job lock. */
export const jobLockKey = (jobId: string): string => Prefix.jobLock + jobId;
/** The per-job events stream. */
export const eventsKey = (jobId: string): string => Prefix.events + jobId;
/** A worker's health key. */
export const healthKey = (workerId: string): string => Prefix.health + workerId;
/** Idempotency key: the prefix is always added (RRQ's rule). */
export const idempotencyKey = (key: string): string => Prefix.idempotency + key;
/** Unique lock: the prefix is always added. */
export const uniqueLockKey = (key: string): string => Prefix.uniqueLock + key;
/** `rrq:rate_limit:<key>` unless already prefixed. */
export const rateLimitKey = (key: string): string => withPrefix(Prefix.rateLimit, key);
/** `rrq:debounce:<key>` unless already prefixed. */
export const debounceKey = (key: string): string => withPrefix(Prefix.debounce, key);
/** The wake-up channel of a queue (takes the full queue key). */
export const wakeChannel = (queue: string): string => Prefix.wake + queue;

// rrqkit bookkeeping for the operator CLI and data API (README "Operating it"). All of it is
// additive: RRQ's own writers ignore these keys, and every reader falls back when they lag.

/** rrqkit: SET of queue keys that have ever held work (SADDed by enqueue and claim scripts). */
export const QUEUES_KEY = "rrq:queues";
/** rrqkit: STREAM of recently finished jobs (capped at about 10,000 entries). */
export const RECENT_KEY = "rrq:recent";

const bareDlqName = (name: string): string =>
  name.startsWith(Prefix.dlq) ? name.slice(Prefix.dlq.length) : name;

/** rrqkit: HASH of lifetime counters of one queue (completed, retried, failed, cancelled). */
export const queueStatsKey = (queue: string): string => `rrq:stats:queue:${bareQueueName(queue)}`;
/** rrqkit: HASH of counters of one UTC day (`YYYY-MM-DD`), kept for 400 days. */
export const dayStatsKey = (day: string): string => `rrq:stats:day:${day}`;
/** rrqkit: HASH of the retries of one UTC minute (`YYYY-MM-DDTHH:MM`, from epoch ms), kept 2 hours. */
export const minuteStatsKey = (ms: number): string =>
  `rrq:stats:minute:${new Date(ms).toISOString().slice(0, 16)}`;
/** rrqkit: HASH summarising one DLQ list (counts by queue, function and error). */
export const dlqStatsKey = (dlq: string): string => `rrq:stats:dlq:${bareDlqName(dlq)}`;
/** rrqkit: HASH with one cron entry's state (the last fire time it was enqueued for). */
export const cronKey = (id: string): string => `rrq:cron:${id}`;

// rrqkit flow control (issue 22; README "Flow control"). Additive: RRQ ignores these keys (its
// orchestrator may run limited jobs without limits, and never sees parked jobs).

/** rrqkit: SET of wait keys (wait:/owait:/bwait:) that hold parked jobs (the sweeper's index). */
export const FLOW_WAITING_KEY = "rrq:fc:waiting";
/** rrqkit: HASH queue key → number of parked jobs of that queue (approximate). */
export const FLOW_PARKED_KEY = "rrq:fc:parked";
/** rrqkit: STRING counter handing out session sequences (INCR). */
export const FLOW_SEQ_KEY = "rrq:fc:seq";
/**
 * rrqkit: SET of the bare names of paused queues, kept by queue-pause-1.lua beside each
 * `rrq:paused:<bare>` key (which stays what the claim checks), so listing them needs no SCAN.
 */
export const FLOW_PAUSED_QUEUES_KEY = "rrq:fc:paused-queues";
/**
 * rrqkit: SET of the scopes that have a `rrq:breaker:<scope>` hash, kept by breaker-record-1.lua
 * (the only script that creates one), so listing breakers needs no SCAN.
 */
export const FLOW_BREAKERS_KEY = "rrq:fc:breakers";
/** rrqkit: ZSET job_id → claim time ms of the jobs holding a slot of a concurrency key. */
export const flowRunKey = (key: string): string => `rrq:fc:run:${key}`;
/** rrqkit: ZSET job_id → original queue score of the jobs parked for a slot of a key. */
export const flowWaitKey = (key: string): string => `rrq:fc:wait:${key}`;
/** rrqkit: STRING, the theoretical arrival time (epoch ms) of a key's next start. */
export const flowRateKey = (key: string): string => `rrq:fc:rate:${key}`;
/** rrqkit: ZSET job_id → enqueue sequence of a session's unfinished jobs (head = lowest). */
export const flowOrderKey = (orderingKey: string): string => `rrq:fc:order:${orderingKey}`;
/** rrqkit: ZSET job_id → original queue score of session jobs parked behind the head. */
export const flowOrderWaitKey = (orderingKey: string): string => `rrq:fc:owait:${orderingKey}`;
/** rrqkit: HASH with a circuit breaker's state; scope = `function:<name>` or `runner:<name>`. */
export const breakerKey = (scope: string): string => `rrq:breaker:${scope}`;
/** rrqkit: ZSET job_id → original queue score of the jobs held by an open breaker. */
export const breakerWaitKey = (scope: string): string => `rrq:fc:bwait:${scope}`;
/** rrqkit: STRING JSON {since, reason?} while a queue is paused (takes the bare or full name). */
export const pausedKey = (queue: string): string => `rrq:paused:${bareQueueName(queue)}`;

// rrqkit live jobs (issue 23; README "Live jobs"). Additive: RRQ ignores these keys.

/** rrqkit: STREAM of one attempt's output (`run` = the job's `runs` of that attempt). */
export const outputKey = (jobId: string, run: number): string => `rrq:output:${jobId}:${run}`;
/** rrqkit: pub/sub channel announcing a job's progress and output (no key is written). */
export const liveChannel = (jobId: string): string => `rrq:live:${jobId}`;
/** The prefix of the needs-sets (jobs parked until a runner with their tags joins). */
export const FLOW_NEEDS_PREFIX = "rrq:fc:needs:";
/**
 * rrqkit: ZSET job_id → original queue score of the jobs of `runner` parked until a runner
 * process offering every tag of `tags` (sorted, deduplicated) is connected.
 */
export const flowNeedsKey = (runner: string, tags: readonly string[]): string =>
  `${FLOW_NEEDS_PREFIX}${runner}:${tags.join(",")}`;
