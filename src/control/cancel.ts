import type { Redis } from "ioredis";
import { formatTimestamp } from "../store/encoding.js";
import { eventsKey, jobKey } from "../store/keys.js";
import type { ScriptCaller } from "../store/scripts.js";

/**
 * Why a cancel did nothing (the same names in every producer and the data API):
 * - `not_found`: no such job;
 * - `not_waiting`: its status allows no cancel (finished, or not a status rrqkit knows);
 * - `no_queue`: a waiting job whose hash names no queue;
 * - `not_in_queue`: a waiting job missing from its queue (it is being claimed right now);
 * - `running_unfenced`: running on an orchestrator that cannot cancel it (RRQ's own, which does
 *   not fence its writes: its late success would overwrite the cancel).
 */
export type CancelRefusal =
  "not_found" | "not_waiting" | "no_queue" | "not_in_queue" | "running_unfenced";

/** The refusal message for `running_unfenced` (design §D). */
export const RUNNING_UNFENCED_MESSAGE = "job is running on an orchestrator that cannot cancel it";

/** What job-cancel-2.lua answered, decoded. */
export type CancelReply =
  | { code: "cancelled"; workerId: string | null }
  | { code: "refused"; reason: CancelRefusal; status: string | null };

const REFUSALS: Record<number, CancelRefusal> = {
  0: "not_waiting",
  [-1]: "not_found",
  [-2]: "no_queue",
  [-3]: "not_in_queue",
  [-4]: "running_unfenced",
};

/**
 * Runs job-cancel-2.lua for `jobId`: a waiting job is taken out of its queue, a job running
 * under an rrqkit fence is ended CANCELLED and its holder told on `rrq:cancel:<worker_id>`
 * (the holder stops the handler; every later write of that attempt is fenced off). One atomic
 * step; `workerId` names the holder when the job was running.
 */
export async function runCancel(
  redis: Redis,
  scripts: ScriptCaller,
  jobId: string,
  defaultResultTtlSeconds: number,
  nowMs = Date.now(),
): Promise<CancelReply> {
  const [code, status, worker] = await scripts.run<[number, string, string?]>(
    redis,
    "job-cancel",
    [jobKey(jobId), eventsKey(jobId)],
    [jobId, formatTimestamp(nowMs), defaultResultTtlSeconds],
  );
  if (Number(code) === 1) return { code: "cancelled", workerId: worker ? worker : null };
  const reason = REFUSALS[Number(code)];
  if (!reason) throw new Error(`job-cancel answered an unknown code ${String(code)}`);
  return { code: "refused", reason, status: reason === "not_found" ? null : status };
}
