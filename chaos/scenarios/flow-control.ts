import { join } from "node:path";
import type { EnqueueOptions } from "../../src/producer/options.js";
import type { Daemon } from "../lib/daemon.js";
import { JsonLinesTail } from "../lib/exec-log.js";
import { scanKeys } from "../lib/invariants.js";
import { sleep } from "../lib/redis.js";
import type { Scenario, ScenarioContext } from "../lib/scenario.js";
import { workCmd, workJobs } from "./common.js";

/** One line of the span log the `flow` handlers write (chaos/fixtures/work-runner.mjs). */
interface SpanLine {
  ev: "start" | "end";
  job_id: string;
  request_id: string;
  worker_id: string | null;
  attempt: number;
  pid: number;
  ts_ms: number;
}

/** One attempt as the checker counts it: [start, end) on the runners' clock (epoch ms). */
interface Span {
  job: string;
  request: string;
  worker: string;
  start: number;
  end: number;
}

/** What the scenario enqueued: each capped job's key and cap, each session's jobs in order. */
interface Plan {
  spanLog: string;
  /** Resolved concurrency key → cap (as the claim script resolves it). */
  caps: Map<string, number>;
  /** Job id → its resolved concurrency key. */
  keyOf: Map<string, string>;
  /** Session (ordering key) → job ids in enqueue order. */
  sessions: Map<string, string[]>;
  /** Session → job ids in the order Redis gave them (rrq:fc:order, read before any claim). */
  stored: Map<string, string[]>;
  /** Job ids of the rate-limited key, and its spacing in ms. */
  rated: { ids: Set<string>; spacingMs: number };
}

const plans = new WeakMap<ScenarioContext, Plan>();

const NAMED_LIMIT = "chaos_pair";
const UNKNOWN_LIMIT = "chaos_unknown";
const CAPPED_FN = "flow_capped";
const RATE = { limit: 5, periodSeconds: 1 };

const workerPid = (workerId: string | null | undefined) => {
  const m = /^rrq_worker_(\d+)_/.exec(workerId ?? "");
  return m ? Number(m[1]) : undefined;
};

/** A flow job: sleeps `ms`, fails its first attempt now and then, or every attempt (→ DLQ). */
function flowJob(
  ctx: ScenarioContext,
  fn: string,
  options: EnqueueOptions,
  ms: [number, number],
  permanentFailure = 0,
) {
  const dies = ctx.rng.chance(permanentFailure);
  const retried = !dies && ctx.rng.chance(0.15);
  return {
    fn,
    params: { ms: ctx.rng.int(ms[0], ms[1]), fail_until_attempt: dies ? 99 : retried ? 1 : 0 },
    options: { maxRetries: dies ? 2 : 6, jobTimeoutSeconds: 30, ...options } as EnqueueOptions,
    identity: true,
    expect: dies ? ("FAILED" as const) : ("COMPLETED" as const),
  };
}

/**
 * Builds the jobs: per-key caps (1–3) given at enqueue, a named limit of rrq.toml, a function
 * cap of rrq.toml, a limit name no orchestrator knows (cap 1), a start rate, ordered sessions
 * (some also capped, some with a job that ends in the DLQ: `session_on_dead = "skip"`), and
 * keyless work around them.
 */
async function enqueueAll(ctx: ScenarioContext, plan: Plan): Promise<void> {
  type Item = ReturnType<typeof flowJob> & { key?: string; cap?: number; session?: string };
  const items: Item[] = [];
  const capped = (
    key: string,
    cap: number,
    count: number,
    make: () => ReturnType<typeof flowJob>,
  ) => {
    plan.caps.set(key, cap);
    for (let i = 0; i < count; i++) items.push({ ...make(), key, cap });
  };
  for (let k = 0; k < ctx.size(3, 8); k++) {
    const key = `chaos-k${k}`;
    const cap = 1 + (k % 3);
    capped(key, cap, ctx.size(24, 120), () =>
      flowJob(ctx, "flow", { concurrencyKey: key, concurrencyLimit: cap }, [100, 400], 0.03),
    );
  }
  capped(`limit:${NAMED_LIMIT}`, 2, ctx.size(12, 150), () =>
    flowJob(ctx, "flow", { limit: NAMED_LIMIT }, [60, 300]),
  );
  capped(`function:${CAPPED_FN}`, 2, ctx.size(12, 150), () =>
    flowJob(ctx, CAPPED_FN, {}, [60, 300]),
  );
  capped(`limit:${UNKNOWN_LIMIT}`, 1, ctx.size(5, 40), () =>
    flowJob(ctx, "flow", { limit: UNKNOWN_LIMIT }, [40, 200]),
  );
  for (let i = 0; i < ctx.size(8, 60); i++)
    items.push({
      ...flowJob(ctx, "flow", { concurrencyKey: "chaos-rate", startRate: RATE }, [20, 100]),
    });
  const sharedCap = 2;
  plan.caps.set("chaos-sessions", sharedCap);
  for (let s = 0; s < ctx.size(6, 40); s++) {
    const session = `chaos-s${s}`;
    // Every third session's jobs also share one capped key: both rules at once.
    const extra =
      s % 3 === 2 ? { concurrencyKey: "chaos-sessions", concurrencyLimit: sharedCap } : {};
    for (let i = 0; i < ctx.size(10, 20); i++)
      items.push({
        ...flowJob(ctx, "flow", { orderingKey: session, ...extra }, [100, 500], 0.05),
        session,
        ...(s % 3 === 2 ? { key: "chaos-sessions", cap: sharedCap } : {}),
      });
  }
  const keyless = workJobs(ctx, ctx.size(30, 1000), [50, 500], { maxRetries: 4 });
  const all = [...items, ...keyless].sort(() => ctx.rng.next() - 0.5);
  const ids = await ctx.enqueue(all);
  all.forEach((item, i) => {
    const id = ids[i]!;
    const flow = item as Partial<Item>;
    if (flow.key) plan.keyOf.set(id, flow.key);
    if (flow.session) {
      const list = plan.sessions.get(flow.session) ?? [];
      list.push(id);
      plan.sessions.set(flow.session, list);
    }
    if ((item.options as EnqueueOptions).startRate) plan.rated.ids.add(id);
  });
  for (const session of plan.sessions.keys())
    plan.stored.set(session, await ctx.redis.client.zrange(`rrq:fc:order:${session}`, 0, -1));
}

/** SIGKILLs a daemon holding jobs (its runners die with it) and starts a replacement. */
async function killOne(
  ctx: ScenarioContext,
  daemons: Daemon[],
  start: () => Promise<Daemon>,
): Promise<boolean> {
  const live = daemons.filter((d) => d.alive);
  const busy: Array<{ daemon: Daemon; active: string[] }> = [];
  for (const daemon of live) {
    const active = await ctx.activeJobsOf(daemon);
    if (active.length > 0) busy.push({ daemon, active });
  }
  if (busy.length === 0 || live.length < 2) return false;
  const target = ctx.rng.pick(busy);
  target.daemon.signal("SIGKILL");
  const flowHeld = target.active.filter((id) => plans.get(ctx)!.keyOf.has(id)).length;
  ctx.fault(
    "orchestrator_sigkill",
    target.active,
    `${target.daemon.name} pid ${target.daemon.pid}, ${flowHeld} capped jobs held`,
  );
  await sleep(ctx.rng.int(200, 1200));
  daemons.splice(daemons.indexOf(target.daemon), 1);
  daemons.push(await start());
  return true;
}

/**
 * The attempts that count: starts on a runner whose daemon was not yet SIGKILLed (an orphaned
 * runner may read a request sent before the kill only afterwards: it cannot write, and the
 * orchestrator no longer counts it), ending at the handler's end or at the kill, whichever came
 * first (from the kill on, the attempt is one the lease will give up). An attempt whose lease
 * was lost while its daemon lived (its run ended `recovered` with no kill) was fenced off: its
 * result was never accepted, so it does not count either.
 */
async function countedSpans(ctx: ScenarioContext, plan: Plan): Promise<Span[]> {
  const log = new JsonLinesTail<SpanLine>(plan.spanLog);
  log.poll();
  const killedAt = new Map<number, number>();
  for (const d of ctx.daemons) if (d.killedAt !== undefined) killedAt.set(d.pid, d.killedAt);
  const starts = new Map<string, SpanLine>();
  const ends = new Map<string, number>();
  for (const line of log.entries) {
    if (line.ev === "start") starts.set(line.request_id, line);
    else ends.set(line.request_id, line.ts_ms);
  }
  const hashes = new Map<string, Record<string, string>>();
  const hashOf = async (id: string) => {
    let hash = hashes.get(id);
    if (!hash) hashes.set(id, (hash = await ctx.redis.client.hgetall(`rrq:job:${id}`)));
    return hash;
  };
  const spans: Span[] = [];
  let orphaned = 0;
  let fenced = 0;
  let unended = 0;
  for (const [request, s] of starts) {
    const killed = killedAt.get(workerPid(s.worker_id) ?? -1);
    if (killed !== undefined && s.ts_ms >= killed) {
      orphaned++;
      continue;
    }
    const hash = await hashOf(s.job_id);
    // The run this attempt belongs to: the last claim by its worker that started before it.
    let run: number | undefined;
    for (let k = 1; k <= Number(hash.runs ?? 0); k++)
      if (
        hash[`run_${k}_worker`] === s.worker_id &&
        Date.parse(hash[`run_${k}_started_at`] ?? "") <= s.ts_ms + 100
      )
        run = k;
    const outcome = run === undefined ? undefined : hash[`run_${run}_outcome`];
    if (outcome === "recovered" && killed === undefined) {
      fenced++;
      continue;
    }
    let end = Math.min(ends.get(request) ?? Infinity, killed ?? Infinity);
    if (end === Infinity) {
      // No end line and no kill: the runner died some other way. The orchestrator wrote the
      // run's end after the runner's; take that (later, so stricter).
      unended++;
      end = Date.parse(hash[`run_${run}_ended_at`] ?? "") || Date.now();
    }
    spans.push({ job: s.job_id, request, worker: s.worker_id ?? "", start: s.ts_ms, end });
  }
  ctx.notes.push(
    `${starts.size} flow attempts: ${spans.length} counted, ${orphaned} started on orphaned runners, ${fenced} fenced off, ${unended} without an end line`,
  );
  return spans;
}

/** Most attempts of one key running at once (ends before starts at the same ms). */
function peak(spans: readonly Span[]): { max: number; at: number; jobs: string[] } {
  const events = spans.flatMap((s) => [
    { t: s.start, d: 1, s },
    { t: s.end, d: -1, s },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let best = { max: 0, at: 0, jobs: [] as string[] };
  const open = new Set<Span>();
  for (const e of events) {
    now += e.d;
    if (e.d > 0) open.add(e.s);
    else open.delete(e.s);
    if (now > best.max) best = { max: now, at: e.t, jobs: [...open].map((s) => s.job) };
  }
  return best;
}

/**
 * Concurrency caps and ordered sessions under orchestrator SIGKILLs. Three daemons run capped
 * jobs (caps 1–3 given at enqueue, a named `[rrq.limits]` entry, a function cap, an unknown
 * limit name), a start-rate key, ordered sessions (some of them also capped) and keyless work;
 * busy daemons are SIGKILLed and replaced. Checked beyond the usual invariants, from the
 * handlers' own start and end times: no key ever had more counted attempts running than its
 * cap, no session job started before the previous job of its session had finished (every
 * attempt of it, and its terminal write), and no period held more than limit + 1 claims of the
 * rated key (run records).
 */
export const flowControl: Scenario = {
  name: "flow-control",
  description: "concurrency caps and ordered sessions while orchestrators are SIGKILLed",
  async run(ctx) {
    const plan: Plan = {
      spanLog: join(ctx.dir, "spans.log"),
      caps: new Map(),
      keyOf: new Map(),
      sessions: new Map(),
      stored: new Map(),
      rated: { ids: new Set(), spacingMs: (RATE.periodSeconds * 1000) / RATE.limit },
    };
    plans.set(ctx, plan);
    const settings = ctx.settings({
      session_on_dead: "skip",
      flow_sweep_interval_seconds: 0.5,
      limits: { [NAMED_LIMIT]: { concurrency: 2 } },
      functions: { [CAPPED_FN]: { concurrency: 2 } },
    });
    const runners = {
      work: ctx.runner(workCmd(), {
        pool_size: 2,
        max_in_flight: 6,
        env: { CHAOS_SPAN_LOG: plan.spanLog },
      }),
    };
    // Enqueued before any daemon runs, so each session's order in Redis is read untouched.
    await enqueueAll(ctx, plan);
    const start = () => ctx.startDaemon(settings, runners);
    const daemons = await Promise.all([1, 2, 3].map(() => start()));
    await ctx.injectWhileRunning(ctx.size(3, 30), ctx.quick ? [900, 1500] : [800, 1800], () =>
      killOne(ctx, daemons, start),
    );
  },
  async verify(ctx) {
    const plan = plans.get(ctx);
    if (!plan) return;
    const spans = await countedSpans(ctx, plan);
    const byJob = new Map<string, Span[]>();
    for (const s of spans) byJob.set(s.job, [...(byJob.get(s.job) ?? []), s]);

    // Caps: per resolved key, the peak of overlapping counted attempts.
    const peaks: string[] = [];
    for (const [key, cap] of plan.caps) {
      const keySpans = spans.filter((s) => plan.keyOf.get(s.job) === key);
      const p = peak(keySpans);
      peaks.push(`${key} ${p.max}/${cap}`);
      if (p.max > cap)
        ctx.extraViolations.push({
          kind: "cap_exceeded",
          detail: `concurrency key ${key} (cap ${cap}) had ${p.max} attempts running at ${p.at}: jobs ${p.jobs.join(", ")}`,
        });
    }
    ctx.notes.push(`peak running per key: ${peaks.join(", ")}`);

    // Sessions: enqueue order kept in Redis, and each job's attempts after the previous job's.
    let checked = 0;
    for (const [session, ids] of plan.sessions) {
      const stored = plan.stored.get(session) ?? [];
      if (stored.join(",") !== ids.join(","))
        ctx.extraViolations.push({
          kind: "session_out_of_order",
          detail: `session ${session}: enqueued ${ids.join(", ")}, but rrq:fc:order holds ${stored.join(", ")}`,
        });
      let prevEnd = -Infinity;
      let prevDone = -Infinity;
      let prevId: string | undefined;
      for (const id of stored.length === ids.length ? stored : ids) {
        for (const s of byJob.get(id) ?? []) {
          checked++;
          if (s.start < prevEnd || s.start < prevDone - 50)
            ctx.extraViolations.push({
              kind: "session_out_of_order",
              job: id,
              detail: `session ${session}: request ${s.request} started at ${s.start}, before ${prevId} had finished (its last attempt ended at ${prevEnd}, its terminal write at ${prevDone})`,
            });
        }
        for (const s of byJob.get(id) ?? []) prevEnd = Math.max(prevEnd, s.end);
        const done = await ctx.redis.client.hget(`rrq:job:${id}`, "completion_time");
        prevDone = Date.parse(done ?? "") || prevDone;
        prevId = id;
      }
    }
    ctx.notes.push(`${plan.sessions.size} sessions, ${checked} session attempts checked`);

    // The start rate: claims of the rated key (run records; every claim takes a slot). A job
    // may start up to one spacing after its slot, so a period holds at most limit + 1 starts;
    // counted over a period less 20 ms, for the claiming workers' clock offsets (a few ms).
    const claims: number[] = [];
    for (const id of plan.rated.ids) {
      const hash = await ctx.redis.client.hgetall(`rrq:job:${id}`);
      for (let k = 1; k <= Number(hash.runs ?? 0); k++)
        claims.push(Date.parse(hash[`run_${k}_started_at`] ?? ""));
    }
    claims.sort((a, b) => a - b);
    const gaps = claims.slice(1).map((t, i) => t - claims[i]!);
    const windowMs = RATE.periodSeconds * 1000 - 20;
    let most = { count: 0, from: 0 };
    for (let i = 0, j = 0; i < claims.length; i++) {
      while (claims[i]! - claims[j]! >= windowMs) j++;
      if (i - j + 1 > most.count) most = { count: i - j + 1, from: claims[j]! };
    }
    if (gaps.length)
      ctx.notes.push(
        `start rate ${RATE.limit}/${RATE.periodSeconds}s: ${claims.length} claims, smallest gap ${Math.min(...gaps)} ms (spacing ${plan.rated.spacingMs} ms), at most ${most.count} in one period`,
      );
    if (most.count > RATE.limit + 1)
      ctx.extraViolations.push({
        kind: "rate_exceeded",
        detail: `start rate ${RATE.limit} per ${RATE.periodSeconds} s: ${most.count} claims within ${windowMs} ms from ${new Date(most.from).toISOString()} (at most ${RATE.limit + 1} allowed: a start may trail its slot by up to one spacing)`,
      });

    // Nothing left behind: no session still lists a finished job (it would block the next).
    for (const key of await scanKeys(ctx.redis.client, "rrq:fc:order:*")) {
      const left = await ctx.redis.client.zrange(key, 0, -1);
      if (left.length)
        ctx.extraViolations.push({
          kind: "residue",
          detail: `${key} still holds ${left.join(", ")} after every job finished`,
        });
    }
  },
};
