import { FAULTY_RUNNER, NODE_RUNNER, conformanceRunners } from "../lib/paths.js";
import type { Scenario, ScenarioContext } from "../lib/scenario.js";
import { sleep } from "../lib/redis.js";
import type { TomlValue } from "../lib/daemon.js";

const faulty = (
  ctx: ScenarioContext,
  mode: string,
  p: number,
  extra: Record<string, TomlValue> = {},
) =>
  ctx.runner([process.execPath, FAULTY_RUNNER], {
    pool_size: 3,
    max_in_flight: 4,
    ...extra,
    env: { CHAOS_MODE: mode, CHAOS_P: String(p), CHAOS_STATE_DIR: ctx.dir },
  });

const fixtureJobs = (ctx: ScenarioContext, n: number, ms: [number, number], maxRetries: number) =>
  Array.from({ length: n }, () => ({
    fn: "work",
    params: { ms: ctx.rng.int(ms[0], ms[1]) },
    options: { maxRetries, jobTimeoutSeconds: 30 },
    identity: true,
  }));

/**
 * A runner that answers some requests with corrupt frames: random bodies, a zero length, bad
 * UTF-8, non-JSON, a non-map envelope, an unknown type, an invalid response payload, raw noise,
 * half a frame then EOF, the other encoding, and transport-level lies (wrong job_id, missing
 * request_id). The orchestrator must close the connection (decode errors) or fail the request,
 * never crash, restart the process, and retry the job (a transport error counts an attempt).
 */
export const garbageFrames: Scenario = {
  name: "garbage-frames",
  description: "runners that answer with corrupt frames",
  async run(ctx) {
    await ctx.startDaemon(ctx.settings({ default_runner_name: "faulty" }), {
      faulty: faulty(ctx, "garbage", ctx.quick ? 0.08 : 0.03),
    });
    await ctx.enqueue(fixtureJobs(ctx, ctx.size(60, 1500), [10, 150], 12));
  },
  async verify(ctx) {
    // An outcome followed by garbage in the same read was still received (RUNNER_PROTOCOL.md
    // §2.7: frames are delivered in arrival order; the error only ends the connection).
    ctx.fixtureFaults.poll();
    const all = ctx.fixtureFaults.entries;
    for (const f of all.filter((x) => x.variant === "valid_then_noise")) {
      // Another corrupt answer sent before it on the same connection closed it first: then the
      // outcome is rightly lost (the fixture logs each fault when it writes it).
      if (all.some((g) => g !== f && g.pid === f.pid && g.kind === "garbage" && g.ts_ms <= f.ts_ms))
        continue;
      const result = await ctx.redis.client.hget(`rrq:job:${f.job_id}`, "result");
      const by = (JSON.parse(result ?? "null") as { request_id?: string } | null)?.request_id;
      if (by !== f.request_id)
        ctx.extraViolations.push({
          kind: "unexpected_outcome",
          job: f.job_id ?? undefined,
          detail: `outcome dropped: request ${f.request_id} sent its success outcome followed by a bad length prefix in one write; the orchestrator discarded the outcome (the job was completed by ${by ?? "nobody"} instead)`,
        });
    }
  },
};

/**
 * A runner that answers some requests with a length prefix above 16 MiB (and never sends the
 * body): the orchestrator must give up as soon as the header arrives, not wait for 4 GiB. Plus
 * the real Node runner returning outcomes just under the limit (must be stored) and over it
 * (the runtime turns them into an OutcomeTooLarge error; the job ends in the DLQ).
 */
export const oversizedFrames: Scenario = {
  name: "oversized-frames",
  description: "runners that send frames over 16 MiB (and huge valid ones)",
  async run(ctx) {
    await ctx.startDaemon(
      ctx.settings({ default_runner_name: "faulty", runner_routes: { big: "node" } }),
      {
        faulty: faulty(ctx, "oversized", ctx.quick ? 0.08 : 0.03),
        node: ctx.runner([process.execPath, NODE_RUNNER], { pool_size: 1, max_in_flight: 2 }),
      },
      { queues: ["default", "big"] },
    );
    const large = ctx.size(2, 8);
    await ctx.enqueue([
      ...fixtureJobs(ctx, ctx.size(60, 1000), [10, 150], 12),
      ...Array.from({ length: large }, (_, i) => ({
        fn: "large",
        params: { bytes: i % 2 === 0 ? 16 * 1024 * 1024 - 4096 : 16 * 1024 * 1024 + 10 },
        options: { maxRetries: 2, queueName: "big", jobTimeoutSeconds: 60 },
        expect: i % 2 === 0 ? ("COMPLETED" as const) : ("FAILED" as const),
      })),
    ]);
  },
};

/**
 * A runner that never answers some requests (and ignores their cancel), or stalls half-way
 * through a frame. With response_timeout_seconds the orchestrator gives up, sends a cancel,
 * waits runner_cancel_grace_seconds, recycles the process and retries the job. A second runner
 * without a response timeout exercises the job timeout instead: those jobs go to the DLQ as
 * timed out (RRQ's rule), never stay ACTIVE.
 */
export const silentRunner: Scenario = {
  name: "silent-runner",
  description: "runners that never answer (and ignore cancels)",
  async run(ctx) {
    await ctx.startDaemon(
      ctx.settings({
        default_runner_name: "faulty",
        runner_cancel_grace_seconds: 0.5,
        runner_routes: { slow: "mute" },
      }),
      {
        faulty: faulty(ctx, "silent", ctx.quick ? 0.08 : 0.03, { response_timeout_seconds: 1 }),
        mute: faulty(ctx, "silent", 0.3, { pool_size: 1 }),
      },
      { queues: ["default", "slow"] },
    );
    await ctx.enqueue([
      ...fixtureJobs(ctx, ctx.size(60, 800), [10, 150], 12),
      ...Array.from({ length: ctx.size(6, 60) }, () => ({
        fn: "work",
        params: { ms: ctx.rng.int(10, 100) },
        options: { maxRetries: 3, jobTimeoutSeconds: 2, queueName: "slow" },
        identity: true,
        check: undefined,
      })),
    ]);
  },
};

/**
 * Runners that fail to start: after a process retires (it exits while idle), its replacement
 * often exits at once, aborts, never listens (connect timeout) or closes every connection. The
 * pool restarts it with backoff; jobs wait (or are released without an attempt counted) and
 * all complete. Also: a daemon whose runner cannot start even once must exit with an error,
 * not hang, and claim nothing.
 */
export const exitAtStart: Scenario = {
  name: "exit-at-start",
  description: "runners that exit (or never listen) at start-up",
  async run(ctx) {
    await ctx.startDaemon(
      ctx.settings({ default_runner_name: "faulty", runner_connect_timeout_ms: 1000 }),
      { faulty: faulty(ctx, "exit-at-start", 0.5, { pool_size: 2 }) },
    );
    await ctx.enqueue(fixtureJobs(ctx, ctx.size(80, 2000), [5, 80], 10));
    // A daemon whose only runner exits at its very first start.
    const broken = await ctx.startDaemon(
      ctx.settings({ default_runner_name: "dead", runner_connect_timeout_ms: 1000 }),
      { dead: ctx.runner([process.execPath, "-e", "process.exit(7)"], { pool_size: 1 }) },
      { wait: false },
    );
    broken.killedOnPurpose = true; // its exit is expected; checked here
    const exited = await broken.waitExit(30_000);
    if (!exited)
      ctx.extraViolations.push({
        kind: "orchestrator_hang",
        detail: `a daemon whose runner exits at start-up still runs after 30 s:\n${broken.tail(10)}`,
      });
    else if (broken.exit?.code === 0)
      ctx.extraViolations.push({
        kind: "orchestrator_crash",
        detail: `a daemon whose runner cannot start exited 0:\n${broken.tail(10)}`,
      });
    else
      ctx.notes.push(
        `unstartable runner: daemon exited ${broken.exit?.code} (${broken.grep(/error|fail|cannot/i, 1)[0]?.slice(0, 200) ?? ""})`,
      );
    await sleep(10);
  },
};

/**
 * Handlers that ignore their cancel (busy loop / blocking sleep) past the job timeout, on the
 * Node, Python and Rust runners, among ordinary jobs. The orchestrator cancels, waits
 * runner_cancel_grace_seconds, recycles the process; the job goes to the DLQ as timed out and
 * the other jobs of that process are retried.
 */
export const ignoreCancel: Scenario = {
  name: "ignore-cancel",
  description: "handlers that ignore cancel past their timeout (Node, Python, Rust)",
  async run(ctx) {
    const runtimes = conformanceRunners();
    const runners: Record<string, Record<string, TomlValue>> = {};
    const routes: Record<string, string> = {};
    for (const r of runtimes) {
      runners[r.name] = ctx.runner(r.cmd, { pool_size: 2, max_in_flight: 4 });
      routes[`q_${r.name}`] = r.name;
    }
    await ctx.startDaemon(
      ctx.settings({
        default_runner_name: "node",
        runner_routes: routes,
        runner_cancel_grace_seconds: 0.5,
      }),
      runners,
      { queues: Object.keys(routes) },
    );
    const items = [];
    for (const r of runtimes) {
      const n = ctx.size(20, 250);
      for (let i = 0; i < n; i++) {
        const stubborn = i % ctx.size(5, 12) === 0;
        const inspect = !stubborn && ctx.rng.chance(0.5);
        items.push({
          fn: stubborn ? "ignore_cancel" : inspect ? "inspect" : "sleep",
          params: stubborn ? { ms: 2500 } : inspect ? {} : { ms: ctx.rng.int(20, 300) },
          options: {
            maxRetries: 6,
            jobTimeoutSeconds: stubborn ? 1 : 20,
            queueName: `q_${r.name}`,
          },
          identity: inspect,
          tag: r.name,
          expect: stubborn ? ("FAILED" as const) : undefined,
        });
      }
    }
    await ctx.enqueue(items.sort(() => ctx.rng.next() - 0.5));
    // Every ignore_cancel execution is an injected fault (a wedged handler).
    while ((await ctx.openJobs()).length > 0) await sleep(300);
    ctx.execLog.poll();
    for (const e of ctx.execLog.entries.filter((x) => x.function_name === "ignore_cancel"))
      ctx.fault(
        "ignored_cancel",
        [e.job_id],
        `${ctx.jobs.get(e.job_id)?.tag ?? "?"} pid ${e.pid}`,
        e.ts_ms,
      );
  },
};
