// The small application the "new user" check writes outside the repository: Python handlers on
// queue `emails`, Node handlers on `images`, and one enqueue script each in JavaScript (the
// installed `rrqkit` Producer; the same API as from TypeScript) and Python (the installed
// `rrqkit` producer). Each enqueue script sends one job to each queue, waits for both with a
// bound, prints one JSON line per job and exits 1 unless both completed.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** Seconds each enqueue script waits for its jobs. */
export const JOB_WAIT_SECONDS = 40;

const rrqToml = (dsn) => `[rrq]
redis_dsn = "${dsn}"
default_runner_name = "node"

[rrq.routing]
emails = "python"
images = "node"

[rrq.runners.python]
cmd = [".venv/bin/rrqkit-runner", "--settings", "emails:registry"]
pool_size = 1

[rrq.runners.node]
cmd = ["node", "images.mjs"]
pool_size = 1
`;

const emailsPy = `from rrqkit import ExecutionRequest, Registry

registry = Registry()


@registry.handler("send_email")
async def send_email(request: ExecutionRequest) -> dict[str, object]:
    return {"sent_to": request.params["to"], "by": "python"}
`;

const imagesMjs = `import { Registry, runFromArgs } from "@rrqkit/runner";

const registry = new Registry().register("resize_image", async (request) => ({
  resized: request.params.url,
  width: request.params.width,
  by: "node",
}));
await runFromArgs(registry);
`;

const enqueueMjs = `import { Producer } from "rrqkit";

const producer = Producer.fromConfigFile(); // ./rrq.toml
const jobs = [
  ["send_email", { to: "ada@example.com" }, "emails"],
  ["resize_image", { url: "cat.png", width: 64 }, "images"],
];
const done = await Promise.all(
  jobs.map(async ([fn, params, queueName]) => {
    const id = await producer.enqueue(fn, params, { queueName });
    const result = await producer.waitForCompletion(id, { timeoutSeconds: ${JOB_WAIT_SECONDS} });
    const status = result?.status ?? "NOT FINISHED within ${JOB_WAIT_SECONDS} s";
    console.log(JSON.stringify({ from: "typescript", queue: queueName, id, status, result: result?.result }));
    return status === "COMPLETED";
  }),
);
await producer.close();
process.exit(done.every(Boolean) ? 0 : 1);
`;

const enqueuePy = `import asyncio
import json
import sys

from rrqkit import Producer

JOBS = [
    ("send_email", {"to": "grace@example.com"}, "emails"),
    ("resize_image", {"url": "dog.png", "width": 32}, "images"),
]


async def main() -> int:
    async with Producer.from_toml() as producer:  # ./rrq.toml

        async def one(fn: str, params: dict[str, object], queue: str) -> bool:
            job_id = await producer.enqueue(fn, params, queue_name=queue)
            done = await producer.wait_for_completion(job_id, timeout_seconds=${JOB_WAIT_SECONDS})
            status = done.status if done else "NOT FINISHED within ${JOB_WAIT_SECONDS} s"
            line = {"from": "python", "queue": queue, "id": job_id, "status": status}
            print(json.dumps({**line, "result": done.result if done else None}), flush=True)
            return status == "COMPLETED"

        results = await asyncio.gather(*(one(*job) for job in JOBS))
    return 0 if all(results) else 1


sys.exit(asyncio.run(main()))
`;

/** Writes rrq.toml (pointing at `dsn`), the handlers and the enqueue scripts into `dir`. */
export function writeNewUserApp(dir, dsn) {
  const files = {
    "rrq.toml": rrqToml(dsn),
    "emails.py": emailsPy,
    "images.mjs": imagesMjs,
    "enqueue.mjs": enqueueMjs,
    "enqueue.py": enqueuePy,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return Object.keys(files);
}
