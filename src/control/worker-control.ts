import type { Redis } from "ioredis";
import { formatTimestamp } from "../store/encoding.js";
import { cancelChannel, controlChannel, ControlMessage, quietKey } from "./keys.js";

/** Where a quiet came from: SIGTSTP here, or `rrq worker quiet` through Redis. */
export type QuietSource = "signal" | "command";

/** What the worker does when the control channels speak. */
export interface ControlHandlers {
  /** A job this worker may be running was cancelled (job-cancel-2.lua published its id). */
  cancel(jobId: string): void;
  /** The quiet switch flipped. */
  quietChanged(quiet: boolean, source: QuietSource): void;
  /** A background failure (a key read or write); the switch keeps its last state. */
  error(context: string, error: Error): void;
}

/**
 * One worker's control room (design §E): the cancel channel `rrq:cancel:<worker_id>` and the
 * quiet switch.
 *
 * The quiet switch is the key `rrq:quiet:worker:<worker_id>` (set by `rrq worker quiet`,
 * deleted by `rrq worker resume` and by the worker's clean exit) plus a PUBLISH of `quiet` /
 * `resume` on `rrq:control:worker:<worker_id>` for immediacy. The key is the truth: the worker
 * re-reads it on every heartbeat and after the subscriber reconnects (a message sent while the
 * link was down is lost; ioredis re-subscribes the channels by itself). SIGTSTP makes the worker
 * quiet at once and writes the key too (retried on each heartbeat until written), so the
 * record, `rrq check` and `rrq worker resume` see and undo it like a command's.
 *
 * Both channels share the worker's existing subscriber connection (the wake-up channels'): no
 * extra connection per worker.
 */
export class WorkerControl {
  private quietNow = false;
  /** A signal's quiet not yet written to the key. */
  private keyWritePending = false;
  /** Bumped by every message: a key read that started before one is stale and ignored. */
  private generation = 0;
  private readonly onMessage = (channel: string, message: string) => this.message(channel, message);
  private readonly onReady = () => void this.refresh();

  constructor(
    private readonly subscriber: Redis,
    private readonly redis: Redis,
    private readonly workerId: string,
    private readonly handlers: ControlHandlers,
  ) {}

  /** True while the worker must claim nothing. */
  get quiet(): boolean {
    return this.quietNow;
  }

  /** Subscribes to both channels, then reads the key (a worker id reused after a quiet). */
  async start(): Promise<void> {
    this.subscriber.on("message", this.onMessage);
    this.subscriber.on("ready", this.onReady);
    await this.subscriber.subscribe(cancelChannel(this.workerId), controlChannel(this.workerId));
    await this.refresh();
  }

  /** Stops listening (the subscriber connection itself belongs to the worker). */
  stop(): void {
    this.subscriber.off("message", this.onMessage);
    this.subscriber.off("ready", this.onReady);
  }

  /** SIGTSTP: quiet at once; the key is written now or on a later heartbeat. */
  quietBySignal(): void {
    this.generation++;
    this.keyWritePending = true;
    this.set(true, "signal");
    void this.refresh();
  }

  /**
   * Brings the switch in line with Redis: writes a signal's pending key, else reads the key.
   * Called on every heartbeat; never throws.
   */
  async refresh(): Promise<void> {
    const generation = this.generation;
    try {
      if (this.keyWritePending) {
        await this.redis.set(quietKey(this.workerId), formatTimestamp(Date.now()));
        if (generation === this.generation) this.keyWritePending = false;
        return;
      }
      const value = await this.redis.get(quietKey(this.workerId));
      if (generation === this.generation) this.set(value !== null, "command");
    } catch (error) {
      this.handlers.error("quiet switch", error as Error);
    }
  }

  /** The worker's clean exit: the key goes with it (a quiet outliving its worker is noise). */
  async clear(): Promise<void> {
    await this.redis.del(quietKey(this.workerId));
  }

  private message(channel: string, message: string): void {
    if (channel === cancelChannel(this.workerId)) {
      this.handlers.cancel(message);
      return;
    }
    if (channel !== controlChannel(this.workerId)) return;
    this.generation++;
    if (message === ControlMessage.quiet) this.set(true, "command");
    else if (message === ControlMessage.resume) {
      this.keyWritePending = false;
      this.set(false, "command");
    }
  }

  private set(quiet: boolean, source: QuietSource): void {
    if (quiet === this.quietNow) return;
    this.quietNow = quiet;
    this.handlers.quietChanged(quiet, source);
  }
}
