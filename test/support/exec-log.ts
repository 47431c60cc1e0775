import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { useProducerFixture, type ProducerFixture } from "./producer-fixture.js";
import { NODE_RUNNER } from "./worker-harness.js";

/**
 * The Node conformance runner's execution log (RRQ_TEST_EXEC_LOG, conformance/handlers.md): one
 * JSON line per handler start, so a test can count attempts as the runner saw them.
 */

/** One handler start. `ts_ms` is the runner's local clock. */
export interface ExecEntry {
  job_id: string;
  attempt: number;
  function_name: string;
  ts_ms: number;
}

/** A producer fixture plus a fresh execution-log path for each test. */
export interface ExecLogFixture extends ProducerFixture {
  /** This test's log (not created until the runner starts a handler). */
  logPath: string;
}

/**
 * Registers the hooks of an end-to-end test file whose runners log every handler start (or,
 * like the raw runner's LIVE_LOG, every request): the producer fixture, a temp directory
 * `rrq-<tag>-*` for the file and a new log path per test (a runner left over from one test
 * cannot write into the next test's log).
 */
export function useExecLogFixture(tag: string): ExecLogFixture {
  const fixture = useProducerFixture() as ExecLogFixture;
  let dir: string | undefined;
  let runs = 0;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `rrq-${tag}-`));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    fixture.logPath = join(dir!, `exec-${++runs}.log`);
  });
  return fixture;
}

/** The runners entry for testConfig: the Node runner as "node", logging handler starts to `logPath`. */
export function loggingNodeRunner(logPath: string): Record<string, unknown> {
  return {
    node: {
      cmd: [process.execPath, NODE_RUNNER],
      pool_size: 1,
      max_in_flight: 8,
      env: { RRQ_TEST_EXEC_LOG: logPath },
    },
  };
}

/** Every handler start in `logPath`, in log order (none when the log does not exist yet). */
export function readExecLog(logPath: string): ExecEntry[] {
  if (!existsSync(logPath)) return [];
  return readFileSync(logPath, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as ExecEntry);
}
