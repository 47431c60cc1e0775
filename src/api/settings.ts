import type { ResolvedConfig } from "../config/config.js";
import { producerConfigFrom, type ProducerConfig } from "../producer/producer.js";
import { dlqKey, queueKey } from "../store/keys.js";

/** What the operator API needs from the configuration (RRQ's defaults when there is none). */
export interface ApiSettings {
  readonly redisDsn: string;
  /** Full queue key of the default queue. */
  readonly defaultQueueName: string;
  /** Full key of the default DLQ list. */
  readonly defaultDlqName: string;
  readonly defaultResultTtlSeconds: number;
  /** Queues the configuration names (default, routed, cron); always listed. */
  readonly knownQueues: readonly string[];
  /** Producer settings for replays and submits (RRQ's orchestrator client uses the defaults). */
  readonly producer: Required<ProducerConfig>;
}

/** Settings from a resolved rrq.toml. */
export function apiSettingsFrom(config: ResolvedConfig): ApiSettings {
  const known = new Set<string>([config.defaultQueueName]);
  for (const queue of Object.keys(config.runnerRoutes)) known.add(queueKey(queue));
  for (const cron of config.cronJobs)
    known.add(queueKey(cron.queueName ?? config.defaultQueueName));
  return {
    redisDsn: config.redisDsn,
    defaultQueueName: config.defaultQueueName,
    defaultDlqName: dlqKey(config.defaultDlqName),
    defaultResultTtlSeconds: config.defaultResultTtlSeconds,
    knownQueues: [...known].sort(),
    producer: producerConfigFrom(config),
  };
}

/** RRQ's defaults, for a bare DSN. */
export function defaultApiSettings(redisDsn = "redis://localhost:6379/0"): ApiSettings {
  return {
    redisDsn,
    defaultQueueName: "rrq:queue:default",
    defaultDlqName: "rrq:dlq:default",
    defaultResultTtlSeconds: 86400,
    knownQueues: ["rrq:queue:default"],
    producer: {
      redisDsn,
      queueName: "rrq:queue:default",
      maxRetries: 5,
      jobTimeoutSeconds: 300,
      resultTtlSeconds: 86400,
      idempotencyTtlSeconds: 21600,
      correlationMappings: {},
    },
  };
}
