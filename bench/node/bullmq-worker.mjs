// BullMQ consumer for `npm run bench`, run as its own process (like rrqkit's daemon), so its
// CPU and memory are measured the same way.
//
//   node bench/node/bullmq-worker.mjs <redis_url> <queue> <concurrency> <inprocess|sandboxed>
//
// inprocess: the processor runs in this process (BullMQ's default). sandboxed: BullMQ's
// sandboxed processor (bullmq-processor.mjs), one forked child per concurrent job, the
// cross-process comparison with rrqkit's runners. Jobs are `echo` (returns its data) or
// `sleep` ({ms}); with RRQ_TEST_EXEC_LOG set, each handler start is appended to that file as
// `{"job_id","ts_ms"}`, as the rrqkit runners do. Job retention is BullMQ's default (kept).
// Prints "ready" once connected; SIGTERM closes the worker gracefully.
import { Worker } from "bullmq";
import { handle } from "./bullmq-handler.mjs";

const [url, queue, concurrency, mode] = process.argv.slice(2);
const { hostname, port } = new URL(url);
const connection = { host: hostname, port: Number(port), maxRetriesPerRequest: null };
const processor =
  mode === "sandboxed" ? new URL("./bullmq-processor.mjs", import.meta.url) : handle;
const worker = new Worker(queue, processor, {
  connection,
  concurrency: Number(concurrency),
});
worker.on("error", (error) => process.stderr.write(`bullmq worker error: ${error}\n`));
await worker.waitUntilReady();
process.stdout.write("ready\n");
process.once("SIGTERM", () => {
  void worker.close().then(() => process.exit(0));
});
