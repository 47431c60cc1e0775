//! Runner middleware over a real connection (the runner serves a Unix socket in-process):
//! onion order with the first registered outermost, a changed request reaching the handler,
//! short-circuits, error mapping (a handler error or panic into a non-retryable error), the
//! job context inside middleware, the deadline covering the whole chain, and no middleware
//! for a missing handler or params that break their contract. (`next` cannot be called twice:
//! `Next::run` takes it by value, a compile_fail doctest in `rrqkit::handler_middleware`.)

mod common;

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrqkit::codec::Encoding;
use rrqkit::{
    ExecutionOutcome, HandlerError, JobContext, LaunchArgs, OutcomeStatus, Runner, Transport,
};
use serde_json::{json, Value};

use common::{deadline_in, request, request_with, Client, TempDir};

type Log = Arc<Mutex<Vec<String>>>;

/// Serves `runner` on a Unix socket from a background thread and connects to it.
fn serve_in_process(runner: Runner, dir: &TempDir) -> Client {
    let path = dir.path().join("r.sock");
    let args = LaunchArgs {
        transport: Transport::Unix(path.clone()),
        encoding: Encoding::Json,
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(runner.serve(args));
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = UnixStream::connect(&path) {
            let r = s.try_clone().unwrap();
            return Client::new(Encoding::Json, Box::new(s), Box::new(r), None);
        }
        assert!(Instant::now() < deadline, "runner did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn outcome(c: &mut Client, function: &str, params: Value) -> Value {
    c.send(&request("r-1", "j-1", function, params));
    c.recv_type("response")
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// A runner with a logging middleware pair and handlers `echo` and `fail`.
fn runner(log: &Log) -> Runner {
    let mut runner = Runner::new();
    for name in ["outer", "inner"] {
        let log = log.clone();
        runner.middleware(move |mut request, next| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(format!("{name} in"));
                request.params.insert(name.into(), json!(true));
                let outcome = next.run(request).await;
                log.lock().unwrap().push(format!("{name} out"));
                outcome
            }
        });
    }
    let handler_log = log.clone();
    runner.register("echo", move |req| {
        handler_log.lock().unwrap().push("handler".into());
        async move { Ok::<_, HandlerError>(Value::Object(req.params)) }
    });
    runner.register("fail", |_req| async move {
        Err::<Value, _>(HandlerError::msg("card declined"))
    });
    runner
}

#[test]
fn onion_order_and_changed_request() {
    let log = Log::default();
    let dir = TempDir::new("mw-runner-order");
    let mut c = serve_in_process(runner(&log), &dir);
    let o = outcome(&mut c, "echo", json!({"n": 1}));
    assert_eq!(o["status"], "success", "{o}");
    assert_eq!(o["result"], json!({"n": 1, "outer": true, "inner": true}));
    assert_eq!(
        take(&log),
        ["outer in", "inner in", "handler", "inner out", "outer out"]
    );
    // the handler's own error passes through unchanged
    let o = outcome(&mut c, "fail", json!({}));
    assert_eq!(o["status"], "error");
    assert_eq!(o["error"]["message"], "card declined");
    assert_eq!(o["error"]["type"], "Error");
}

#[test]
fn missing_handler_and_invalid_params_skip_middleware() {
    let log = Log::default();
    #[cfg_attr(not(feature = "contracts"), allow(unused_mut))]
    let mut r = runner(&log);
    #[cfg(feature = "contracts")]
    {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../conformance/fixtures/catalog");
        r.catalog(rrqkit::contracts::JobCatalog::load(dir).unwrap());
        r.register("send_email", |_req| async move {
            Ok::<_, HandlerError>(json!({"message_id": "m"}))
        });
    }
    let dir = TempDir::new("mw-runner-skip");
    let mut c = serve_in_process(r, &dir);
    let o = outcome(&mut c, "nope", json!({}));
    assert_eq!(o["status"], "error");
    assert_eq!(o["error"]["type"], "handler_not_found", "{o}");
    #[cfg(feature = "contracts")]
    {
        let o = outcome(&mut c, "send_email", json!({"to": 1, "subject": "s"}));
        assert_eq!(o["error"]["type"], "invalid_params", "{o}");
    }
    assert!(take(&log).is_empty());
}

#[test]
fn short_circuit_and_error_mapping() {
    let calls = Log::default();
    let mut runner = Runner::new();
    // outermost: any error below becomes non-retryable, keeping its message
    runner.middleware(|request, next| async move {
        let outcome = next.run(request).await;
        if outcome.status == OutcomeStatus::Error {
            let message = outcome.error.map(|e| e.message).unwrap_or_default();
            return Err(HandlerError::non_retryable(format!("mapped: {message}")));
        }
        Ok(outcome)
    });
    // a cache in front of `lookup`: answers without calling the handler
    runner.middleware(|request, next| async move {
        if request.params.get("cached") == Some(&json!(true)) {
            return ExecutionOutcome::success(json!({"from": "cache"}));
        }
        next.run(request).await
    });
    let seen = calls.clone();
    runner.register("lookup", move |_req| {
        seen.lock().unwrap().push("lookup".into());
        async move { Ok::<_, HandlerError>(json!({"from": "handler"})) }
    });
    runner.register("fail", |_req| async move {
        Err::<Value, _>(HandlerError::msg("card declined"))
    });
    runner.register("explode", |_req| async move {
        if true {
            panic!("wheels fell off");
        }
        Ok::<Value, HandlerError>(Value::Null)
    });
    let dir = TempDir::new("mw-runner-map");
    let mut c = serve_in_process(runner, &dir);

    let o = outcome(&mut c, "lookup", json!({"cached": true}));
    assert_eq!(o["result"], json!({"from": "cache"}), "{o}");
    assert!(take(&calls).is_empty());
    let o = outcome(&mut c, "lookup", json!({}));
    assert_eq!(o["result"], json!({"from": "handler"}), "{o}");
    assert_eq!(take(&calls), ["lookup"]);

    let o = outcome(&mut c, "fail", json!({}));
    assert_eq!(o["status"], "error");
    assert_eq!(o["error"]["type"], "non_retryable", "{o}");
    assert_eq!(o["error"]["message"], "mapped: card declined");
    // a panicking handler reaches middleware as an error outcome of type panic
    let o = outcome(&mut c, "explode", json!({}));
    assert_eq!(o["error"]["type"], "non_retryable", "{o}");
    assert_eq!(o["error"]["message"], "mapped: wheels fell off");
}

#[test]
fn job_context_inside_and_deadline_over_the_whole_chain() {
    let mut runner = Runner::new();
    runner.middleware(|mut request, next| async move {
        let ctx = JobContext::current();
        let job = ctx.job_id().unwrap_or("none").to_string();
        request.params.insert("seen_job".into(), json!(job));
        if request.params.contains_key("slow") {
            // the deadline covers middleware time too
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        next.run(request).await
    });
    runner.register("echo", |req| async move {
        Ok::<_, HandlerError>(Value::Object(req.params))
    });
    let dir = TempDir::new("mw-runner-ctx");
    let mut c = serve_in_process(runner, &dir);
    let o = outcome(&mut c, "echo", json!({}));
    assert_eq!(o["result"], json!({"seen_job": "j-1"}), "{o}");

    c.send(&request_with(
        "r-2",
        "j-2",
        "echo",
        json!({"slow": true}),
        Some(deadline_in(300)),
    ));
    let o = c.recv_type("response");
    assert_eq!(o["status"], "timeout", "{o}");
    assert_eq!(o["request_id"], "r-2");
}
