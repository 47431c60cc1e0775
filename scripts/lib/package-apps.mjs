// The small projects the packaging check (scripts/packages-check.mjs) writes outside the
// repository. One application directory holds the orchestrator (the packed npm tarballs), a
// Python virtualenv with the built wheel, and an rrq.toml routing three queues to three runners:
// `py` to Python handlers (the wheel's `rrqkit-runner`), `rs` to a Rust binary built from the
// packaged crate in a `cargo new` project of its own, and `js` to a Node handler
// (`@rrqkit/runner`). Each language then enqueues one job to its queue with its own installed
// producer, waits for it, prints one JSON line and exits 1 unless it completed with the expected
// result.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** Seconds each enqueue program waits for its job. */
export const JOB_WAIT_SECONDS = 60;

/** Name of the Rust project's package and of its runner binary. */
export const RUST_APP = "rrqkit-packages-app";

/** Name of the Rust project's enqueue binary. */
export const RUST_ENQUEUE = "rrqkit-packages-enqueue";

const rrqToml = (dsn, rustRunner) => `[rrq]
redis_dsn = "${dsn}"
default_runner_name = "node"

[rrq.routing]
py = "python"
rs = "rust"
js = "node"

[rrq.runners.python]
cmd = [".venv/bin/rrqkit-runner", "--settings", "handlers:registry"]
pool_size = 1

[rrq.runners.rust]
cmd = ["${rustRunner}"]
pool_size = 1

[rrq.runners.node]
cmd = ["node", "runner.mjs"]
pool_size = 1
`;

const handlersPy = `from rrqkit import ExecutionRequest, Registry

registry = Registry()


@registry.handler("double")
async def double(request: ExecutionRequest) -> dict[str, object]:
    return {"doubled": request.params["n"] * 2, "by": "python"}
`;

const enqueuePy = `import asyncio
import json
import sys

from rrqkit import Producer


async def main() -> int:
    async with Producer.from_toml() as producer:  # ./rrq.toml
        job_id = await producer.enqueue("double", {"n": 21}, queue_name="py")
        done = await producer.wait_for_completion(job_id, timeout_seconds=${JOB_WAIT_SECONDS})
    status = done.status if done else "NOT FINISHED"
    result = done.result if done else None
    print(json.dumps({"from": "python", "id": job_id, "status": status, "result": result}))
    return 0 if status == "COMPLETED" and result == {"doubled": 42, "by": "python"} else 1


sys.exit(asyncio.run(main()))
`;

const runnerMjs = `import { Registry, runFromArgs } from "@rrqkit/runner";

const upper = async (request) => ({ upper: request.params.text.toUpperCase() });
await runFromArgs(new Registry().register("upper", upper));
`;

const enqueueMjs = `import { Producer } from "rrqkit";

const producer = Producer.fromConfigFile(); // ./rrq.toml
const id = await producer.enqueue("upper", { text: "node" }, { queueName: "js" });
const done = await producer.waitForCompletion(id, { timeoutSeconds: ${JOB_WAIT_SECONDS} });
await producer.close();
const status = done?.status ?? "NOT FINISHED";
console.log(JSON.stringify({ from: "node", id, status, result: done?.result }));
process.exit(status === "COMPLETED" && done.result?.upper === "NODE" ? 0 : 1);
`;

const cargoToml = (cratePath) => `[package]
name = "${RUST_APP}"
version = "0.1.0"
edition = "2021"
publish = false

[[bin]]
name = "${RUST_APP}"
path = "src/main.rs"

[[bin]]
name = "${RUST_ENQUEUE}"
path = "src/bin/enqueue.rs"

[dependencies]
rrqkit = { path = "${cratePath}" }
# Features the crate enables anyway, so the shared target directory's builds are reused.
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
serde_json = "1"

# The profile of the crate's own repository, for the same reason.
[profile.dev]
debug = 0

[profile.dev.package."*"]
debug = 0
`;

const mainRs = `use rrqkit::{ExecutionRequest, HandlerError, Runner};
use serde_json::{json, Value};

/// \`sum {numbers: [..]}\` → \`{"sum": …, "by": "rust"}\`.
async fn sum(req: ExecutionRequest) -> Result<Value, HandlerError> {
    let numbers = req.param("numbers").and_then(Value::as_array).cloned().unwrap_or_default();
    let total: f64 = numbers.iter().filter_map(Value::as_f64).sum();
    Ok(json!({ "sum": total, "by": "rust" }))
}

fn main() {
    let mut runner = Runner::new();
    runner.register("sum", sum);
    runner.run_from_args()
}
`;

const enqueueRs = `use std::time::Duration;

use rrqkit::{EnqueueOptions, JobStatus, Producer};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::from_toml(None)?; // ./rrq.toml
    let params = json!({ "numbers": [1, 2, 3.5] }).as_object().cloned().unwrap_or_default();
    let options = EnqueueOptions { queue_name: Some("rs".into()), ..Default::default() };
    let id = producer.enqueue("sum", params, options).await?;
    let timeout = Duration::from_secs(${JOB_WAIT_SECONDS});
    let done = producer.wait_for_completion(&id, timeout, Duration::from_millis(100)).await?;
    let ok = done.as_ref().is_some_and(|d| {
        d.status == JobStatus::Completed && d.result == Some(json!({ "sum": 6.5, "by": "rust" }))
    });
    let line = json!({
        "from": "rust",
        "id": id,
        "status": done.as_ref().map_or("NOT FINISHED", |d| d.status.as_str()),
        "result": done.and_then(|d| d.result),
    });
    println!("{line}");
    std::process::exit(if ok { 0 } else { 1 });
}
`;

function writeAll(dir, files) {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return Object.keys(files);
}

/** Writes rrq.toml, the Python and Node handlers and their enqueue scripts into `dir`. */
export function writeApp(dir, dsn, rustRunner) {
  return writeAll(dir, {
    "rrq.toml": rrqToml(dsn, rustRunner),
    "handlers.py": handlersPy,
    "enqueue.py": enqueuePy,
    "runner.mjs": runnerMjs,
    "enqueue.mjs": enqueueMjs,
  });
}

/**
 * Turns the `cargo new` project in `dir` into a runner (src/main.rs) and an enqueue program
 * (src/bin/enqueue.rs), depending on the extracted crate at `cratePath`.
 */
export function writeRustApp(dir, cratePath) {
  return writeAll(dir, {
    "Cargo.toml": cargoToml(cratePath),
    "src/main.rs": mainRs,
    "src/bin/enqueue.rs": enqueueRs,
  });
}
