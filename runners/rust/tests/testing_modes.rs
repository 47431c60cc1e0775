//! rrqkit::testing: the shared scenarios (conformance/cases/testing/inline.json) in inline and
//! fake(+drain) modes, and proof that neither mode opens a connection.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rrqkit::contracts::JobCatalog;
use rrqkit::testing::{FakeProducer, InlineProducer, TestProducer};
use rrqkit::{EnqueueOptions, HandlerError, JobStatus, ProducerConfig, Registry};
use serde_json::{json, Map, Value};

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/cases/testing/inline.json"
    );
    let text = std::fs::read_to_string(path).expect("inline.json");
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["scenarios"].as_array().unwrap().clone()
}

fn param<'a>(params: &'a Map<String, Value>, key: &str) -> &'a Value {
    params.get(key).unwrap_or(&Value::Null)
}

/// The scenario handlers of inline.json; `enqueue_child` enqueues through `producer`.
fn scenario_registry(producer: TestProducer) -> Registry {
    let mut r = Registry::new();
    r.register(
        "echo",
        |req| async move { Ok::<_, HandlerError>(req.params) },
    );
    r.register("flaky", |req| async move {
        let fail_times = param(&req.params, "fail_times").as_u64().unwrap_or(0);
        if u64::from(req.context.attempt) <= fail_times {
            return Err(HandlerError::msg(format!(
                "flaky attempt {}",
                req.context.attempt
            )));
        }
        Ok(param(&req.params, "result").clone())
    });
    r.register("sleep", |req| async move {
        let ms = param(&req.params, "ms").as_u64().unwrap_or(0);
        // Cancellation drops this future (the Rust cancel signal).
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, HandlerError>(json!({ "slept": ms }))
    });
    r.register("fail_permanent", |req| async move {
        let message = param(&req.params, "message")
            .as_str()
            .unwrap_or("")
            .to_string();
        Err::<Value, _>(HandlerError::non_retryable(message))
    });
    r.register("enqueue_child", move |req| {
        let producer = producer.clone();
        async move {
            let name = param(&req.params, "name")
                .as_str()
                .unwrap_or("")
                .to_string();
            let params = param(&req.params, "params")
                .as_object()
                .cloned()
                .unwrap_or_default();
            let id = producer
                .enqueue(&name, params, EnqueueOptions::default())
                .await?;
            Ok::<_, HandlerError>(json!({ "child_id": id }))
        }
    });
    let runs: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    r.register("snooze", move |req| {
        let runs = runs.clone();
        async move {
            let run = {
                let mut runs = runs.lock().unwrap();
                let n = runs.entry(req.job_id.clone()).or_default();
                *n += 1;
                *n
            };
            if run <= param(&req.params, "times").as_u64().unwrap_or(0) {
                let seconds = param(&req.params, "seconds").as_f64().unwrap_or(0.0);
                return Err(HandlerError::snooze(seconds));
            }
            Ok(param(&req.params, "result").clone())
        }
    });
    r
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Inline,
    Fake,
}

/// Runs one scenario in `mode` and checks its `expect`.
async fn run_scenario(case: &Value, mode: Mode) {
    let name = case["name"].as_str().unwrap();
    let at = format!("{name} ({mode:?})");
    let (producer, drain): (TestProducer, Option<FakeProducer>) = match mode {
        Mode::Inline => ((*InlineProducer::new()).clone(), None),
        Mode::Fake => {
            let fake = FakeProducer::new();
            ((*fake).clone(), Some(fake))
        }
    };
    producer.set_registry(scenario_registry(producer.clone()));
    if let Some(contracts) = case.get("catalog").and_then(Value::as_array) {
        producer.set_catalog(JobCatalog::from_values(contracts.clone()).unwrap());
    }
    let (options, _) = EnqueueOptions::from_json(&case["options"]).unwrap();
    let params = case["handler_params"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let function = case["handler"].as_str().unwrap();
    let expect = &case["expect"];
    let enqueued = producer.enqueue(function, params, options).await;
    if let Some(refused) = expect.get("refused") {
        let err = enqueued.expect_err(&at);
        assert_eq!(err.code(), refused["error"].as_str().unwrap(), "{at}");
        if let Some(field) = refused.get("field").and_then(Value::as_str) {
            assert_eq!(err.field(), Some(field), "{at}");
        }
        assert!(producer.jobs().is_empty(), "{at}: nothing recorded");
        return;
    }
    let id = enqueued.unwrap_or_else(|e| panic!("{at}: {e}"));
    if let Some(fake) = &drain {
        assert_eq!(fake.job(&id).unwrap().status, JobStatus::Pending, "{at}");
        fake.drain().await.unwrap();
    }
    let job = producer.job(&id).unwrap();
    let status = expect["status"].as_str().unwrap();
    assert_eq!(job.status.as_str(), status, "{at}: {job:?}");
    assert_eq!(
        job.attempts as u64,
        expect["attempts"].as_u64().unwrap(),
        "{at}"
    );
    if let Some(result) = expect.get("result") {
        assert_eq!(job.result.as_ref(), Some(result), "{at}");
    }
    if let Some(t) = expect.get("error_type").and_then(Value::as_str) {
        assert_eq!(job.error_type.as_deref(), Some(t), "{at}: {job:?}");
    }
    if let Some(n) = expect.get("snoozes").and_then(Value::as_u64) {
        assert_eq!(job.snoozes as u64, n, "{at}");
    }
    if let Some(delays) = expect.get("retry_delays").and_then(Value::as_array) {
        let want: Vec<f64> = delays.iter().filter_map(Value::as_f64).collect();
        assert_eq!(job.retry_delays, want, "{at}");
    }
    if let Some(d) = expect.get("deferred_seconds").and_then(Value::as_f64) {
        assert_eq!(job.deferred_seconds, Some(d), "{at}");
    }
    if let Some(child) = expect.get("child") {
        let child_id = job.result.as_ref().unwrap()["child_id"].as_str().unwrap();
        let c = producer.job(child_id).unwrap();
        assert_eq!(
            c.function_name,
            child["function_name"].as_str().unwrap(),
            "{at}"
        );
        assert_eq!(c.status.as_str(), child["status"].as_str().unwrap(), "{at}");
        assert_eq!(c.result.as_ref(), Some(&child["result"]), "{at}");
    }
    let status_read = producer.get_job_status(&id).await.unwrap().unwrap();
    assert_eq!(status_read.status, job.status, "{at}");
}

#[tokio::test]
async fn shared_scenarios_inline() {
    let cases = cases();
    assert!(cases.len() >= 8);
    for case in &cases {
        run_scenario(case, Mode::Inline).await;
    }
}

#[tokio::test]
async fn shared_scenarios_fake_and_drain() {
    for case in &cases() {
        run_scenario(case, Mode::Fake).await;
    }
}

/// A closed port for the DSN: a connection attempt would fail the enqueue.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn no_connection_is_opened() {
    // A listener no one should reach: the DSN names it, and RRQ_REDIS_DSN a closed port.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::env::set_var(
        "RRQ_REDIS_DSN",
        format!("redis://127.0.0.1:{}/0", closed_port()),
    );
    let config = ProducerConfig::with_dsn(format!("redis://127.0.0.1:{port}/0"));
    let fake = FakeProducer::with_config(config.clone());
    fake.set_registry(scenario_registry((*fake).clone()));
    let inline = InlineProducer::with_config(config);
    inline.set_registry(scenario_registry((*inline).clone()));
    let params = json!({"name": "echo", "params": {"x": 1}});
    let params = params.as_object().unwrap().clone();
    let id = fake
        .enqueue("enqueue_child", params.clone(), Default::default())
        .await
        .unwrap();
    assert_eq!(fake.drain().await.unwrap(), 2);
    assert_eq!(fake.job(&id).unwrap().status, JobStatus::Completed);
    let id = inline
        .enqueue("enqueue_child", params, Default::default())
        .await
        .unwrap();
    assert_eq!(inline.job(&id).unwrap().status, JobStatus::Completed);
    assert_eq!(inline.jobs_for("echo").len(), 1);
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a connection reached the DSN's port: {other:?}"),
    }
}

struct Tagging;

impl rrqkit::ProducerMiddleware for Tagging {
    fn before_enqueue(
        &self,
        job: &mut rrqkit::PendingEnqueue,
    ) -> Result<(), rrqkit::ProducerError> {
        if job.function_name == "forbidden" {
            return Err(rrqkit::ProducerError::vetoed("not here"));
        }
        job.params.insert("tagged".into(), json!(true));
        Ok(())
    }
}

#[tokio::test]
async fn middleware_runs_before_recording_and_can_veto() {
    let fake = FakeProducer::new().use_middleware(Arc::new(Tagging));
    fake.set_registry(scenario_registry((*fake).clone()));
    let id = fake
        .enqueue("echo", Map::new(), Default::default())
        .await
        .unwrap();
    assert_eq!(fake.job(&id).unwrap().params["tagged"], json!(true));
    let err = fake
        .enqueue("forbidden", Map::new(), Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "enqueue_vetoed");
    assert_eq!(err.message(), "enqueue of forbidden vetoed: not here");
    assert_eq!(fake.jobs().len(), 1);
    fake.drain().await.unwrap();
    assert_eq!(fake.job(&id).unwrap().result, Some(json!({"tagged": true})));
}
