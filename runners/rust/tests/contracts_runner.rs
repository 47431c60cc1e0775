//! Runner-side contracts: `Runner::catalog` and `RRQ_JOB_CATALOG` answer params that break a
//! catalogued function's contract with an `error` outcome of type `invalid_params` without
//! calling the handler; `register_typed` deserializes params into the generated type (a
//! mismatch is `invalid_params` too) and serializes the result; `--list-handlers` prints the
//! registered names as one JSON line.
#![cfg(feature = "contracts")]

mod common;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rrqkit::codec::Encoding;
use rrqkit::contracts::{JobCatalog, JobContract};
use rrqkit::{HandlerError, LaunchArgs, Runner, Transport};
use serde_json::{json, Value};

use common::{example, request, Client, Kind, RunnerProc, TempDir};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SendEmailParams {
    to: String,
    subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cc: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct SendEmailResult {
    message_id: String,
}

impl JobContract for SendEmailParams {
    const NAME: &'static str = "send_email";
    type Result = SendEmailResult;
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/fixtures/catalog")
}

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

#[test]
fn catalog_and_typed_handlers_in_process() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut runner = Runner::new();
    let counted = calls.clone();
    runner.register_typed(move |params: SendEmailParams, request| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok::<_, HandlerError>(SendEmailResult {
                message_id: format!("{}:{}", request.job_id, params.to),
            })
        }
    });
    runner.register("resize_image", |req| async move {
        Ok::<_, HandlerError>(Value::Object(req.params))
    });
    runner.register("uncatalogued", |req| async move {
        Ok::<_, HandlerError>(Value::Object(req.params))
    });
    runner.catalog(JobCatalog::load(fixture_dir()).unwrap());
    let dir = TempDir::new("contracts-runner");
    let mut c = serve_in_process(runner, &dir);

    let ok = outcome(&mut c, "send_email", json!({"to": "a@b", "subject": "s"}));
    assert_eq!(ok["status"], "success", "{ok}");
    assert_eq!(ok["result"], json!({"message_id": "j-1:a@b"}));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // the catalog refuses first: the handler is not called
    let bad = outcome(&mut c, "send_email", json!({"to": 1, "subject": "s"}));
    assert_eq!(bad["status"], "error", "{bad}");
    assert_eq!(bad["error"]["type"], "invalid_params");
    let message = bad["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("send_email: params/to "), "{message}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let bad = outcome(
        &mut c,
        "resize_image",
        json!({"url": "u", "width": 0, "height": 1}),
    );
    assert_eq!(bad["error"]["type"], "invalid_params");
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("resize_image: params/width "));

    let free = outcome(&mut c, "uncatalogued", json!({"to": 1}));
    assert_eq!(free["status"], "success");
}

#[test]
fn typed_handler_without_a_catalog_refuses_params_that_do_not_deserialize() {
    let mut runner = Runner::new();
    runner.register_typed(|params: SendEmailParams, _request| async move {
        Ok::<_, HandlerError>(SendEmailResult {
            message_id: params.subject,
        })
    });
    let dir = TempDir::new("contracts-typed");
    let mut c = serve_in_process(runner, &dir);
    let bad = outcome(&mut c, "send_email", json!({"to": "a", "subject": 3}));
    assert_eq!(bad["status"], "error", "{bad}");
    assert_eq!(bad["error"]["type"], "invalid_params");
    let message = bad["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("send_email: params "), "{message}");
    assert!(message.contains("invalid type"), "{message}");
    let ok = outcome(&mut c, "send_email", json!({"to": "a", "subject": "s"}));
    assert_eq!(ok["result"], json!({"message_id": "s"}));
}

fn write_echo_catalog(dir: &TempDir) -> PathBuf {
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(
        jobs.join("echo.json"),
        r#"{"name":"echo","params":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}}"#,
    )
    .unwrap();
    jobs
}

#[test]
fn rrq_job_catalog_env_turns_on_the_check() {
    let dir = TempDir::new("contracts-env");
    let jobs = write_echo_catalog(&dir);
    let jobs = jobs.to_str().unwrap();
    let mut r = RunnerProc::spawn(Kind::Stdio, Encoding::Json, &[("RRQ_JOB_CATALOG", jobs)]);
    let mut c = r.connect();
    let bad = outcome(&mut c, "echo", json!({"n": "x"}));
    assert_eq!(bad["status"], "error", "{bad}");
    assert_eq!(bad["error"]["type"], "invalid_params");
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("echo: params/n "));
    let ok = outcome(&mut c, "echo", json!({"n": 1}));
    assert_eq!(ok["status"], "success");
    assert_eq!(ok["result"], json!({"n": 1}));
}

#[test]
fn an_unusable_catalog_stops_the_runner_with_status_1() {
    let dir = TempDir::new("contracts-env-bad");
    let jobs = write_echo_catalog(&dir);
    std::fs::write(jobs.join("broken.json"), "{").unwrap();
    let mut r = RunnerProc::spawn(
        Kind::Stdio,
        Encoding::Json,
        &[("RRQ_JOB_CATALOG", jobs.to_str().unwrap())],
    );
    assert_eq!(r.wait_exit(Duration::from_secs(10)), Some(Some(1)));
}

#[test]
fn list_handlers_prints_one_json_line_and_exits_0() {
    let out = Command::new(example("conformance_runner"))
        .arg("--list-handlers")
        .env_remove("RRQ_JOB_CATALOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let line: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(line["runtime"], "rust");
    assert_eq!(line["version"], env!("CARGO_PKG_VERSION"));
    let names: Vec<String> = serde_json::from_value(line["handlers"].clone()).unwrap();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"echo".to_string()) && names.contains(&"sleep".to_string()));

    let runner = {
        let mut r = Runner::new();
        r.register("b", |req| async move { Ok::<_, HandlerError>(req.params) });
        r.register("a", |req| async move { Ok::<_, HandlerError>(req.params) });
        r
    };
    let line: Value = serde_json::from_str(&runner.handlers_line()).unwrap();
    assert_eq!(line["handlers"], json!(["a", "b"]));
}
