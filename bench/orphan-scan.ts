/**
 * What one pass of RRQ's slow-path orphan recovery costs with a large keyspace: the heartbeat's
 * SCAN for `rrq:active:jobs:*`, which walks every key.
 *
 *   npx tsx bench/orphan-scan.ts [--keys 1000000]
 *
 * Starts a private redis-server, creates `--keys` filler keys (DEBUG POPULATE) and one dead
 * worker's active set, then runs, one after the other:
 * - RRQ 0.11's pass: SCAN MATCH rrq:active:jobs:* COUNT 100, calls back to back;
 * - rrqkit's pass (`Recovery.recoverDeadWorkers`): COUNT 1000 with a 10 ms pause after each call.
 * For each it prints the SCAN calls, the wall time, Redis's CPU time (INFO cpu) and this
 * process's CPU time, and the share of one core Redis spent on the pass while it ran.
 */
import { parseArgs } from "node:util";
import type { Redis } from "ioredis";
import { resolveConfig } from "../src/config/config.js";
import { startRedis } from "../src/conformance/redis-server.js";
import { ORPHAN_SCAN, Recovery } from "../src/orchestrator/recovery.js";
import { JobStore } from "../src/store/job-store.js";
import { EventBus } from "../src/telemetry/events.js";
import { readCounters } from "./lib/redis.js";

const { values } = parseArgs({ options: { keys: { type: "string", default: "1000000" } } });
const keys = Number(values.keys);
if (!Number.isInteger(keys) || keys < 1) throw new Error("--keys must be a positive integer");

/** Runs `pass` and prints what it cost. */
async function measure(redis: Redis, label: string, pass: () => Promise<unknown>): Promise<void> {
  const before = await readCounters(redis);
  const [self0, t0] = [process.cpuUsage(), performance.now()];
  await pass();
  const wallMs = performance.now() - t0;
  const self = process.cpuUsage(self0);
  const after = await readCounters(redis);
  const redisMs = (after.cpuSeconds - before.cpuSeconds) * 1000;
  const calls = (after.calls.get("scan") ?? 0) - (before.calls.get("scan") ?? 0);
  console.log(
    `${label}: ${calls} SCAN calls, ${Math.round(wallMs)} ms wall, Redis ${Math.round(redisMs)} ms CPU ` +
      `(${Math.round((redisMs / wallMs) * 100)} % of a core while it ran), this process ` +
      `${Math.round((self.user + self.system) / 1000)} ms CPU`,
  );
}

const server = await startRedis({ extraArgs: ["--enable-debug-command", "local"] });
const redis = server.client(0);
try {
  await redis.call("DEBUG", "POPULATE", String(keys), "filler", "100");
  await redis.zadd("rrq:active:jobs:rrq_worker_1_dead00", 1, "gone-job");
  console.log(`${await redis.dbsize()} keys`);
  await measure(redis, "RRQ 0.11 (COUNT 100, back to back)", async () => {
    let cursor = "0";
    do {
      [cursor] = await redis.scan(cursor, "MATCH", "rrq:active:jobs:*", "COUNT", 100);
    } while (cursor !== "0");
  });
  const recovery = new Recovery(new JobStore(redis), resolveConfig({}), "me", new EventBus());
  await measure(redis, `rrqkit (COUNT ${ORPHAN_SCAN.count}, ${ORPHAN_SCAN.pauseMs} ms pause)`, () =>
    recovery.recoverDeadWorkers(),
  );
} finally {
  await server.stop();
}
