import type { Redis } from "ioredis";
import type { ResolvedConfig } from "../config/config.js";
import { ProducerError } from "../errors.js";
import { Producer, producerConfigFrom } from "../producer/producer.js";
import type { EventBus } from "../telemetry/events.js";
import { PeriodicTask } from "../orchestrator/periodic.js";
import {
  DEATHS_GROUP,
  DEATHS_KEY,
  handlerJobId,
  handlerMatches,
  handlerParams,
  parseDeath,
  type DeathRecord,
} from "./death-record.js";

/** Timing of a {@link DeathHandlers} consumer; the defaults are the documented ones. */
export interface DeathHandlerOptions {
  /** Pause between polls of the stream (default 1000 ms). */
  pollMs?: number;
  /**
   * Entries delivered to a consumer and not acknowledged for this long are taken over by the
   * next poll of any consumer (default 30 000 ms): a consumer that died mid-entry. Tests shorten it.
   */
  minIdleMs?: number;
  /** Entries read per call (default 100). */
  batch?: number;
}

type StreamEntry = [id: string, fields: string[] | null];

/**
 * The death handlers of `[[rrq.death_handlers]]` (README "Death handlers"): for every job that
 * enters a DLQ, each matching handler's function is enqueued once, however many orchestrators
 * run.
 *
 * move-to-dlq-6.lua records each DLQ move in the `rrq:deaths` stream, in the same atomic step as
 * the move. Every orchestrator with handlers configured reads the stream through one consumer
 * group (`rrq:death-handlers`, created at `$`: deaths from before the first such orchestrator are
 * not handled), consumer name = its worker id, so each entry is delivered to one of them. For
 * each entry it enqueues handler i as job `death:<job id>:<runs>:<i>`, skipping an id that
 * already exists, and only then acknowledges the entry. An orchestrator that dies between the
 * delivery and the XACK leaves the entry pending; another one takes it over with XAUTOCLAIM
 * once it has been idle `minIdleMs`, and the fixed job ids make the second pass write nothing
 * the first pass wrote. The enqueue writes exactly what the producer writes for any job.
 */
export class DeathHandlers {
  private loop: PeriodicTask | undefined;
  private groupReady = false;
  private stopping = false;
  private readonly producer: Producer;
  private readonly pollMs: number;
  private readonly minIdleMs: number;
  private readonly batch: number;

  constructor(
    private readonly redis: Redis,
    private readonly config: ResolvedConfig,
    private readonly workerId: string,
    private readonly events: EventBus,
    options: DeathHandlerOptions = {},
  ) {
    // the worker's connection, so handler jobs get the configured producer defaults
    this.producer = new Producer(producerConfigFrom(config), redis);
    this.pollMs = options.pollMs ?? 1000;
    this.minIdleMs = options.minIdleMs ?? 30_000;
    this.batch = options.batch ?? 100;
  }

  /** Whether `config` has any death handler (no consumer runs otherwise). */
  static enabled(config: ResolvedConfig): boolean {
    return config.deathHandlers.length > 0;
  }

  /** Starts polling; the first poll is now. */
  start(): void {
    this.loop = new PeriodicTask(this.pollMs, () => this.tick());
    this.loop.start(true);
  }

  /**
   * Stops polling (an entry in progress is finished). A consumer with no pending entries is
   * removed from the group so worker ids do not pile up there; one with pending entries stays,
   * for another consumer to take them over.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop?.stop();
    if (!this.groupReady) return;
    try {
      const pending = await this.redis.xpending(
        DEATHS_KEY,
        DEATHS_GROUP,
        "-",
        "+",
        1,
        this.workerId,
      );
      if (pending.length === 0)
        await this.redis.xgroup("DELCONSUMER", DEATHS_KEY, DEATHS_GROUP, this.workerId);
    } catch {
      // best effort: a leftover consumer with nothing pending costs a few bytes
    }
  }

  /** One poll: entries a dead consumer left, then new entries. Never throws. */
  async tick(): Promise<void> {
    try {
      await this.ensureGroup();
      await this.takeOverIdle();
      while (!this.stopping) {
        const reply = (await this.redis.xreadgroup(
          "GROUP",
          DEATHS_GROUP,
          this.workerId,
          "COUNT",
          this.batch,
          "STREAMS",
          DEATHS_KEY,
          ">",
        )) as [string, StreamEntry[]][] | null;
        const entries = reply?.[0]?.[1] ?? [];
        await this.handleAll(entries);
        if (entries.length < this.batch) break;
      }
    } catch (error) {
      // the stream or group was deleted (FLUSHALL, a manual DEL): create it again next poll
      if (/NOGROUP/.test((error as Error).message)) this.groupReady = false;
      this.events.emit("worker:error", { context: "death handlers", error: error as Error });
    }
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    try {
      await this.redis.xgroup("CREATE", DEATHS_KEY, DEATHS_GROUP, "$", "MKSTREAM");
    } catch (error) {
      if (!/BUSYGROUP/.test((error as Error).message)) throw error;
    }
    this.groupReady = true;
  }

  /** XAUTOCLAIMs entries pending longer than minIdleMs (any consumer's) and handles them. */
  private async takeOverIdle(): Promise<void> {
    let cursor = "0-0";
    do {
      const [next, entries] = (await this.redis.xautoclaim(
        DEATHS_KEY,
        DEATHS_GROUP,
        this.workerId,
        this.minIdleMs,
        cursor,
        "COUNT",
        this.batch,
      )) as [string, StreamEntry[], string[]?];
      await this.handleAll(entries);
      cursor = next;
    } while (cursor !== "0-0" && !this.stopping);
  }

  private async handleAll(entries: readonly StreamEntry[]): Promise<void> {
    for (const [entryId, fields] of entries) {
      const death = parseDeath(entryId, fields);
      if (death) await this.handle(death);
      await this.redis.xack(DEATHS_KEY, DEATHS_GROUP, entryId);
    }
  }

  /** Enqueues each matching handler's job for one death (an existing job id: nothing). */
  private async handle(death: DeathRecord): Promise<void> {
    const params = handlerParams(death);
    for (const [index, handler] of this.config.deathHandlers.entries()) {
      if (!handlerMatches(handler, death)) continue;
      const jobId = handlerJobId(death, index);
      try {
        await this.producer.enqueue(
          handler.function,
          { ...params },
          {
            jobId,
            queueName: handler.queue,
          },
        );
      } catch (error) {
        if (error instanceof ProducerError && error.code === "duplicate_job_id") continue;
        throw error;
      }
      this.events.emit("death:handled", {
        jobId: death.jobId,
        handler: handler.function,
        handlerJobId: jobId,
      });
    }
  }
}
