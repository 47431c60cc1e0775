import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const at = (relative: string) => fileURLToPath(new URL(`../../${relative}`, import.meta.url));

/** The repository root. */
export const ROOT = at("");
/** The orchestrator CLI (runs dist/, so `npm run build` first). */
export const RRQ_BIN = at("bin/rrq.js");
/** The compiled Node conformance runner (conformance/handlers.md). */
export const NODE_RUNNER = at("runners/node/dist/examples/conformance-runner.js");
/** The Python conformance runner in the repository virtualenv. */
export const PYTHON_RUNNER = at(".venv/bin/rrqkit-conformance-runner");
/** The Rust conformance runner (debug or release build). */
export const RUST_RUNNER = [
  at("runners/rust/target/release/examples/conformance_runner"),
  at("runners/rust/target/debug/examples/conformance_runner"),
].find((p) => existsSync(p));
/** Chaos fixture runners. */
export const WORK_RUNNER = at("chaos/fixtures/work-runner.mjs");
export const FAULTY_RUNNER = at("chaos/fixtures/faulty-runner.mjs");
/** Golden protocol vectors. */
export const VECTORS_DIR = at("protocol/vectors");

/** The launch command of each conformance runner that is built on this machine. */
export function conformanceRunners(): Array<{ name: string; cmd: string[] }> {
  const runners = [{ name: "node", cmd: [process.execPath, NODE_RUNNER] }];
  if (existsSync(PYTHON_RUNNER)) runners.push({ name: "python", cmd: [PYTHON_RUNNER] });
  if (RUST_RUNNER) runners.push({ name: "rust", cmd: [RUST_RUNNER] });
  return runners;
}
