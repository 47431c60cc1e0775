//! The standard test-handler set of `conformance/handlers.md`.
//!
//! Launch: `conformance_runner (--tcp-socket HOST:PORT | --unix-socket PATH | --stdio)
//! [--encoding msgpack]`. With `RRQ_TEST_EXEC_LOG=<path>` every handler invocation appends one
//! JSON line to that file before the handler body runs.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rrqkit::{
    ExecutionOutcome, ExecutionRequest, HandlerError, IntoHandlerOutcome, JobContext, OutcomeError,
    OutcomeStatus, Runner,
};
use serde_json::{json, Value};

fn param<'a>(req: &'a ExecutionRequest, name: &str) -> Option<&'a Value> {
    req.params.get(name).filter(|v| !v.is_null())
}

fn param_u64(req: &ExecutionRequest, name: &str, default: u64) -> u64 {
    param(req, name)
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
        .unwrap_or(default)
}

fn param_str(req: &ExecutionRequest, name: &str) -> Option<String> {
    param(req, name).and_then(|v| v.as_str().map(str::to_string))
}

/// `RRQ_TEST_EXEC_LOG`, read once (every job asks).
fn exec_log_path() -> Option<&'static str> {
    static PATH: OnceLock<Option<String>> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::var("RRQ_TEST_EXEC_LOG")
            .ok()
            .filter(|p| !p.is_empty())
    })
    .as_deref()
}

fn log_execution(req: &ExecutionRequest) {
    let Some(path) = exec_log_path() else {
        return;
    };
    let line = json!({
        "job_id": req.job_id,
        "request_id": req.request_id,
        "attempt": req.context.attempt,
        "function_name": req.function_name,
        "pid": std::process::id(),
    })
    .to_string()
        + "\n";
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write per line, so concurrent runners do not interleave.
        Ok(mut f) => {
            if let Err(e) = f.write_all(line.as_bytes()) {
                eprintln!("exec log write failed: {e}");
            }
        }
        Err(e) => eprintln!("exec log open failed: {e}"),
    }
}

/// Registers `handler` under `name`, logging each invocation first.
fn add<F, Fut>(runner: &mut Runner, name: &str, handler: F)
where
    F: Fn(ExecutionRequest) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoHandlerOutcome,
{
    runner.register(name, move |req: ExecutionRequest| {
        log_execution(&req);
        handler(req)
    });
}

fn signal_number(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let short = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match short {
        "KILL" => libc::SIGKILL,
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "SEGV" => libc::SIGSEGV,
        "ABRT" => libc::SIGABRT,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        other => return other.parse().ok(),
    })
}

fn main() {
    let mut runner = Runner::new();

    // echo and inspect return plain values (→ success); the others return outcomes or errors.
    add(&mut runner, "echo", |req| async move {
        Ok::<_, HandlerError>(Value::Object(req.params))
    });

    add(&mut runner, "inspect", |req| async move {
        Ok::<_, HandlerError>(json!({
            "job_id": req.job_id,
            "request_id": req.request_id,
            "function_name": req.function_name,
            "params": Value::Object(req.params.clone()),
            "context": req.context.to_value(),
        }))
    });

    add(&mut runner, "sleep", |req| async move {
        let ms = param_u64(&req, "ms", 100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ExecutionOutcome::success(json!({ "slept_ms": ms }))
    });

    add(&mut runner, "fail", |req| async move {
        ExecutionOutcome {
            job_id: String::new(),
            request_id: None,
            status: OutcomeStatus::Error,
            result: None,
            error: Some(OutcomeError {
                message: param_str(&req, "message").unwrap_or_else(|| "boom".into()),
                error_type: param_str(&req, "type"),
                code: param_str(&req, "code"),
                details: None,
                traceback: None,
            }),
            retry_after_seconds: None,
            snooze: false,
        }
    });

    add(&mut runner, "throw", |req| async move {
        let message = param_str(&req, "message").unwrap_or_else(|| "boom".into());
        Err::<Value, _>(HandlerError::msg(message))
    });

    add(&mut runner, "retry", |req| async move {
        ExecutionOutcome {
            job_id: String::new(),
            request_id: None,
            status: OutcomeStatus::Retry,
            result: None,
            error: param_str(&req, "message").map(OutcomeError::new),
            retry_after_seconds: param(&req, "after_seconds").and_then(Value::as_f64),
            snooze: false,
        }
    });

    add(&mut runner, "flaky", |req| async move {
        let until = param_u64(&req, "fail_until_attempt", 1);
        let mode = param_str(&req, "mode").unwrap_or_else(|| "error".into());
        let attempt = req.context.attempt;
        if u64::from(attempt) <= until {
            if mode == "retry" {
                ExecutionOutcome {
                    job_id: String::new(),
                    request_id: None,
                    status: OutcomeStatus::Retry,
                    result: None,
                    error: None,
                    retry_after_seconds: Some(0.0),
                    snooze: false,
                }
            } else {
                ExecutionOutcome::error(format!("flaky failure on attempt {attempt}"))
            }
        } else {
            ExecutionOutcome::success(json!({ "attempt": attempt }))
        }
    });

    add(&mut runner, "timeout", |req| async move {
        let message = param_str(&req, "message");
        ExecutionOutcome::timeout(message.as_deref())
    });

    add(&mut runner, "large", |req| async move {
        let bytes = param_u64(&req, "bytes", 1_048_576) as usize;
        ExecutionOutcome::success(json!({ "data": "x".repeat(bytes) }))
    });

    // serde_json's Value cannot hold NaN (it turns one into null), so no Rust handler can return
    // a NaN result: the handler reports what the runtime would (conformance/handlers.md).
    add(&mut runner, "nan", |_req| async move {
        ExecutionOutcome::error("Outcome could not be sent: NaN cannot be encoded")
            .with_error_type("OutcomeNotEncodable")
    });

    add(&mut runner, "crash", |req| async move {
        if let Some(sig) = param_str(&req, "signal") {
            if let Some(n) = signal_number(&sig) {
                // SAFETY: raising a signal at ourselves.
                unsafe {
                    libc::raise(n);
                }
                std::thread::sleep(Duration::from_millis(100));
            } else {
                eprintln!("crash: unknown signal {sig:?}");
            }
        }
        let code = param(&req, "code").and_then(Value::as_i64).unwrap_or(1);
        #[allow(unreachable_code)]
        {
            std::process::exit(code as i32);
            ExecutionOutcome::error("unreachable")
        }
    });

    add(&mut runner, "noise", |req| async move {
        let lines = param_u64(&req, "lines", 3);
        for i in 0..lines {
            println!("noise {i}");
            eprintln!("noise {i}");
        }
        let _ = std::io::stdout().flush();
        ExecutionOutcome::success(json!({ "lines": lines }))
    });

    add(&mut runner, "fail_permanently", |req| async move {
        let message = param_str(&req, "message").unwrap_or_else(|| "boom".into());
        Err::<Value, _>(HandlerError::non_retryable(message))
    });

    // Snoozes so far per job_id, for this process (conformance/handlers.md).
    let snoozes: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    add(&mut runner, "snooze", move |req| {
        let snoozes = Arc::clone(&snoozes);
        async move {
            let seconds = param(&req, "seconds")
                .and_then(Value::as_f64)
                .unwrap_or(0.1);
            let times = param_u64(&req, "times", 1);
            let snoozed = {
                let mut counts = snoozes.lock().unwrap_or_else(|e| e.into_inner());
                let count = counts.entry(req.job_id.clone()).or_insert(0);
                if *count < times {
                    *count += 1;
                    true
                } else {
                    false
                }
            };
            if snoozed {
                Err(HandlerError::snooze(seconds))
            } else {
                Ok(json!({ "snoozed": times, "attempt": req.context.attempt }))
            }
        }
    });

    add(&mut runner, "ignore_cancel", |req| async move {
        let ms = param_u64(&req, "ms", 1000);
        // Deliberately blocks its worker thread and never yields.
        std::thread::sleep(Duration::from_millis(ms));
        ExecutionOutcome::success(json!({ "slept_ms": ms }))
    });

    // Live handlers (conformance/handlers.md): through JobContext, whatever the request's live.
    add(&mut runner, "report_progress", |req| async move {
        let values = match param(&req, "values") {
            Some(Value::Array(values)) => values.clone(),
            _ => vec![json!(0.25), json!(0.5), json!(0.75), json!(1)],
        };
        let message = param_str(&req, "message");
        let detail = param(&req, "detail").cloned();
        let delay_ms = param_u64(&req, "delay_ms", 0);
        let ctx = JobContext::current();
        let n = values.len();
        for (i, value) in values.iter().enumerate() {
            let mut update = ctx.progress(value.as_f64()).message(
                message
                    .clone()
                    .unwrap_or_else(|| format!("step {} of {n}", i + 1)),
            );
            if let Some(detail) = &detail {
                update = update.detail(detail.clone());
            }
            update.send();
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
        }
        Ok::<_, HandlerError>(json!({ "reported": n }))
    });

    add(&mut runner, "write_output", |req| async move {
        let lines = param_u64(&req, "lines", 3);
        let text = param_str(&req, "text").unwrap_or_else(|| "line".into());
        let size = param(&req, "size").and_then(Value::as_u64);
        let as_json = param(&req, "json")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let delay_ms = param_u64(&req, "delay_ms", 0);
        let ctx = JobContext::current();
        for i in 0..lines {
            if let Some(size) = size {
                ctx.output().write("x".repeat(size as usize));
            } else if as_json {
                ctx.output().json(&json!({ "line": i, "text": text }))?;
            } else {
                ctx.output().write(format!("{text} {i}\n"));
            }
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
        }
        Ok::<_, HandlerError>(json!({ "lines": lines }))
    });

    runner.run_from_args()
}
