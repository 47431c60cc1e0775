// Enqueue-throughput helper for `npm run bench` (bench/scenarios/enqueue.ts), for the two Node
// producers: rrqkit's TypeScript producer (compiled, dist/) and BullMQ's Queue.
//
//   node bench/node/enqueue.mjs <rrqkit|bullmq> <redis_url> <single|bulk> <jobs> <callers> <batch>
//
// single: `callers` concurrent loops each await one enqueue (rrqkit `enqueue`, BullMQ `add`)
// until `jobs` are queued; bulk: one caller sends batches of `batch` (`enqueueMany`,
// `addBulk`). Prints {"jobs", "elapsed_ms"}; connection set-up is excluded from the time.
import { performance } from "node:perf_hooks";
import { Queue } from "bullmq";
import { Producer } from "../../dist/src/producer/producer.js";

const [system, url, mode, jobsArg, callersArg, batchArg] = process.argv.slice(2);
const jobs = Number(jobsArg);
const callers = Math.max(1, Number(callersArg));
const batch = Math.max(1, Number(batchArg));

let one;
let many;
let close;
if (system === "rrqkit") {
  const producer = new Producer({ redisDsn: url });
  await producer.getJobStatus("bench-warm-up");
  one = (i) => producer.enqueue("echo", { i });
  many = (lo, hi) => {
    const items = [];
    for (let i = lo; i < hi; i++) items.push({ functionName: "echo", params: { i } });
    return producer.enqueueMany(items);
  };
  close = () => producer.close();
} else if (system === "bullmq") {
  const { hostname, port } = new URL(url);
  const queue = new Queue("bench", { connection: { host: hostname, port: Number(port) } });
  await queue.waitUntilReady();
  await queue.getJobCounts("wait");
  one = (i) => queue.add("echo", { i });
  many = (lo, hi) => {
    const items = [];
    for (let i = lo; i < hi; i++) items.push({ name: "echo", data: { i } });
    return queue.addBulk(items);
  };
  close = () => queue.close();
} else {
  throw new Error(`unknown system ${system}`);
}

const started = performance.now();
if (mode === "single") {
  let next = 0;
  const caller = async () => {
    while (next < jobs) await one(next++);
  };
  await Promise.all(Array.from({ length: callers }, caller));
} else if (mode === "bulk") {
  for (let lo = 0; lo < jobs; lo += batch) await many(lo, Math.min(lo + batch, jobs));
} else {
  throw new Error(`unknown mode ${mode}`);
}
const elapsed = performance.now() - started;
await close();
process.stdout.write(`${JSON.stringify({ jobs, elapsed_ms: elapsed })}\n`);
