/**
 * Redis names of job control (rrqkit, additive; README "Keys"): the per-worker quiet switch, its
 * control channel and the per-worker cancel channel. Kept beside their users rather than in
 * src/store/keys.ts so this room is self-contained.
 */

/** STRING: present while the worker is quiet; value = RFC 3339 time it was set; no TTL. */
export const quietKey = (workerId: string): string => `rrq:quiet:worker:${workerId}`;

/** Pub/sub channel telling a worker `quiet` or `resume` at once (the key is the truth). */
export const controlChannel = (workerId: string): string => `rrq:control:worker:${workerId}`;

/** Pub/sub channel on which job-cancel-2.lua names a running job the worker must stop. */
export const cancelChannel = (workerId: string): string => `rrq:cancel:${workerId}`;

/** The messages of {@link controlChannel}. */
export const ControlMessage = { quiet: "quiet", resume: "resume" } as const;
