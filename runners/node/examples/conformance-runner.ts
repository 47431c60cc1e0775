/**
 * The standard test-handler set (conformance/handlers.md) served as a runner process. Launched by
 * the conformance harness, the orchestrator's tests and the benchmarks like any runner:
 * `node dist/examples/conformance-runner.js --unix-socket /tmp/x.sock`.
 */
import { runFromArgs } from "../src/index.js";
import registry from "./conformance-handlers.js";

await runFromArgs(registry);
