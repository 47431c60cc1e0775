import type { Redis } from "ioredis";
import type { ResolvedConfig } from "../config/config.js";
import { PeriodicTask } from "../orchestrator/periodic.js";
import type { FlowStore } from "../store/flow-store.js";
import { FLOW_WAITING_KEY } from "../store/keys.js";
import type { EventBus } from "../telemetry/events.js";

/** The key whose holder sweeps this round (SET NX PX); one orchestrator a round. */
export const FLOW_SWEEP_LEADER_KEY = "rrq:fc:sweep";
/** Wait keys one sweep call looks at (SSCAN COUNT), so one call never holds Redis long. */
export const SWEEP_CHUNK = 500;
/** Most sweep calls one round makes: a huge index is finished by the next rounds. */
const MAX_CALLS_PER_ROUND = 1000;

/**
 * The flow sweeper (README "Flow control"): every `flow_sweep_interval_seconds` one orchestrator
 * (whichever sets `rrq:fc:sweep` first; the key lapses before the next round, so the role moves
 * freely and a dead holder costs one round) walks `rrq:fc:waiting` with flow-sweep-0.lua. It
 * repairs what releases could not do: slots held by jobs whose lock is gone (a crashed worker, a
 * release given up at shutdown), sessions whose head finished elsewhere, breakers whose cool-down
 * ended (the probe) or that closed, parked jobs whose hash is gone. A round costs one EXISTS
 * when nothing is parked.
 */
export class FlowSweeper {
  private loop: PeriodicTask | undefined;
  private stopping = false;
  readonly intervalMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly flow: FlowStore,
    private readonly config: ResolvedConfig,
    private readonly workerId: string,
    private readonly events: EventBus,
  ) {
    this.intervalMs = Math.max(50, Math.round(config.flowSweepIntervalSeconds * 1000));
  }

  /** Starts the rounds; the first is one interval after the start. */
  start(): void {
    this.loop = new PeriodicTask(this.intervalMs, () => this.round());
    this.loop.start(false);
  }

  /** Stops the rounds, letting a sweep call in progress finish. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop?.stop();
  }

  /** One round: a pass if something is parked and this orchestrator takes the key. Never throws. */
  async round(): Promise<void> {
    try {
      if ((await this.redis.exists(FLOW_WAITING_KEY)) === 0) return;
      // lapses a little before the next round, so the role is open again then
      const ttl = Math.max(1, Math.floor(this.intervalMs * 0.9));
      const won = await this.redis.set(FLOW_SWEEP_LEADER_KEY, this.workerId, "PX", ttl, "NX");
      if (won === "OK") await this.pass();
    } catch (error) {
      this.events.emit("worker:error", { context: "flow sweep", error: error as Error });
    }
  }

  /** One pass over rrq:fc:waiting (whoever holds the key); returns how many jobs it unparked. */
  async pass(): Promise<number> {
    let unparked = 0;
    let cursor = "0";
    for (let calls = 0; calls < MAX_CALLS_PER_ROUND && !this.stopping; calls++) {
      const step = await this.flow.sweep(cursor, SWEEP_CHUNK, this.config.sessionOnDead);
      unparked += step.unparked;
      cursor = step.cursor;
      if (cursor === "0") break;
    }
    return unparked;
  }
}
