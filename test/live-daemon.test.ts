/**
 * Live jobs (issue 23) through the real daemon: `node bin/rrq.js worker run` subprocesses with
 * the Node conformance runner, a private redis-server, and the CLI (`job tail -f`, `job watch`,
 * `job show`) as subprocesses too. live-worker / live-routing test the same features with an
 * in-process Worker; these check what a user sees, and the daemon's own memory.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readExecLog } from "./support/exec-log.js";
import {
  monitorRedis,
  peakRssBytes,
  rrq,
  startDaemon,
  writeDaemonConfig,
  type Daemon,
} from "./support/daemon-process.js";
import { useProducerFixture } from "./support/producer-fixture.js";
import { jobSettled, waitFor } from "./support/worker-harness.js";

const MiB = 1024 * 1024;
/** `output_max_bytes_per_attempt`'s default. */
const OUTPUT_CAP = 8 * MiB;
/** The daemon's memory budget while it streams output (issue 23). */
const RSS_BUDGET = 100 * MiB;
/** Coalesced progress writes allowed per second of handler run time (default 4, plus slack). */
const WRITES_PER_SECOND = 5;

const fixture = useProducerFixture();
let dir: string;
let daemons: Daemon[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "rrq-live-daemon-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  daemons = [];
});

async function start(config: string): Promise<Daemon> {
  const daemon = await startDaemon(config);
  daemons.push(daemon);
  return daemon;
}

/** The percentages `rrq job watch` printed ("<time> ACTIVE 33.3% step 100 of 300"). */
function watchedPercents(out: string): number[] {
  return out
    .trim()
    .split("\n")
    .flatMap((line) => {
      const match = / (\d+(?:\.\d+)?)% /.exec(line);
      return match ? [Number(match[1])] : [];
    });
}

describe("live jobs through the daemon", () => {
  it("a handler writing 10 MB of output in 1 KB chunks is tailed completely by `rrq job tail -f` (up to the 8 MiB cap; the cap is reported), with the daemon's RSS staying under its 100 MB budget", async () => {
    const config = writeDaemonConfig(dir, "output", fixture.redis.url);
    const daemon = await start(config);
    const chunks = 10 * 1024;
    const id = await fixture.producer.enqueue("write_output", { lines: chunks, size: 1024 });
    const tail = await rrq(config, ["job", "tail", id, "-f"]);
    expect(tail.exitCode).toBe(0);
    const marker = `[output truncated: ${chunks * 1024 - OUTPUT_CAP} bytes dropped]\n`;
    expect(tail.stdout.length).toBe(OUTPUT_CAP + marker.length);
    expect(tail.stdout.endsWith(marker)).toBe(true);
    // every byte up to the cap is the handler's (a lost or repeated chunk would change the length)
    expect(/^x+$/.test(tail.stdout.slice(0, OUTPUT_CAP))).toBe(true);
    expect(tail.stderr).toBe("[attempt ended: completed]\n");
    const hash = await jobSettled(fixture.redis.client, id);
    expect(hash.status).toBe("COMPLETED");
    expect(hash.output_dropped_bytes).toBeUndefined();
    // the peak over the daemon's life (VmHWM), read while it still runs; startDaemon runs it as
    // the `rrq` command does, with the 4 MiB semi-space the budget counts on
    expect(peakRssBytes(daemon.pid)).toBeLessThan(RSS_BUDGET);
  });

  it(`a handler reporting progress 100 times a second shows monotonic progress through \`rrq job watch\` with at most ${WRITES_PER_SECOND} Redis progress writes per second of its run time, plus 2`, async () => {
    const config = writeDaemonConfig(dir, "progress", fixture.redis.url);
    await start(config);
    const monitor = await monitorRedis(fixture.redis.port);
    const steps = 300;
    const values = Array.from({ length: steps }, (_, i) => (i + 1) / steps);
    const id = await fixture.producer.enqueue("report_progress", { values, delay_ms: 10 });
    const watch = await rrq(config, ["job", "watch", id]);
    const hash = await jobSettled(fixture.redis.client, id);
    await monitor.stop();

    expect(watch.exitCode).toBe(0);
    expect(watch.stdout.trim().split("\n").at(-1)).toMatch(
      new RegExp(`COMPLETED 100% step ${steps} of ${steps}$`),
    );
    const percents = watchedPercents(watch.stdout);
    expect(percents.length).toBeGreaterThanOrEqual(3);
    expect([...percents].sort((a, b) => a - b)).toEqual(percents);
    expect(percents.at(-1)).toBe(100);

    // progress reaches the job hash through live-hash-1.lua (EVALSHA on rrq:job:<id>)
    const writes = monitor.lines().filter(
      (line) =>
        // a client's command, not the HSET the script runs (MONITOR lists both: "[0 lua]")
        /^\S+ \[\d+ (?!lua\])[^\]]*\] "(evalsha|eval|hset|hmset)" /i.test(line) &&
        line.includes(` "rrq:job:${id}" `) &&
        line.includes(' "progress_message" '),
    );
    const seconds = (Date.parse(hash.completion_time!) - Date.parse(hash.start_time!)) / 1000;
    expect(writes.length).toBeGreaterThanOrEqual(3);
    expect(writes.length).toBeLessThanOrEqual(Math.ceil(seconds * WRITES_PER_SECOND) + 2);
  });

  it("a job requiring gpu waits while only plain runners run, then runs on the gpu runner that joins", async () => {
    const logA = join(dir, "exec-a.log");
    const logB = join(dir, "exec-b.log");
    const configA = writeDaemonConfig(dir, "plain", fixture.redis.url, {
      runnerEnv: { RRQ_TEST_EXEC_LOG: logA },
    });
    const configB = writeDaemonConfig(dir, "gpu", fixture.redis.url, {
      runnerEnv: { RRQ_TEST_EXEC_LOG: logB },
      tables: '[rrq.runner_tags]\nnode = ["gpu"]',
    });
    const plain = await start(configA);
    const other = await fixture.producer.enqueue("echo", {});
    const id = await fixture.producer.enqueue("echo", {}, { requires: ["gpu"] });
    // the plain daemon is claiming: it runs the other job and leaves this one parked
    expect((await jobSettled(fixture.redis.client, other)).run_1_worker).toBe(plain.workerId);
    const parked = await waitFor(async () => {
      const hash = await fixture.redis.client.hgetall(`rrq:job:${id}`);
      return hash.fc_wait ? hash : undefined;
    });
    expect(parked.status).toBe("PENDING");
    expect(parked.runs).toBeUndefined();
    const shown = await rrq(configA, ["job", "show", id]);
    expect(shown.exitCode).toBe(0);
    expect(shown.stdout).toMatch(/Waiting: waiting for a runner with gpu/);

    // how soon it starts (within a second) is live-routing.test.ts's to check, in process
    const gpu = await start(configB);
    const done = await jobSettled(fixture.redis.client, id);
    expect(done).toMatchObject({ status: "COMPLETED", runs: "1", run_1_worker: gpu.workerId });
    expect(readExecLog(logB).map((e) => e.job_id)).toEqual([id]);
    expect(readExecLog(logA).map((e) => e.job_id)).toEqual([other]);
  });
});
