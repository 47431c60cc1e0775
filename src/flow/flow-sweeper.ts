import type { Redis } from "ioredis";
import type { ResolvedConfig } from "../config/config.js";
import { LeaderRounds } from "../orchestrator/periodic.js";
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
  private readonly rounds: LeaderRounds;
  private stopping = false;
  readonly intervalMs: number;

  constructor(
    redis: Redis,
    private readonly flow: FlowStore,
    private readonly config: ResolvedConfig,
    workerId: string,
    events: EventBus,
  ) {
    this.intervalMs = Math.max(50, Math.round(config.flowSweepIntervalSeconds * 1000));
    this.rounds = new LeaderRounds({
      redis,
      leaderKey: FLOW_SWEEP_LEADER_KEY,
      workerId,
      intervalMs: this.intervalMs,
      events,
      context: "flow sweep",
      worthIt: async () => (await redis.exists(FLOW_WAITING_KEY)) === 1,
      pass: () => this.pass(),
    });
  }

  /** Starts the rounds; the first is one interval after the start. */
  start(): void {
    this.rounds.start();
  }

  /** Stops the rounds, letting a sweep call in progress finish. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.rounds.stop();
  }

  /** One round: a pass if something is parked and this orchestrator takes the key. Never throws. */
  round(): Promise<void> {
    return this.rounds.round();
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
