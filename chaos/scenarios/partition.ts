import { FaultProxy } from "../lib/fault-proxy.js";
import type { Daemon } from "../lib/daemon.js";
import { sleep } from "../lib/redis.js";
import type { Scenario, ScenarioContext } from "../lib/scenario.js";
import { workCmd, workJobs } from "./common.js";

/** The partition scenario's lease: short, so quick-mode blackholes outlast it. */
const LEASE_SECONDS = 3;
/**
 * The partitioned daemon's command timeout: above the worst round trip of the latency phases
 * (500 ms each way plus a loaded Redis), below the lease.
 */
const COMMAND_TIMEOUT_SECONDS = 2;

/** What the partitioned daemon logged about abandoned attempts. */
interface AbandonLine {
  at: number;
  count: number;
  ids: string[];
}

/** State shared between run() and verify(). */
const runs = new WeakMap<
  ScenarioContext,
  {
    daemon: Daemon;
    abandonedInHealth: number;
    longIds: Set<string>;
    /** [start, end] of each latency phase, ms. */
    slow: Array<[number, number]>;
  }
>();

/**
 * One orchestrator's Redis link goes through a {@link FaultProxy}; the others talk to Redis
 * directly. The proxy alternates silent partitions (blackhole: sockets open, no bytes flow;
 * 3–6 s in quick mode, 30–70 s in full mode, always past the lease) with slow phases (50–500 ms
 * each way, which must cause no spurious lease expiry). The partitioned daemon must notice the
 * silence, abandon the attempts whose leases expired (cancelled at the runner, nothing written),
 * and say how many when the link is back; the other daemons recover and finish those jobs.
 * Fencing must drop every write the partitioned daemon tries for a job run elsewhere.
 */
export const partition: Scenario = {
  name: "partition",
  description: "blackhole (past the lease) and 50–500 ms latency on one orchestrator's Redis link",
  async run(ctx) {
    const direct = ctx.settings({
      lease_seconds: LEASE_SECONDS,
      lease_renew_interval_seconds: 0.5,
    });
    const proxy = new FaultProxy({ port: ctx.redis.port });
    await proxy.listen();
    try {
      const runners = { work: ctx.runner(workCmd(), { pool_size: 2, max_in_flight: 6 }) };
      const partitioned = await ctx.startDaemon(
        {
          ...direct,
          redis_dsn: proxy.url(),
          redis_command_timeout_seconds: COMMAND_TIMEOUT_SECONDS,
        },
        runners,
      );
      await Promise.all([1, 2].map(() => ctx.startDaemon(direct, runners)));
      const total = ctx.size(150, 2500);
      // a fifth run past the lease, so a partition finds attempts that are still running
      const long = workJobs(ctx, Math.floor(total / 5), [5000, ctx.quick ? 9000 : 20_000], {
        maxRetries: 4,
        timeout: 60,
      });
      // mixed in at random, so every partition finds some of them running
      const jobs = workJobs(ctx, total - long.length, [200, 2500], { maxRetries: 4 });
      for (const job of long) jobs.splice(ctx.rng.int(0, jobs.length), 0, job);
      const ids = await ctx.enqueue(jobs);
      const longSet = new Set(long);
      const longIds = new Set(ids.filter((_, i) => longSet.has(jobs[i]!)));
      const slow: Array<[number, number]> = [];
      await ctx.injectWhileRunning(ctx.size(2, 6), [800, 1500], async (n) => {
        if (n % 2 === 1) {
          const ms = ctx.rng.int(50, 500);
          const forMs = ctx.rng.int(3000, ctx.quick ? 5000 : 15_000);
          proxy.mode({ kind: "latency", ms });
          ctx.fault("link_latency", [], `${partitioned.name} +${ms} ms each way for ${forMs} ms`);
          const start = Date.now();
          await sleep(forMs);
          proxy.mode({ kind: "pass" });
          slow.push([start, Date.now()]);
          return true;
        }
        const affected = await ctx.activeJobsOf(partitioned);
        if (affected.length === 0) return false;
        const forMs = ctx.quick ? ctx.rng.int(3500, 6000) : ctx.rng.int(30_000, 70_000);
        proxy.mode({ kind: "blackhole" });
        ctx.fault("link_blackhole", affected, `${partitioned.name} for ${forMs} ms`);
        await sleep(forMs);
        proxy.mode({ kind: "pass" });
        return true;
      });
      // The record is rewritten when the link comes back: read it before shutdown removes it.
      await sleep(2000);
      const raw = await ctx.redis.client.get(
        (await ctx.redis.client.keys(`rrq:health:worker:${partitioned.workerPrefix}*`))[0] ?? "-",
      );
      const health = raw ? (JSON.parse(raw) as { abandoned_attempts?: number }) : {};
      runs.set(ctx, {
        daemon: partitioned,
        abandonedInHealth: health.abandoned_attempts ?? -1,
        longIds,
        slow,
      });
    } finally {
      proxy.mode({ kind: "pass" });
      // the daemons keep their connections through it until they stop; closing it now would
      // be a reset, not part of the scenario: it goes when this process ends
      ctx.notes.push(`proxy: ${proxy.accepted} connections accepted`);
    }
  },
  async verify(ctx) {
    const state = runs.get(ctx);
    if (!state) return;
    await checkNoExpiryWhenSlow(ctx, state.daemon, state.slow);
    const lines = abandonLines(state.daemon);
    const abandoned = lines.reduce((sum, l) => sum + l.count, 0);
    const reported = reconnectCounts(state.daemon);
    ctx.notes.push(
      `partitioned daemon abandoned ${abandoned} attempts in ${lines.length} partitions ` +
        `(reconnect lines: ${reported}; health record: ${state.abandonedInHealth})`,
    );
    const violation = (detail: string) =>
      ctx.extraViolations.push({ kind: "scenario_error", detail });
    const hitLong = ctx.faults.some(
      (f) => f.kind === "link_blackhole" && f.affected.some((id) => state.longIds.has(id)),
    );
    if (hitLong && lines.length === 0)
      violation("a blackhole past the lease, over jobs running past it, abandoned no attempt");
    if (reported !== abandoned)
      violation(`abandoned ${abandoned} attempts but the reconnect lines count ${reported}`);
    if (state.abandonedInHealth !== abandoned)
      violation(
        `abandoned ${abandoned} attempts but the health record says ${state.abandonedInHealth}`,
      );
    // every abandoned attempt named was run again after the partition began (by whoever
    // recovered it, possibly before the partitioned daemon gave it up)
    ctx.execLog.poll();
    const blackholes = ctx.faults.filter((f) => f.kind === "link_blackhole");
    for (const line of lines) {
      const began = Math.max(...blackholes.filter((f) => f.at <= line.at).map((f) => f.at));
      for (const id of line.ids) {
        if (!ctx.jobs.has(id)) continue;
        const again = ctx.execLog.entries.some((e) => e.job_id === id && e.ts_ms > began);
        if (!again) violation(`abandoned job ${id} never ran again after the partition began`);
      }
    }
  },
};

/**
 * Latency is not a partition: no run of the slowed daemon may end as `recovered` (its lease
 * expired) during a latency phase or one lease after it.
 */
async function checkNoExpiryWhenSlow(
  ctx: ScenarioContext,
  daemon: Daemon,
  slow: Array<[number, number]>,
): Promise<void> {
  // a lease after the phase, unless a blackhole starts before that
  const blackholes = ctx.faults.filter((f) => f.kind === "link_blackhole").map((f) => f.at);
  const windowEnd = (end: number) =>
    Math.min(end + LEASE_SECONDS * 1000, ...blackholes.filter((at) => at >= end));
  const ids = [...ctx.jobs.keys()];
  const pipeline = ctx.redis.client.pipeline();
  for (const id of ids) pipeline.hgetall(`rrq:job:${id}`);
  const replies = (await pipeline.exec()) ?? [];
  replies.forEach(([, value], i) => {
    const hash = (value ?? {}) as Record<string, string>;
    for (let k = 1; k <= Number(hash.runs ?? 0); k++) {
      if (hash[`run_${k}_outcome`] !== "recovered") continue;
      if (!hash[`run_${k}_worker`]?.startsWith(daemon.workerPrefix)) continue;
      const ended = Date.parse(hash[`run_${k}_ended_at`] ?? "");
      const during = slow.find(([a, b]) => ended >= a && ended <= windowEnd(b));
      if (during)
        ctx.extraViolations.push({
          kind: "scenario_error",
          detail: `job ${ids[i]}: ${daemon.name}'s lease expired during added latency (run ${k})`,
        });
    }
  });
}

/** The "abandoning N running attempt(s)" lines of a daemon's JSON log. */
function abandonLines(daemon: Daemon): AbandonLine[] {
  return daemon.grep(/abandoning \d+ running attempt/, 1000).map((raw) => {
    const entry = JSON.parse(raw) as { msg: string; time?: number | string };
    const count = Number(/abandoning (\d+)/.exec(entry.msg)![1]);
    const list = entry.msg.slice(entry.msg.lastIndexOf("): ") + 3).replace(/ and \d+ more$/, "");
    const at = typeof entry.time === "number" ? entry.time : Date.parse(String(entry.time));
    return { at, count, ids: list.split(", ").filter(Boolean) };
  });
}

/** Sum of the attempts the reconnect lines of a daemon's JSON log say were abandoned. */
function reconnectCounts(daemon: Daemon): number {
  return daemon
    .grep(/redis reachable again/, 1000)
    .map((raw) => Number(/(\d+) attempt\(s\) were abandoned/.exec(raw)?.[1] ?? 0))
    .reduce((a, b) => a + b, 0);
}
