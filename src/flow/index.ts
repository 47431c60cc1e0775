/**
 * Flow control on the orchestrator's side (README "Flow control"): the claim's per-queue flow
 * config, the order queues are claimed in, what happens after an attempt (slot release, breaker
 * record) and the sweeper that repairs what releases missed. The Redis side is
 * src/store/flow-store.ts and the claim script.
 */
export { breakerSpec, buildFlowConfig, BreakerScopes, periodMs } from "./flow-config.js";
export type { BreakerScope, WireFlowConfig } from "./flow-config.js";
export { breakerOutcome, FlowHooks, holdsFlow } from "./flow-hooks.js";
export type { BreakerOutcome, EndedAttempt, Persist } from "./flow-hooks.js";
export { FLOW_SWEEP_LEADER_KEY, FlowSweeper, SWEEP_CHUNK } from "./flow-sweeper.js";
export {
  claimState,
  PausedQueues,
  QueueClaims,
  QueueSchedule,
  queuePlan,
} from "./queue-schedule.js";
export type {
  ClaimReply,
  ClaimRound,
  ClaimState,
  ClaimStep,
  QueuePlan,
  QueueStrategy,
} from "./queue-schedule.js";
