#!/usr/bin/env node
/**
 * The Node producer adapter of conformance/PRODUCER_ADAPTER.md: reads one JSON command per line
 * on stdin, performs it with {@link Producer}, and writes one JSON reply per line on stdout, in
 * order. Exits 0 when stdin closes.
 *
 *   node dist/src/conformance/producer-adapter.js
 */
import { createInterface } from "node:readline";
import { JobCatalog } from "@rrqkit/runner/contracts";
import { loadConfig } from "../config/load.js";
import { InvalidParamsError, RrqError } from "../errors.js";
import { optionsFromSnakeCase } from "../producer/options.js";
import {
  Producer,
  producerConfigFrom,
  type BulkItem,
  type JobResult,
  type ProducerConfig,
} from "../producer/producer.js";

type Command = Record<string, unknown> & { id?: unknown; op: string };
type Reply =
  | { id: unknown; ok: true; result: unknown }
  | { id: unknown; ok: false; error: { code: string; message: string; field?: string } };

const CONFIG_NAMES: Record<string, keyof ProducerConfig> = {
  redis_dsn: "redisDsn",
  queue_name: "queueName",
  max_retries: "maxRetries",
  job_timeout_seconds: "jobTimeoutSeconds",
  result_ttl_seconds: "resultTtlSeconds",
  idempotency_ttl_seconds: "idempotencyTtlSeconds",
  correlation_mappings: "correlationMappings",
};

/** snake_case config → ProducerConfig; unknown keys pass through so the producer judges them. */
function producerConfig(raw: unknown): ProducerConfig {
  const config: ProducerConfig = {};
  for (const [key, value] of Object.entries(raw ?? {}))
    (config as Record<string, unknown>)[CONFIG_NAMES[key] ?? key] = value;
  return config;
}

function snakeConfig(config: Required<ProducerConfig>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(CONFIG_NAMES).map(([snake, camel]) => [snake, config[camel]]),
  );
}

function statusReply(status: JobResult | null): unknown {
  return status && { status: status.status, result: status.result, last_error: status.lastError };
}

function options(raw: unknown) {
  return optionsFromSnakeCase((raw ?? {}) as Record<string, unknown>);
}

/** Executes adapter commands against one active producer. */
class Adapter {
  private producer: Producer | undefined;

  private async use(producer: Producer): Promise<void> {
    const old = this.producer;
    this.producer = producer;
    await old?.close();
  }

  private active(): Producer {
    this.producer ??= Producer.fromConfigFile();
    return this.producer;
  }

  private ops: Record<string, (c: Command) => Promise<unknown>> = {
    configure: async (c) => {
      await this.use(new Producer(producerConfig(c.config)));
      return null;
    },
    load_config: async (c) => {
      const loaded = loadConfig({ path: typeof c.path === "string" ? c.path : undefined }).config;
      const config = producerConfigFrom(loaded);
      const dir = loaded.jobCatalog;
      await this.use(new Producer({ ...config, catalog: dir ? JobCatalog.load(dir) : undefined }));
      return snakeConfig(config);
    },
    enqueue: (c) =>
      this.active().enqueue(c.function_name as string, c.params as never, options(c.options)),
    enqueue_with_rate_limit: (c) =>
      this.active().enqueueWithRateLimit(
        c.function_name as string,
        c.params as never,
        options(c.options) as never,
      ),
    enqueue_with_debounce: (c) =>
      this.active().enqueueWithDebounce(
        c.function_name as string,
        c.params as never,
        options(c.options) as never,
      ),
    enqueue_many: (c) => {
      if (!Array.isArray(c.items)) throw new RrqError("invalid_argument", "items must be a list");
      const items: BulkItem[] = (c.items as Record<string, unknown>[]).map((item) => ({
        functionName: item.function_name as string,
        params: item.params as never,
        options: options(item.options),
      }));
      return this.active().enqueueMany(items);
    },
    get_job_status: async (c) => statusReply(await this.active().getJobStatus(c.job_id as string)),
    wait_for_completion: async (c) =>
      statusReply(
        await this.active().waitForCompletion(c.job_id as string, {
          timeoutSeconds: (c.timeout_seconds as number | undefined) ?? undefined,
          blockIntervalSeconds: (c.block_interval_seconds as number | undefined) ?? undefined,
        }),
      ),
    cancel: async (c) => {
      const r = await this.active().cancel(c.job_id as string);
      return r.reason === undefined
        ? { cancelled: r.cancelled, status: r.status }
        : { cancelled: r.cancelled, status: r.status, reason: r.reason };
    },
  };

  /** Handles one command line; never throws. */
  async handle(line: string): Promise<Reply> {
    let command: Command;
    try {
      command = JSON.parse(line) as Command;
    } catch (error) {
      return failure(null, "adapter_error", `malformed command line: ${(error as Error).message}`);
    }
    if (typeof command !== "object" || command === null || typeof command.op !== "string")
      return failure(null, "adapter_error", "a command is an object with a string 'op'");
    const id = command.id ?? null;
    const op = this.ops[command.op];
    if (!op) return failure(id, "adapter_error", `unknown op '${command.op}'`);
    try {
      return { id, ok: true, result: (await op(command)) ?? null };
    } catch (error) {
      if (error instanceof InvalidParamsError)
        return {
          id,
          ok: false,
          error: { code: error.code, message: error.message, field: error.field },
        };
      if (error instanceof RrqError) return failure(id, error.code, error.message);
      return failure(id, "adapter_error", `${(error as Error).name}: ${(error as Error).message}`);
    }
  }

  async close(): Promise<void> {
    await this.producer?.close();
  }
}

function failure(id: unknown, code: string, message: string): Reply {
  return { id, ok: false, error: { code, message } };
}

const adapter = new Adapter();
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue;
  process.stdout.write(`${JSON.stringify(await adapter.handle(line))}\n`);
}
await adapter.close();
process.exit(0);
