import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { Daemon, renderConfig, type TomlValue } from "../lib/daemon.js";
import { recoveryTimes, scanKeys } from "../lib/invariants.js";
import { sleep } from "../lib/redis.js";
import type { Scenario, ScenarioContext } from "../lib/scenario.js";
import { workCmd, workJobs } from "./common.js";

/**
 * Orchestrators whose host clock is off, as real processes under libfaketime (Debian's
 * `faketime` package, installed when missing): one 30 s ahead, one 30 s behind, one 5 min ahead
 * (quick and full mode alike), all serving the same queues and the same cron entry, while
 * deferred jobs come due and busy daemons are SIGKILLed and replaced (with the same skew).
 *
 * Only the orchestrators are skewed: their runners get the real clock back (LD_PRELOAD and
 * FAKETIME emptied in the runner table's env), so the exec log's start times, which the recovery
 * times are measured from, stay on the host clock, which is redis-server's (same host). The
 * checks beyond the common invariants, all against that clock:
 *
 * - each skewed daemon's health record shows its offset (the skew really applies);
 * - no deferred job leaves PENDING before its queue score (run-at, epoch ms) − tolerance;
 * - no cron state claims a fire time later than now + tolerance; each fire time between the
 *   first and last is enqueued exactly once (none twice, none missing), and every cron job run;
 * - no run of a daemon that was never killed ends "recovered" (no spurious lease expiry);
 * - worst recovery after a SIGKILL ≤ lease + renew interval + {@link RECOVERY_MARGIN_MS}.
 */
export const clockSkew: Scenario = {
  name: "clock-skew",
  description:
    "orchestrators at +30 s, -30 s and +5 min (libfaketime), deferred jobs, cron, SIGKILLs",
  async run(ctx) {
    const lib = ensureLibfaketime();
    const watch = new Watchers(ctx);
    const settings = ctx.settings({
      default_job_timeout_seconds: JOB_TIMEOUT_S,
      cron_jobs: [{ function_name: "work", schedule: CRON_SCHEDULE, params: { ms: 10 } }],
    });
    const runners = {
      work: ctx.runner(workCmd(), {
        pool_size: 2,
        max_in_flight: 6,
        env: { LD_PRELOAD: "", FAKETIME: "" },
      }),
    };
    const start = (skew: string) => startSkewed(ctx, lib, skew, settings, runners);
    const daemons = await Promise.all(SKEWS.map(start));
    await watch.checkOffsets(daemons);
    watch.start();
    await ctx.enqueue(
      workJobs(ctx, ctx.size(120, 5000), [100, 1500], { maxRetries: 4, timeout: JOB_TIMEOUT_S }),
    );
    await watch.enqueueDeferred(ctx.size(40, 1000), ctx.size(8, 60));
    await ctx.injectWhileRunning(
      ctx.size(3, 60),
      ctx.quick ? [800, 1500] : [700, 1500],
      async () => {
        const target = await busiest(ctx, daemons);
        if (!target) return false;
        target.daemon.signal("SIGKILL");
        watch.killed.add(target.daemon.workerPrefix);
        const skew = watch.skewOf.get(target.daemon)!;
        ctx.fault("orchestrator_sigkill", target.active, `${target.daemon.name} at ${skew}`);
        await sleep(ctx.rng.int(200, 1500));
        daemons.splice(daemons.indexOf(target.daemon), 1, await start(skew));
        return true;
      },
    );
    // let the deferred jobs come due and a few more cron fires happen
    while (watch.pendingDeferred() > 0 && (await ctx.openJobs()).length > 0) await sleep(200);
    await watch.stop();
  },
  async verify(ctx) {
    await watchers.get(ctx)?.verify();
  },
};

/**
 * Job timeout, s. The request's deadline is an absolute time on the orchestrator's clock, for
 * runners on its host (which share that clock); here the runners have the real clock, so a
 * deadline from the daemon 30 s behind arrives 30 s short: the timeout leaves room for that.
 */
const JOB_TIMEOUT_S = 120;
/**
 * The deferred jobs' own queue (every daemon serves it and the default one): they are claimed as
 * soon as they are due instead of after the backlog of the default queue, so an early start shows.
 */
const DEFERRED_QUEUE = "deferred";
/** The skews (FAKETIME offsets) of the three daemons. */
const SKEWS = ["+30s", "-30s", "+5m"] as const;
/** Every 2 s: a missed or doubled fire shows within a quick run. */
const CRON_SCHEDULE = "*/2 * * * * *";
const CRON_PERIOD_MS = 2000;
/** Early by less than this is measurement noise (the watcher polls every 50 ms). */
const EARLY_TOLERANCE_MS = 250;
/** Slack over lease + renew interval for a recovery (busy CI hosts). */
const RECOVERY_MARGIN_MS = 5000;

const watchers = new WeakMap<ScenarioContext, Watchers>();

/** libfaketime's multi-threaded library (Node runs threads), installing Debian's package if missing. */
function ensureLibfaketime(): string {
  const found = () =>
    [
      "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
      "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
      "/usr/lib/faketime/libfaketimeMT.so.1",
      "/usr/local/lib/faketime/libfaketimeMT.so.1",
    ].find((path) => existsSync(path));
  const present = found();
  if (present) return present;
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  const apt = (...args: string[]) =>
    spawnSync(root ? "apt-get" : "sudo", root ? args : ["-n", "apt-get", ...args], {
      stdio: "ignore",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    }).status === 0;
  process.stdout.write("libfaketime not found; installing Debian's faketime package (apt-get)\n");
  if (!apt("install", "-y", "-q", "faketime") && apt("update", "-q"))
    apt("install", "-y", "-q", "faketime");
  const installed = found();
  if (!installed)
    throw new Error(
      "clock-skew needs libfaketime: install Debian's 'faketime' package (apt-get install faketime)",
    );
  return installed;
}

/** A daemon whose clock is `skew` off (libfaketime; monotonic clocks left alone for timers). */
async function startSkewed(
  ctx: ScenarioContext,
  lib: string,
  skew: string,
  settings: Record<string, TomlValue>,
  runners: Record<string, Record<string, TomlValue>>,
): Promise<Daemon> {
  const daemon = new Daemon(
    `skewed-${ctx.daemons.length + 1}`,
    ctx.dir,
    renderConfig(settings, runners),
    ["default", DEFERRED_QUEUE],
    { LD_PRELOAD: lib, FAKETIME: skew, FAKETIME_DONT_FAKE_MONOTONIC: "1" },
  ).start();
  ctx.daemons.push(daemon);
  watchers.get(ctx)?.skewOf.set(daemon, skew);
  await daemon.waitReady(ctx.redis.client);
  return daemon;
}

/** FAKETIME "+30s" / "-30s" / "+5m" in ms. */
function skewMs(skew: string): number {
  const match = /^([+-]\d+)([sm])$/.exec(skew);
  if (!match) throw new Error(`unknown skew ${skew}`);
  return Number(match[1]) * (match[2] === "m" ? 60_000 : 1000);
}

/** A random daemon that holds at least one job right now, with those jobs. */
async function busiest(ctx: ScenarioContext, daemons: Daemon[]) {
  const busy: Array<{ daemon: Daemon; active: string[] }> = [];
  for (const daemon of daemons) {
    const active = await ctx.activeJobsOf(daemon);
    if (active.length > 0) busy.push({ daemon, active });
  }
  return busy.length > 0 ? ctx.rng.pick(busy) : undefined;
}

/**
 * The scenario's own observations on the host (= Redis) clock: when each deferred job left
 * PENDING, and every cron state's last_fire as it changes.
 */
class Watchers {
  readonly skewOf = new Map<Daemon, string>();
  /** Worker-id prefixes of SIGKILLed daemons. */
  readonly killed = new Set<string>();
  private readonly deferred = new Map<string, number>();
  private readonly leftPending = new Map<string, number>();
  private readonly early: string[] = [];
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly ctx: ScenarioContext) {
    watchers.set(ctx, this);
  }

  /** Each skewed daemon's health record must show an offset close to its skew. */
  async checkOffsets(daemons: Daemon[]): Promise<void> {
    for (const daemon of daemons) {
      const skew = this.skewOf.get(daemon)!;
      const [key] = await scanKeys(
        this.ctx.redis.client,
        `rrq:health:worker:${daemon.workerPrefix}*`,
      );
      const raw = key ? await this.ctx.redis.client.get(key) : null;
      const offset = raw
        ? (JSON.parse(raw) as { clock_offset_ms?: number }).clock_offset_ms
        : undefined;
      this.ctx.log(`${daemon.name} at ${skew}: clock_offset_ms ${offset}`);
      if (offset === undefined || Math.abs(offset + skewMs(skew)) > 2000)
        this.violation(
          `${daemon.name} runs at ${skew} but its health record says clock_offset_ms ${offset}`,
        );
    }
  }

  /** Enqueues `n` jobs deferred by 1..`maxSeconds` s and records their run-at scores. */
  async enqueueDeferred(n: number, maxSeconds: number): Promise<void> {
    const items = workJobs(this.ctx, n, [50, 400], {
      maxRetries: 4,
      timeout: JOB_TIMEOUT_S,
      queue: DEFERRED_QUEUE,
    }).map((job) => ({
      ...job,
      options: { ...job.options, deferBySeconds: this.ctx.rng.int(1, maxSeconds) },
    }));
    const ids = await this.ctx.enqueue(items);
    const scores = await Promise.all(
      ids.map((id) => this.ctx.redis.client.zscore(`rrq:queue:${DEFERRED_QUEUE}`, id)),
    );
    ids.forEach((id, i) => this.deferred.set(id, Number(scores[i])));
  }

  pendingDeferred(): number {
    return this.deferred.size - this.leftPending.size;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.poll().catch(() => undefined);
        await sleep(50);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private violation(detail: string, job?: string): void {
    this.ctx.extraViolations.push({ kind: "unexpected_outcome", job, detail });
  }

  private async poll(): Promise<void> {
    const redis = this.ctx.redis.client;
    const waiting = [...this.deferred.keys()].filter((id) => !this.leftPending.has(id));
    if (waiting.length > 0) {
      const pipeline = redis.pipeline();
      for (const id of waiting) pipeline.hget(`rrq:job:${id}`, "status");
      const replies = (await pipeline.exec()) ?? [];
      const now = Date.now();
      waiting.forEach((id, i) => {
        const status = replies[i]?.[1] as string | null;
        if (!status || status === "PENDING") return;
        this.leftPending.set(id, now);
        const runAt = this.deferred.get(id)!;
        if (now < runAt - EARLY_TOLERANCE_MS)
          this.violation(`deferred job started ${runAt - now} ms before its run-at time`, id);
      });
    }
    for (const key of await scanKeys(redis, "rrq:cron:*")) {
      const last = Number(await redis.hget(key, "last_fire"));
      // after the reply: the fire time was claimed before now, so one past now is early for sure
      const now = Date.now();
      const tag = `${key}@${last}`;
      if (last > now + EARLY_TOLERANCE_MS && !this.early.includes(tag)) {
        this.early.push(tag);
        this.violation(
          `${key} claims fire time ${new Date(last).toISOString()}, ${last - now} ms in the future`,
        );
      }
    }
  }

  /** Cron exactly-once, spurious recoveries and the recovery bound. */
  async verify(): Promise<void> {
    await this.verifyCron();
    await this.verifySpuriousRecoveries();
    const recoveries = await recoveryTimes(
      this.ctx.redis.client,
      this.ctx.faults,
      this.ctx.execLog,
    );
    const bound = 2000 + 500 + RECOVERY_MARGIN_MS; // baseSettings: lease 2 s, renew 0.5 s
    for (const r of recoveries)
      if (r.ms !== null && r.ms > bound)
        this.violation(
          `recovery after ${r.fault.kind} (${r.fault.detail}) took ${Math.round(r.ms)} ms > lease + renew + ${RECOVERY_MARGIN_MS} ms`,
          r.slowest,
        );
    const soonest = Math.min(
      ...[...this.leftPending].map(([id, at]) => at - this.deferred.get(id)!),
    );
    this.ctx.notes.push(
      `${this.deferred.size} deferred jobs; the soonest was seen out of PENDING ${soonest} ms after its run-at time (early tolerance ${EARLY_TOLERANCE_MS} ms)`,
    );
  }

  private async verifyCron(): Promise<void> {
    const redis = this.ctx.redis.client;
    const checkedUntil = Date.now() - 1000;
    const fires = new Map<number, string[]>();
    for (const key of await scanKeys(redis, "rrq:job:*")) {
      const [fireTime, status] = await redis.hmget(key, "cron_fire_time", "status");
      if (!fireTime) continue;
      const at = Date.parse(fireTime);
      fires.set(at, [...(fires.get(at) ?? []), `${key.slice(8)}:${status}`]);
    }
    const times = [...fires.keys()].sort((a, b) => a - b);
    let missing = 0;
    for (let i = 1; i < times.length; i++)
      missing += Math.round((times[i]! - times[i - 1]!) / CRON_PERIOD_MS) - 1;
    if (times.length < 3) this.violation(`only ${times.length} cron fires in the whole run`);
    if (missing > 0) this.violation(`${missing} cron fire time(s) never enqueued`);
    for (const [at, jobs] of fires) {
      if (jobs.length > 1)
        this.violation(
          `cron fire time ${new Date(at).toISOString()} enqueued ${jobs.length} times`,
        );
    }
    // every cron job due well before the end ran (cron jobs are not tracked jobs)
    const deadline = Date.now() + 15_000;
    for (const [at, jobs] of fires) {
      if (at > checkedUntil) continue;
      const id = jobs[0]!.split(":")[0]!;
      let status = await redis.hget(`rrq:job:${id}`, "status");
      while (status !== "COMPLETED" && Date.now() < deadline) {
        await sleep(200);
        status = await redis.hget(`rrq:job:${id}`, "status");
      }
      if (status !== "COMPLETED")
        this.violation(`cron job of ${new Date(at).toISOString()} is ${status}`, id);
    }
    this.ctx.notes.push(`${times.length} cron fire times, each enqueued once, none missing`);
  }

  private async verifySpuriousRecoveries(): Promise<void> {
    const redis = this.ctx.redis.client;
    for (const id of this.ctx.jobs.keys()) {
      const hash = await redis.hgetall(`rrq:job:${id}`);
      const runs = Math.min(Number(hash.runs ?? 0) || 0, 100);
      for (let k = 1; k <= runs; k++) {
        if (hash[`run_${k}_outcome`] !== "recovered") continue;
        const worker = hash[`run_${k}_worker`] ?? "";
        if (![...this.killed].some((prefix) => worker.startsWith(prefix)))
          this.violation(
            `run ${k} of ${worker}, never killed, ended "recovered" (lease expired under skew)`,
            id,
          );
      }
    }
  }
}
