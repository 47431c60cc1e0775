import type { Command } from "commander";
import { registerCheck } from "./check.js";
import { registerDashboard } from "./dashboard.js";
import { registerDebug } from "./debug.js";
import { registerDlq } from "./dlq.js";
import { registerEnqueue } from "./enqueue.js";
import { registerJob } from "./job.js";
import { registerJobs } from "./jobs.js";
import { registerQueue } from "./queue.js";
import { registerRunner } from "./runner.js";
import type { CliContext } from "./shared.js";
import { registerStats } from "./stats.js";
import { shortUsageErrors } from "./usage-errors.js";
import { registerWorker } from "./worker.js";

/**
 * Registers every command group on the program (one module per group), each printing short
 * usage errors (see usage-errors.ts).
 */
export function registerCommands(program: Command, ctx: CliContext): void {
  registerWorker(program, ctx);
  registerEnqueue(program, ctx);
  registerCheck(program, ctx);
  registerQueue(program, ctx);
  registerJob(program, ctx);
  registerJobs(program, ctx);
  registerDlq(program, ctx);
  registerDebug(program, ctx);
  registerStats(program, ctx);
  registerRunner(program, ctx);
  registerDashboard(program, ctx);
  shortUsageErrors(program);
}

export {
  ExitCode,
  exitCodeFor,
  processIo,
  type CliContext,
  type CliIo,
  type GlobalOptions,
} from "./shared.js";
