/**
 * The Python race (issue 25): rrqkit + its Python runner and producer against the queues Python
 * teams would otherwise pick (Celery, RQ, arq, Dramatiq). Filled in by the python-race work.
 */
import type { BenchContext } from "../lib/context.js";

/** Runs every Python-race scenario (no-op and I/O-bound burn-downs, enqueue, latency, memory). */
export async function runPythonRace(ctx: BenchContext): Promise<void> {
  ctx.log("python race: not built yet");
  await Promise.resolve();
}
