//! A small runner with two handlers, used by README.md.
//!
//! `hello_runner (--tcp-socket HOST:PORT | --unix-socket PATH | --stdio) [--encoding msgpack]`

use rrqkit::{ExecutionOutcome, ExecutionRequest, HandlerError, Runner};
use serde_json::{json, Value};

/// `greet {name}` → `{"greeting": "Hello, <name>!"}` (a plain value becomes a success).
async fn greet(req: ExecutionRequest) -> Result<Value, HandlerError> {
    let name = req.param("name").and_then(Value::as_str).unwrap_or("world");
    Ok(json!({ "greeting": format!("Hello, {name}!") }))
}

/// `add {numbers: [..]}` → the sum; asks for a retry in 5 s when `numbers` is missing.
async fn add(req: ExecutionRequest) -> Result<ExecutionOutcome, HandlerError> {
    let Some(items) = req.param("numbers").and_then(Value::as_array) else {
        return Ok(ExecutionOutcome::retry(
            Some("numbers not ready yet"),
            Some(5.0),
        ));
    };
    let mut sum = 0.0;
    for item in items {
        // An error becomes status "error" with error.type "ValueError".
        sum += item
            .as_f64()
            .ok_or_else(|| HandlerError::typed("ValueError", format!("not a number: {item}")))?;
    }
    Ok(ExecutionOutcome::success(json!({ "sum": sum })))
}

fn main() {
    let mut runner = Runner::new();
    runner.register("greet", greet);
    runner.register("add", add);
    runner.run_from_args()
}
