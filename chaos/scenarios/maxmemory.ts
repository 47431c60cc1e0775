import { randomUUID } from "node:crypto";
import { BULK_CHUNK_SIZE, BulkEnqueueError } from "../../src/producer/bulk.js";
import { sleep } from "../lib/redis.js";
import type { Scenario, ScenarioContext } from "../lib/scenario.js";
import { workCmd, workJobs } from "./common.js";

/** What the producers were told, per job id: written, or refused. */
interface Told {
  written: Set<string>;
  refused: Set<string>;
  /** Bulk calls: [ids sent, ids reported written]. */
  bulk: Array<{ sent: string[]; written: string[] }>;
  errors: Map<string, number>;
}

/**
 * Redis at `maxmemory` with `noeviction`: a ballast key pushes memory over the limit for a few
 * seconds at a time, then is deleted (memory frees), while two daemons drain and producers keep
 * enqueueing, one job at a time and in bulk. Under OOM Redis refuses enqueues, claims and
 * result writes; the daemons must wait and drain once memory frees. On top of the invariants:
 * every bulk call wrote all of its jobs or none (or exactly the ids its error reported), every
 * job a producer was told was written reaches a terminal state (it is tracked), and no job a
 * producer was told failed exists.
 */
export const maxmemory: Scenario = {
  name: "maxmemory",
  description: "Redis over maxmemory (noeviction) in bursts while producers enqueue (single, bulk)",
  async run(ctx) {
    await ctx.redis.client.config("SET", "maxmemory-policy", "noeviction");
    const settings = ctx.settings();
    const runners = { work: ctx.runner(workCmd(), { pool_size: 2, max_in_flight: 6 }) };
    await Promise.all([1, 2].map(() => ctx.startDaemon(settings, runners)));
    const told: Told = { written: new Set(), refused: new Set(), bulk: [], errors: new Map() };
    (ctx as ScenarioContext & { told?: Told }).told = told;
    const total = ctx.size(160, 3000);
    await ctx.enqueue(workJobs(ctx, Math.floor(total * 0.25), [300, 2500], { maxRetries: 4 }));
    let producing = true;
    const producer = produce(ctx, told, total - Math.floor(total * 0.25)).finally(() => {
      producing = false;
    });
    // faults while the producer runs or jobs are open (the queue may be empty for a moment
    // between the producer's calls)
    for (let n = 0; n < ctx.size(3, 60); n++) {
      await sleep(ctx.quick ? ctx.rng.int(500, 1000) : ctx.rng.int(600, 1500));
      ctx.execLog.poll();
      if (!producing && (await ctx.openJobs()).length === 0) break;
      const affected = await ctx.activeJobsOf(undefined);
      await overLimit(ctx);
      ctx.fault("redis_oom", affected, "ballast over maxmemory");
      // the first fault always meets a bulk call and a single enqueue
      if (n === 0)
        await Promise.all([produceOnce(ctx, told, 40, true), produceOnce(ctx, told, 1, false)]);
      await sleep(ctx.rng.int(500, ctx.quick ? 2500 : 4000));
      await ctx.redis.client.del("chaos:ballast");
      await ctx.redis.client.config("SET", "maxmemory", "0");
    }
    // the producer finishes its jobs (without faults once these are done)
    await producer;
    await ctx.redis.client.del("chaos:ballast");
    await ctx.redis.client.config("SET", "maxmemory", "0");
    const errors = [...told.errors].map(([k, n]) => `${n}× ${k}`).join(", ");
    ctx.notes.push(
      `producers were told ${told.written.size} jobs written and ${told.refused.size} refused ` +
        `(${told.bulk.length} bulk calls); errors: ${errors || "none"}`,
    );
  },
  async verify(ctx) {
    const told = (ctx as ScenarioContext & { told?: Told }).told;
    if (!told) return;
    // A job a producer was told is written is tracked, so the checker holds it to a terminal
    // state. One it was told is not written must not exist: for a bulk call that failed, the
    // ids beyond its error's writtenIds (all of them for a call of one chunk).
    for (const call of told.bulk) {
      const reported = new Set(call.written);
      const extra: string[] = [];
      for (const id of call.sent)
        if (!reported.has(id) && (await ctx.redis.client.exists(`rrq:job:${id}`)) === 1)
          extra.push(id);
      if (extra.length > 0)
        ctx.extraViolations.push({
          kind: "unexpected_outcome",
          detail: `a bulk call of ${call.sent.length} reported ${call.written.length} written, but ${extra.length} more exist (${extra.slice(0, 5).join(", ")})`,
        });
    }
    for (const id of told.refused) {
      if ((await ctx.redis.client.exists(`rrq:job:${id}`)) === 1)
        ctx.extraViolations.push({
          kind: "unexpected_outcome",
          job: id,
          detail: "the job exists although its producer was told it was not written",
        });
    }
  },
};

/** Sets maxmemory a little above what Redis uses now, then pushes it over with a ballast key. */
async function overLimit(ctx: ScenarioContext): Promise<void> {
  const info = await ctx.redis.client.info("memory");
  const used = Number(/used_memory:(\d+)/.exec(info)![1]);
  await ctx.redis.client.config("SET", "maxmemory", String(used + 256 * 1024));
  // SETRANGE is refused once over the limit; the first one takes memory past it
  await ctx.redis.client.setrange("chaos:ballast", 0, "b".repeat(512 * 1024)).catch(() => 0);
  const probe = await ctx.redis.client.set("chaos:probe", "1").catch((e: Error) => e);
  if (!(probe instanceof Error && /OOM/.test(probe.message)))
    ctx.notes.push("a ballast did not put Redis over maxmemory");
}

/** Enqueues `n` jobs, singly and in bulk, paced to last about as long as the faults. */
async function produce(ctx: ScenarioContext, told: Told, n: number): Promise<void> {
  let left = n;
  while (left > 0) {
    const bulk = ctx.rng.int(0, 1) === 0;
    // now and then (full size) a batch over BULK_CHUNK_SIZE, sent as two chunks
    const big = bulk && !ctx.quick && left > 2 * BULK_CHUNK_SIZE && ctx.rng.int(0, 29) === 0;
    const size = big
      ? Math.min(left, ctx.rng.int(BULK_CHUNK_SIZE + 1, BULK_CHUNK_SIZE + 200))
      : bulk
        ? Math.min(left, ctx.rng.int(5, 30))
        : 1;
    await produceOnce(ctx, told, size, bulk);
    left -= size;
    await sleep(ctx.quick ? ctx.rng.int(250, 600) : ctx.rng.int(400, 1100));
  }
}

/** One enqueue call (bulk or single), tracking exactly what the producer was told. */
async function produceOnce(
  ctx: ScenarioContext,
  told: Told,
  size: number,
  bulk: boolean,
): Promise<void> {
  const items = workJobs(ctx, size, [100, 1200], { maxRetries: 4 }).map((item) => ({
    ...item,
    options: { ...item.options, jobId: randomUUID() },
  }));
  const ids = items.map((i) => i.options.jobId);
  let written: string[];
  try {
    written = bulk
      ? await ctx.producer.enqueueMany(
          items.map((i) => ({ functionName: i.fn, params: i.params, options: i.options })),
        )
      : [await ctx.producer.enqueue(items[0]!.fn, items[0]!.params, items[0]!.options)];
  } catch (error) {
    written = error instanceof BulkEnqueueError ? [...error.writtenIds] : [];
    const oom = /out of memory|OOM/.test((error as Error).message) ? " (OOM)" : "";
    const key = `${(error as { code?: string }).code ?? "error"}${oom}`;
    told.errors.set(key, (told.errors.get(key) ?? 0) + 1);
  }
  const reported = new Set(written);
  for (const id of ids) {
    if (reported.has(id)) {
      told.written.add(id);
      ctx.jobs.set(id, { id, kind: "work", maxRetries: 4, identity: true });
    } else told.refused.add(id);
  }
  if (bulk) told.bulk.push({ sent: ids, written });
}
