/**
 * Scenario 2, enqueue throughput: single enqueues from 1 and from 50 concurrent callers, and
 * bulk enqueues (batches of 100), each producer in its own process (bench/node/enqueue.mjs,
 * bench/py/enqueue.py, bench/rust-enqueue). The clock runs inside the producer process,
 * after its connection is made; the bench then checks the queue holds exactly the jobs sent.
 */
import { existsSync } from "node:fs";
import { rounds, type BenchContext } from "../lib/context.js";
import { BULL_QUEUE, RRQ_QUEUE } from "../lib/consumers.js";
import { paths } from "../lib/paths.js";
import { timedEnqueue } from "../lib/enqueue-run.js";
import { resetServer } from "../lib/redis.js";
import { Case, type ContenderInfo } from "../lib/report.js";

interface Producer extends ContenderInfo {
  command(
    mode: "single" | "bulk",
    jobs: number,
    callers: number,
    batch: number,
  ): [string, string[]];
  bulk: boolean;
}

const BATCH = 100;

export async function runEnqueue(ctx: BenchContext, options: { rust: boolean }): Promise<void> {
  const url = ctx.redisUrl;
  const node =
    (system: string) =>
    (mode: string, jobs: number, callers: number, batch: number): [string, string[]] => [
      process.execPath,
      [paths.nodeEnqueue, system, url, mode, String(jobs), String(callers), String(batch)],
    ];
  const python =
    (system: string) =>
    (mode: string, jobs: number, callers: number, batch: number): [string, string[]] => [
      paths.python,
      [paths.pyEnqueue, system, url, mode, String(jobs), String(callers), String(batch)],
    ];
  const producers: Producer[] = [
    {
      id: "rrqkit-ts",
      label: "rrqkit TypeScript producer",
      system: "rrqkit",
      command: node("rrqkit"),
      bulk: true,
    },
    {
      id: "bullmq",
      label: "BullMQ Queue.add / addBulk",
      system: "bullmq",
      command: node("bullmq"),
      bulk: true,
    },
  ];
  if (existsSync(paths.python)) {
    producers.push({
      id: "rrqkit-python",
      label: "rrqkit Python producer",
      system: "rrqkit",
      command: python("rrqkit"),
      bulk: true,
    });
    producers.push({
      id: "rrq-python",
      label: "RRQ 0.11 Python producer (RRQClient)",
      system: "rrq",
      command: python("rrq"),
      bulk: false,
    });
  }
  if (options.rust) {
    producers.push({
      id: "rrqkit-rust",
      label: "rrqkit Rust producer",
      system: "rrqkit",
      command: (mode, jobs, callers, batch) => [
        paths.rustEnqueue(ctx.rustProfile),
        [url, mode, String(jobs), String(callers), String(batch)],
      ],
      bulk: true,
    });
  }
  const modes = [
    { id: "single-1", mode: "single" as const, callers: 1, jobs: ctx.quick ? 300 : 10_000 },
    { id: "single-50", mode: "single" as const, callers: 50, jobs: ctx.quick ? 300 : 30_000 },
    { id: "bulk", mode: "bulk" as const, callers: 1, jobs: ctx.quick ? 300 : 50_000 },
  ];
  const baselines = { bullmq: "bullmq", rrq: "rrq-python" };
  for (const m of modes) {
    const title =
      m.mode === "bulk"
        ? `bulk enqueue, batches of ${BATCH} (enqueueMany / addBulk)`
        : `single enqueues, ${m.callers} concurrent caller${m.callers > 1 ? "s" : ""}`;
    const c = ctx.addCase(
      new Case(`enqueue/${m.id}`, title, "jobs/s", true, baselines, {
        jobs: m.jobs,
        callers: m.callers,
        batch: m.mode === "bulk" ? BATCH : 1,
      }),
    );
    if (m.mode === "bulk") c.notes.push("RRQ 0.11's Python producer has no bulk enqueue.");
    const list = producers.filter((p) => m.mode !== "bulk" || p.bulk);
    await rounds(ctx, list, async (p, rep) => {
      await resetServer(ctx.redis);
      const jobs = rep < 0 ? Math.ceil(m.jobs / 5) : m.jobs;
      await timedEnqueue(ctx, c, p, rep, jobs, {
        command: p.command(m.mode, jobs, m.callers, BATCH),
        queued: () =>
          p.system === "bullmq"
            ? ctx.redis.llen(`bull:${BULL_QUEUE}:wait`)
            : ctx.redis.zcard(RRQ_QUEUE),
      });
    });
  }
}
