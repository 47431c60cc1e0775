import type { Redis } from "ioredis";
import { formatTimestamp } from "../store/encoding.js";
import { controlChannel, ControlMessage, quietKey } from "./keys.js";

/**
 * The operator's side of the quiet switch (`rrq worker quiet|resume`, design §E). The key is
 * the truth (the worker re-reads it on every heartbeat); the PUBLISH makes a live worker act
 * within a round trip. Both in one MULTI so a reader never sees the message without the key.
 */

/** Makes `workerId` quiet: it claims nothing more and finishes what it runs. */
export async function quietWorker(redis: Redis, workerId: string, nowMs = Date.now()) {
  await redis
    .multi()
    .set(quietKey(workerId), formatTimestamp(nowMs))
    .publish(controlChannel(workerId), ControlMessage.quiet)
    .exec();
}

/** Lets `workerId` claim again; true when it was quiet (its key existed). */
export async function resumeWorker(redis: Redis, workerId: string): Promise<boolean> {
  const replies = await redis
    .multi()
    .del(quietKey(workerId))
    .publish(controlChannel(workerId), ControlMessage.resume)
    .exec();
  return Number(replies?.[0]?.[1]) > 0;
}

/** For each id, the time its quiet key was set (RFC 3339), or null when it is not quiet. */
export async function quietSince(
  redis: Redis,
  workerIds: readonly string[],
): Promise<Map<string, string | null>> {
  const values = workerIds.length ? await redis.mget(...workerIds.map(quietKey)) : [];
  return new Map(workerIds.map((id, i) => [id, values[i] ?? null]));
}
