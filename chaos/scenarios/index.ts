import type { Scenario } from "../lib/scenario.js";
import {
  exitAtStart,
  garbageFrames,
  ignoreCancel,
  oversizedFrames,
  silentRunner,
} from "./bad-runners.js";
import { cancelStorm } from "./cancel-storm.js";
import { clockSkew } from "./clock-skew.js";
import { flowControl } from "./flow-control.js";
import { malformedJobs } from "./malformed-jobs.js";
import { maxmemory } from "./maxmemory.js";
import { partition } from "./partition.js";
import { orchestratorSigkill, orchestratorSigstop } from "./orchestrator-faults.js";
import { redisRestart } from "./redis-restart.js";
import { resetStorm } from "./reset-storm.js";
import { runnerSigkill } from "./runner-sigkill.js";

/** Every scenario, in run order. */
export const SCENARIOS: Scenario[] = [
  runnerSigkill,
  orchestratorSigkill,
  orchestratorSigstop,
  redisRestart,
  garbageFrames,
  oversizedFrames,
  silentRunner,
  exitAtStart,
  ignoreCancel,
  malformedJobs,
  clockSkew,
  partition,
  maxmemory,
  resetStorm,
  cancelStorm,
  flowControl,
];
