/**
 * The consumer contenders and their settings (the "best settings" of RESULTS.md).
 *
 * rrqkit + Node runner: one runner process with up to 64 requests in flight (pool_size 1,
 * max_in_flight 64). On this 2-core machine a second runner process only adds contention (the
 * orchestrator, the runner and Redis already share 2 cores); 64 in flight keeps the runner busy
 * while results are written. RRQ's orchestrator gets the same runner and the same numbers.
 * BullMQ: concurrency 50 (the anchor), default job retention.
 */
import type { ConsumerSpec, RunnerSpec } from "./consumers.js";

export const NODE_POOL = 1;
export const NODE_IN_FLIGHT = 64;

const node = (
  transport: RunnerSpec["transport"],
  encoding: RunnerSpec["encoding"],
): RunnerSpec => ({
  lang: "node",
  transport,
  encoding,
  poolSize: NODE_POOL,
  maxInFlight: NODE_IN_FLIGHT,
});

export function rrqkitNode(
  transport: RunnerSpec["transport"],
  encoding: RunnerSpec["encoding"],
): ConsumerSpec {
  return {
    id: `rrqkit-node-${transport}-${encoding}`,
    label: `rrqkit + Node runner (${transport}, ${encoding})`,
    system: "rrqkit",
    runner: node(transport, encoding),
  };
}

/** The rrqkit configuration quoted in the headline (Unix socket, JSON: RRQ's encoding). */
export const OURS_BEST = rrqkitNode("unix", "json");

/**
 * The Node handlers loaded into the daemon (`transport = "inprocess"`): no runner process, the
 * configuration comparable to BullMQ's in-process worker (encoding does not apply). Two channels
 * × 64: faster than one in alternating runs (no runner CPU to compete with), four no better.
 */
export const OURS_INPROCESS: ConsumerSpec = {
  id: "rrqkit-node-inprocess",
  label: "rrqkit + Node handlers in-process",
  system: "rrqkit",
  runner: { ...node("inprocess", "json"), poolSize: 2 },
};

export const OURS_PYTHON: ConsumerSpec = {
  id: "rrqkit-python-unix-msgpack",
  label: "rrqkit + Python runner (unix, msgpack)",
  system: "rrqkit",
  runner: { lang: "python", transport: "unix", encoding: "msgpack", poolSize: 1, maxInFlight: 64 },
};

export const OURS_PYTHON_JSON: ConsumerSpec = {
  id: "rrqkit-python-unix-json",
  label: "rrqkit + Python runner (unix, json)",
  system: "rrqkit",
  runner: { lang: "python", transport: "unix", encoding: "json", poolSize: 1, maxInFlight: 64 },
};

export const OURS_RUST: ConsumerSpec = {
  id: "rrqkit-rust-unix-msgpack",
  label: "rrqkit + Rust runner (unix, msgpack)",
  system: "rrqkit",
  runner: { lang: "rust", transport: "unix", encoding: "msgpack", poolSize: 1, maxInFlight: 64 },
};

export const BULLMQ_INPROCESS: ConsumerSpec = {
  id: "bullmq-inprocess",
  label: "BullMQ Worker, in-process (c=50)",
  system: "bullmq",
  bullmq: { mode: "inprocess", concurrency: 50 },
};

/** BullMQ's sandbox runs one job per forked child; 8 children saturate 2 cores. */
export const BULLMQ_SANDBOXED: ConsumerSpec = {
  id: "bullmq-sandboxed",
  label: "BullMQ Worker, sandboxed (c=8)",
  system: "bullmq",
  bullmq: { mode: "sandboxed", concurrency: 8 },
};

export const RRQ_NODE: ConsumerSpec = {
  id: "rrq-node-tcp-json",
  label: "RRQ 0.11 orchestrator + Node runner (tcp, json)",
  system: "rrq",
  runner: node("tcp", "json"),
};

export const RRQ_PYTHON: ConsumerSpec = {
  id: "rrq-python-tcp-json",
  label: "RRQ 0.11 orchestrator + RRQ Python runner (tcp)",
  system: "rrq",
  runner: {
    lang: "rrq-python",
    transport: "tcp",
    encoding: "json",
    poolSize: 1,
    maxInFlight: 64,
  },
};

/**
 * BENCH_RRQKIT_CLI_B=/path/to/other/bin/rrq.js adds that build as a second rrqkit contender
 * ("rrqkit-B-…", best settings) to the burn-down, for A/B runs of a prototype change.
 */
export function abContenders(): ConsumerSpec[] {
  const cli = process.env.BENCH_RRQKIT_CLI_B;
  if (!cli) return [];
  return [
    {
      ...OURS_BEST,
      id: OURS_BEST.id.replace("rrqkit-", "rrqkit-B-"),
      label: `${OURS_BEST.label} [B: ${cli}]`,
      cli,
    },
  ];
}

/** Every burn-down contender. */
export function burnDownContenders(): ConsumerSpec[] {
  const ours: ConsumerSpec[] = [];
  for (const transport of ["unix", "tcp", "stdio"] as const)
    for (const encoding of ["json", "msgpack"] as const) ours.push(rrqkitNode(transport, encoding));
  ours.push(OURS_INPROCESS);
  return [
    ...ours,
    OURS_PYTHON,
    OURS_PYTHON_JSON,
    OURS_RUST,
    BULLMQ_INPROCESS,
    BULLMQ_SANDBOXED,
    RRQ_NODE,
    RRQ_PYTHON,
    ...abContenders(),
  ];
}

export const BASELINES = { bullmq: BULLMQ_INPROCESS.id, rrq: RRQ_NODE.id };

/**
 * rrqkit's contender in the Python race (bench/scenarios/python-race.ts): the daemon with the
 * Python runner, 1 × 64, JSON frames (orjson in the runner, from the `fast` extra): the daemon
 * decodes JSON for less CPU than MessagePack, which made JSON the cheaper pair in alternating
 * runs. One place, so trying another transport or encoding is a one-line change.
 */
export const PYTHON_RACE_OURS: ConsumerSpec = OURS_PYTHON_JSON;
