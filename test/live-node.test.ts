/**
 * Live jobs with the real runners (issue 23): the conformance handlers report_progress and
 * write_output (conformance/handlers.md) through each runtime's progress / output API, a real
 * Redis and a real orchestrator; tags from [rrq.runner_tags] reach the runner's hello
 * (RRQ_RUNNER_TAGS). RRQ's own rrq-runner (no hello) gets plain v2.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { useProducerFixture, useWorkers } from "./support/producer-fixture.js";
import {
  jobSettled,
  NODE_RUNNER,
  outputClosed,
  tcpPort,
  testConfig,
  type RunningWorker,
} from "./support/worker-harness.js";

const fx = useProducerFixture();
const workers = useWorkers();

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RUNNERS: Record<string, string[]> = {
  node: [process.execPath, NODE_RUNNER],
  python: [join(ROOT, ".venv", "bin", "rrqkit-conformance-runner")],
  rust: [join(ROOT, "runners", "rust", "target", "debug", "examples", "conformance_runner")],
};
const RRQ_RUNNER = join(ROOT, ".venv", "bin", "rrq-runner");

function start(
  extra: Record<string, unknown> = {},
  transport = "unix",
  cmd: string[] = RUNNERS.node!,
  runnerExtra: Record<string, unknown> = {},
): Promise<RunningWorker> {
  const c = testConfig(
    fx.redis.url,
    { default_job_timeout_seconds: 20, ...extra },
    {
      node: {
        cmd,
        ...runnerExtra,
        pool_size: 1,
        max_in_flight: 8,
        transport,
        ...(transport === "tcp" ? { tcp_port: tcpPort() } : {}),
      },
    },
  );
  return workers.start(c);
}

const cells = Object.entries(RUNNERS).flatMap(([name, cmd]) =>
  ["unix", "tcp", "stdio"].map((transport) => ({ name, cmd, transport })),
);

describe.each(cells)("$name runner over $transport", ({ name, cmd, transport }) => {
  it("progress reported 100 times a second is coalesced, the last value stored; output is stored and closed", async () => {
    if (!existsSync(cmd[cmd.length - 1]!)) return void console.warn(`${name} runner not built`);
    await start({ runner_tags: { node: ["gpu"] } }, transport, cmd);
    const sub = fx.redis.client.duplicate();
    let writes = 0;
    await sub.psubscribe("rrq:live:*");
    sub.on("pmessage", (_p, _c, m: string) => {
      if ((JSON.parse(m) as { type: string }).type === "progress") writes++;
    });
    const values = Array.from({ length: 100 }, (_, i) => (i + 1) / 100);
    const started = Date.now();
    const id = await fx.producer.enqueue(
      "report_progress",
      { values, delay_ms: 10 },
      { requires: ["gpu"] },
    );
    const hash = await jobSettled(fx.redis.client, id);
    const seconds = (Date.now() - started) / 1000;
    await sub.quit();
    expect(hash.status).toBe("COMPLETED");
    expect(hash.progress).toBe("1");
    expect(hash.progress_message).toBe("step 100 of 100");
    expect(writes).toBeGreaterThanOrEqual(2);
    expect(writes).toBeLessThanOrEqual(Math.ceil(seconds * 4) + 2);

    const out = await fx.producer.enqueue("write_output", { lines: 3, json: true });
    expect((await jobSettled(fx.redis.client, out)).status).toBe("COMPLETED");
    const page = await outputClosed(fx.redis.client, out);
    expect(page.entries.map((e) => (e.kind === "log" ? e.data : e.kind)).join("")).toBe(
      '{"line":0,"text":"line"}\n{"line":1,"text":"line"}\n{"line":2,"text":"line"}\nclosed',
    );
  });
});

describe.skipIf(!existsSync(RRQ_RUNNER))("RRQ's rrq-runner (no hello)", () => {
  it("is waited for runner_hello_timeout_ms, then gets plain v2 requests and runs jobs", async () => {
    const t0 = Date.now();
    await start(
      { runner_hello_timeout_ms: 300 },
      "tcp",
      [RRQ_RUNNER, "--settings", "rrq_conformance_handlers.settings"],
      {
        env: { PYTHONPATH: join(ROOT, "conformance", "interop") },
      },
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    const id = await fx.producer.enqueue("echo", { a: 1 });
    const hash = await jobSettled(fx.redis.client, id);
    expect(hash.status).toBe("COMPLETED");
    expect(hash.progress).toBeUndefined();
    expect(await fx.redis.client.exists(`rrq:output:${id}:1`)).toBe(0);
  });
});
