/** Where the bench finds the programs it runs (all relative to the repository root). */
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const venv = `${root}.venv/bin/`;

export const paths = {
  root,
  /**
   * rrqkit's CLI, compiled (`npm run build`). BENCH_RRQKIT_CLI points the bench at another
   * build (e.g. a copy with a prototype change) for A/B runs.
   */
  rrqkitCli: process.env.BENCH_RRQKIT_CLI ?? `${root}bin/rrq.js`,
  rrqkitDist: `${root}dist/src/cli/main.js`,
  nodeRunner: `${root}runners/node/dist/examples/conformance-runner.js`,
  /** The same handlers as a module, for the in-process runner. */
  nodeHandlers: `${root}runners/node/dist/examples/conformance-handlers.js`,
  pythonRunner: `${venv}rrqkit-conformance-runner`,
  python: `${venv}python`,
  rustRunner: (profile: string) =>
    `${root}runners/rust/target/${profile}/examples/conformance_runner`,
  rustEnqueue: (profile: string) => `${root}runners/rust/target/${profile}/rrqkit-bench-enqueue`,
  rustDir: `${root}runners/rust`,
  rustEnqueueDir: `${root}bench/rust-enqueue`,
  rustTarget: `${root}runners/rust/target`,
  /** RRQ 0.11.1's Rust orchestrator, shipped in the `rrq` wheel (Python dev extra). */
  rrqBinary: `${root}.venv/lib/python3.11/site-packages/rrq/bin/rrq`,
  rrqPythonRunner: `${venv}rrq-runner`,
  benchPy: `${root}bench/py`,
  pyEnqueue: `${root}bench/py/enqueue.py`,
  nodeEnqueue: `${root}bench/node/enqueue.mjs`,
  bullmqWorker: `${root}bench/node/bullmq-worker.mjs`,
  /** The conformance handlers plus `live_echo` (progress and output), for the live scenario. */
  liveRunner: `${root}bench/node/live-runner.mjs`,
  /**
   * The Rust race's peer (apalis + apalis-redis, bench/rust-peer): its own cargo project and
   * target directory, as its dependencies share no build with rrqkit's crate.
   */
  rustPeerDir: `${root}bench/rust-peer`,
  rustPeer: (profile: string) => `${root}bench/rust-peer/target/${profile}/rrqkit-bench-apalis`,
};
