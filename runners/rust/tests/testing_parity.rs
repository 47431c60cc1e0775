//! rrqkit::testing against the real runner and producer: the runner's middleware runs around
//! the handlers, the enqueue checks refuse exactly what `Producer` refuses (same code and
//! message, flow-control options included), and `wait_for_completion` answers without waiting.

use std::net::TcpListener;
use std::time::Duration;

use rrqkit::contracts::JobCatalog;
use rrqkit::producer::{EnqueueItem, StartRate};
use rrqkit::testing::{FakeProducer, InlineProducer, TestProducer};
use rrqkit::{
    EnqueueOptions, HandlerError, JobStatus, OutcomeStatus, Producer, ProducerConfig,
    ProducerError, Runner,
};
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// A runner whose middleware adds `via` to the params and turns every error non-retryable.
fn runner() -> Runner {
    let mut runner = Runner::new();
    runner.register(
        "echo",
        |req| async move { Ok::<_, HandlerError>(req.params) },
    );
    runner.register("fails", |_req| async move {
        Err::<Value, _>(HandlerError::msg("boom"))
    });
    runner.middleware(|mut request, next| async move {
        request.params.insert("via".into(), json!("middleware"));
        let outcome = next.run(request).await;
        if outcome.status == OutcomeStatus::Error {
            let message = outcome.error.map(|e| e.message).unwrap_or_default();
            return Err(HandlerError::non_retryable(format!("mapped: {message}")));
        }
        Ok(outcome)
    });
    runner
}

async fn assert_middleware_ran(producer: &TestProducer, echo: &str, fails: &str) {
    let echoed = producer.job(echo).unwrap();
    assert_eq!(echoed.status, JobStatus::Completed);
    assert_eq!(echoed.result, Some(json!({"x": 1, "via": "middleware"})));
    // Without the middleware, a plain error is retried up to the 5 attempts.
    let failed = producer.job(fails).unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.attempts, 1);
    assert!(failed.last_error.unwrap().starts_with("mapped: boom"));
}

#[tokio::test]
async fn runner_middleware_runs_in_fake_and_inline_mode() {
    let runner = runner();
    let fake = FakeProducer::new().with_runner(&runner);
    let echo = fake
        .enqueue("echo", obj(json!({"x": 1})), Default::default())
        .await
        .unwrap();
    let fails = fake
        .enqueue("fails", Map::new(), Default::default())
        .await
        .unwrap();
    assert_eq!(fake.drain().await.unwrap(), 2);
    assert_middleware_ran(&fake, &echo, &fails).await;

    let inline = InlineProducer::new().with_runner(&runner);
    let echo = inline
        .enqueue("echo", obj(json!({"x": 1})), Default::default())
        .await
        .unwrap();
    let fails = inline
        .enqueue("fails", Map::new(), Default::default())
        .await
        .unwrap();
    assert_middleware_ran(&inline, &echo, &fails).await;
}

/// A real producer that could never connect: every call below fails its checks first.
fn real_producer(catalog: &JobCatalog) -> Producer {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Producer::new(ProducerConfig::with_dsn(format!(
        "redis://127.0.0.1:{port}/0"
    )))
    .unwrap()
    .catalog(catalog.clone())
}

fn catalog() -> JobCatalog {
    JobCatalog::from_values([json!({"name": "typed", "params": {
        "type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}})])
    .unwrap()
}

/// Options each refused by the real producer's checks.
fn refused_options() -> Vec<(&'static str, EnqueueOptions)> {
    let o = EnqueueOptions::default;
    vec![
        (
            "empty concurrency_key",
            EnqueueOptions {
                concurrency_key: Some(String::new()),
                ..o()
            },
        ),
        (
            "concurrency_limit alone",
            EnqueueOptions {
                concurrency_limit: Some(2),
                ..o()
            },
        ),
        (
            "start_rate alone",
            EnqueueOptions {
                start_rate: Some(StartRate::new(5, 1.0)),
                ..o()
            },
        ),
        (
            "start_rate out of range",
            EnqueueOptions {
                concurrency_key: Some("k".into()),
                start_rate: Some(StartRate::new(0, 1.0)),
                ..o()
            },
        ),
        (
            "bad limit name",
            EnqueueOptions {
                limit: Some("no spaces".into()),
                ..o()
            },
        ),
        (
            "long ordering_key",
            EnqueueOptions {
                ordering_key: Some("o".repeat(257)),
                ..o()
            },
        ),
        (
            "bad tag",
            EnqueueOptions {
                requires: Some(vec!["gpu!".into()]),
                ..o()
            },
        ),
        (
            "too many tags",
            EnqueueOptions {
                requires: Some((0..17).map(|i| format!("t{i}")).collect()),
                ..o()
            },
        ),
        (
            "negative max_retries",
            EnqueueOptions {
                max_retries: Some(-1),
                ..o()
            },
        ),
        (
            "expires_at past",
            EnqueueOptions {
                expires_at: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
                ..o()
            },
        ),
        (
            "unique and debounce",
            EnqueueOptions {
                unique_key: Some("u".into()),
                debounce_key: Some("d".into()),
                debounce_seconds: Some(1.0),
                ..o()
            },
        ),
        (
            "rate key alone",
            EnqueueOptions {
                rate_limit_key: Some("r".into()),
                ..o()
            },
        ),
    ]
}

fn same_error(what: &str, fake: ProducerError, real: ProducerError) {
    assert_eq!(
        (fake.code(), fake.message()),
        (real.code(), real.message()),
        "{what}"
    );
}

#[tokio::test]
async fn enqueue_checks_are_the_real_producers() {
    let catalog = catalog();
    let real = real_producer(&catalog);
    let fake = FakeProducer::new().catalog(catalog);
    for (what, options) in refused_options() {
        let f = fake.enqueue("echo", Map::new(), options.clone()).await;
        let r = real.enqueue("echo", Map::new(), options.clone()).await;
        same_error(what, f.unwrap_err(), r.unwrap_err());
    }
    let bad = obj(json!({"n": "one"}));
    let f = fake.enqueue("typed", bad.clone(), o()).await.unwrap_err();
    let r = real.enqueue("typed", bad.clone(), o()).await.unwrap_err();
    same_error("contract", f, r);
    let deep = obj(json!({"a": (0..200).fold(json!(1), |v, _| json!([v]))}));
    let f = fake.enqueue("echo", deep.clone(), o()).await.unwrap_err();
    let r = real.enqueue("echo", deep, o()).await.unwrap_err();
    same_error("deep params", f, r);

    // The paths: rate limit and debounce without their options, bulk items.
    let f = fake.enqueue_with_rate_limit("echo", Map::new(), o()).await;
    let r = real.enqueue_with_rate_limit("echo", Map::new(), o()).await;
    same_error("rate-limit path", f.unwrap_err(), r.unwrap_err());
    let f = fake.enqueue_with_debounce("echo", Map::new(), o()).await;
    let r = real.enqueue_with_debounce("echo", Map::new(), o()).await;
    same_error("debounce path", f.unwrap_err(), r.unwrap_err());
    let items = |second: EnqueueItem| {
        vec![
            EnqueueItem {
                function_name: "echo".into(),
                ..Default::default()
            },
            second,
        ]
    };
    let limited = EnqueueOptions {
        rate_limit_key: Some("r".into()),
        rate_limit_seconds: Some(1.0),
        ..o()
    };
    let ordered = EnqueueOptions {
        ordering_key: Some(String::new()),
        ..o()
    };
    let seconds = [
        EnqueueItem {
            function_name: "echo".into(),
            options: limited,
            ..Default::default()
        },
        EnqueueItem {
            function_name: "echo".into(),
            options: ordered,
            ..Default::default()
        },
        EnqueueItem {
            function_name: "typed".into(),
            params: bad,
            ..Default::default()
        },
        EnqueueItem {
            function_name: "echo".into(),
            options: EnqueueOptions {
                job_id: Some("same".into()),
                ..o()
            },
            ..Default::default()
        },
    ];
    for (index, second) in seconds.into_iter().enumerate() {
        let mut items = items(second);
        if index == 3 {
            items[0].options.job_id = Some("same".into());
        }
        let f = fake.enqueue_many(items.clone()).await.unwrap_err();
        let r = real.enqueue_many(items).await.unwrap_err();
        same_error(&format!("bulk case {index}"), f, r);
    }
    assert!(fake.jobs().is_empty(), "nothing refused is recorded");
}

fn o() -> EnqueueOptions {
    EnqueueOptions::default()
}

#[tokio::test]
async fn flow_control_options_are_recorded_once_checked() {
    let fake = FakeProducer::new();
    let options = EnqueueOptions {
        concurrency_key: Some("tenant:1".into()),
        concurrency_limit: Some(2),
        start_rate: Some(StartRate::new(5, 1.0)),
        ordering_key: Some("session".into()),
        requires: Some(vec!["gpu".into()]),
        ..o()
    };
    let id = fake
        .enqueue("echo", Map::new(), options.clone())
        .await
        .unwrap();
    assert_eq!(fake.job(&id).unwrap().options, options);
}

#[tokio::test]
async fn bulk_with_an_existing_job_id_writes_nothing() {
    let fake = FakeProducer::new();
    let known = EnqueueOptions {
        job_id: Some("known".into()),
        ..o()
    };
    fake.enqueue("echo", Map::new(), known.clone())
        .await
        .unwrap();
    let items = vec![
        EnqueueItem {
            function_name: "echo".into(),
            ..Default::default()
        },
        EnqueueItem {
            function_name: "echo".into(),
            options: known,
            ..Default::default()
        },
    ];
    let err = fake.enqueue_many(items).await.unwrap_err();
    assert_eq!(err.code(), "duplicate_job_id");
    assert_eq!(
        err.message(),
        "job_id already exists: known; none of the 2 jobs was written"
    );
    assert_eq!(fake.jobs().len(), 1);
}

#[tokio::test]
async fn plain_enqueue_with_debounce_options_updates_the_pending_job() {
    let fake = FakeProducer::new();
    let debounced = EnqueueOptions {
        debounce_key: Some("d".into()),
        debounce_seconds: Some(2.0),
        ..o()
    };
    let first = fake
        .enqueue("echo", obj(json!({"v": 1})), debounced.clone())
        .await
        .unwrap();
    let second = fake
        .enqueue("echo", obj(json!({"v": 2})), debounced)
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(fake.jobs().len(), 1);
    assert_eq!(fake.job(&first).unwrap().params, obj(json!({"v": 2})));
}

#[tokio::test]
async fn wait_for_completion_answers_without_waiting() {
    let runner = runner();
    let (timeout, block) = (Duration::from_secs(3600), Duration::from_secs(3600));
    let fake = FakeProducer::new().with_runner(&runner);
    let id = fake.enqueue("echo", Map::new(), o()).await.unwrap();
    assert_eq!(
        fake.wait_for_completion(&id, timeout, block).await.unwrap(),
        None
    );
    assert_eq!(
        fake.wait_for_completion("unknown", timeout, block)
            .await
            .unwrap(),
        None
    );
    fake.drain().await.unwrap();
    let done = fake
        .wait_for_completion(&id, timeout, block)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.result, Some(json!({"via": "middleware"})));

    let inline = InlineProducer::new().with_runner(&runner);
    let id = inline.enqueue("fails", Map::new(), o()).await.unwrap();
    let done = inline
        .wait_for_completion(&id, timeout, block)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert!(done.last_error.unwrap().starts_with("mapped: boom"));
}
