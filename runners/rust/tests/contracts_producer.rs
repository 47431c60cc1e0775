//! The producer with a job catalog: every enqueue path (single, delayed, rate-limited,
//! debounced, bulk, typed) refuses params that break their contract with `invalid_params`,
//! its function name and field, before anything is written; `Producer::from_toml` loads the
//! catalog `job_catalog` names, relative to the rrq.toml.
#![cfg(all(feature = "producer", feature = "contracts"))]

mod common;

use std::path::PathBuf;

use rrqkit::contracts::{JobCatalog, JobContract};
use rrqkit::producer::EnqueueItem;
use rrqkit::{EnqueueOptions, Producer, ProducerError};
use serde_json::{json, Map, Value};

use common::{RedisServer, TempDir};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/fixtures/catalog")
}

fn catalog() -> JobCatalog {
    JobCatalog::load(fixture_dir()).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn key_count(server: &RedisServer) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.con())
        .unwrap();
    keys.len()
}

fn assert_invalid(e: ProducerError, function: &str, field: &str) {
    assert_eq!(e.code(), "invalid_params", "{e}");
    assert_eq!(e.function_name(), Some(function));
    assert_eq!(e.field(), Some(field));
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct ResizeImageParams {
    url: String,
    width: i64,
    height: i64,
}

impl JobContract for ResizeImageParams {
    const NAME: &'static str = "resize_image";
    type Result = Value;
}

#[tokio::test(flavor = "current_thread")]
async fn every_enqueue_path_checks_params_before_writing() {
    let server = RedisServer::start("contracts-producer");
    let producer = server.producer().catalog(catalog());
    assert!(producer.job_catalog().is_some());
    let bad = obj(json!({"to": 1, "subject": "hi"}));

    let e = producer
        .enqueue("send_email", bad.clone(), EnqueueOptions::default())
        .await
        .unwrap_err();
    assert_invalid(e.clone(), "send_email", "/to");
    assert!(e.message().starts_with("send_email: params/to "), "{e}");

    let delayed = EnqueueOptions {
        defer_by_seconds: Some(60.0),
        ..Default::default()
    };
    let e = producer
        .enqueue("send_email", obj(json!({"to": "a"})), delayed)
        .await
        .unwrap_err();
    assert_invalid(e, "send_email", "");

    let limited = EnqueueOptions {
        rate_limit_key: Some("k".into()),
        rate_limit_seconds: Some(10.0),
        ..Default::default()
    };
    let e = producer
        .enqueue_with_rate_limit("send_email", bad.clone(), limited)
        .await
        .unwrap_err();
    assert_invalid(e, "send_email", "/to");

    let debounced = EnqueueOptions {
        debounce_key: Some("d".into()),
        debounce_seconds: Some(10.0),
        ..Default::default()
    };
    let e = producer
        .enqueue_with_debounce(
            "resize_image",
            obj(json!({"url": "u", "width": 0, "height": 1})),
            debounced,
        )
        .await
        .unwrap_err();
    assert_invalid(e, "resize_image", "/width");

    let item = |f: &str, p: Value| EnqueueItem {
        function_name: f.into(),
        params: obj(p),
        options: EnqueueOptions::default(),
    };
    let e = producer
        .enqueue_many(vec![
            item("send_email", json!({"to": "a", "subject": "s"})),
            item("other", json!({"anything": true})),
            item("send_email", json!({"to": "a", "subject": "s", "cc": [1]})),
        ])
        .await
        .unwrap_err();
    assert_invalid(e.clone(), "send_email", "/cc/0");
    assert!(
        e.message()
            .starts_with("items[2]: send_email: params/cc/0 "),
        "{e}"
    );
    assert!(e.written_ids().is_empty());

    let bad_typed = ResizeImageParams {
        url: "u".into(),
        width: 1,
        height: -1,
    };
    let e = producer.enqueue_typed(&bad_typed).await.unwrap_err();
    assert_invalid(e, "resize_image", "/height");

    assert_eq!(key_count(&server), 0, "nothing may be written");

    // valid params and uncatalogued functions enqueue
    producer
        .enqueue(
            "send_email",
            obj(json!({"to": "a", "subject": "s"})),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    producer
        .enqueue("other", obj(json!({"to": 1})), EnqueueOptions::default())
        .await
        .unwrap();
    let typed = ResizeImageParams {
        url: "u".into(),
        width: 2,
        height: 3,
    };
    let id = producer.enqueue_typed(&typed).await.unwrap();
    let job: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("rrq:job:{id}"))
        .query(&mut server.con())
        .unwrap();
    assert_eq!(job["function_name"], "resize_image");
    let stored: Value = serde_json::from_str(&job["job_params"]).unwrap();
    assert_eq!(stored, json!({"url": "u", "width": 2, "height": 3}));
}

#[tokio::test(flavor = "current_thread")]
async fn without_a_catalog_nothing_is_checked() {
    let server = RedisServer::start("contracts-none");
    let producer = server.producer();
    assert!(producer.job_catalog().is_none());
    producer
        .enqueue(
            "send_email",
            obj(json!({"to": 1})),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn from_toml_loads_job_catalog_relative_to_the_file() {
    let server = RedisServer::start("contracts-toml");
    let dir = TempDir::new("contracts-toml");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir(&jobs).unwrap();
    for name in ["send_email.json", "resize_image.json"] {
        std::fs::copy(fixture_dir().join(name), jobs.join(name)).unwrap();
    }
    let toml = dir.path().join("rrq.toml");
    std::fs::write(
        &toml,
        format!(
            "[rrq]\nredis_dsn = \"{}\"\njob_catalog = \"jobs\"\n",
            server.dsn()
        ),
    )
    .unwrap();
    let producer = Producer::from_toml(Some(&toml)).unwrap();
    assert_eq!(
        producer.job_catalog().unwrap().names(),
        ["resize_image", "send_email"]
    );
    let e = producer
        .enqueue(
            "send_email",
            obj(json!({"to": 1, "subject": "s"})),
            EnqueueOptions::default(),
        )
        .await
        .unwrap_err();
    assert_invalid(e, "send_email", "/to");

    // no job_catalog: no catalog
    std::fs::write(&toml, format!("redis_dsn = \"{}\"\n", server.dsn())).unwrap();
    assert!(Producer::from_toml(Some(&toml))
        .unwrap()
        .job_catalog()
        .is_none());

    // an unusable catalog is invalid_config naming job_catalog
    std::fs::write(jobs.join("broken.json"), "{").unwrap();
    std::fs::write(&toml, "[rrq]\njob_catalog = \"jobs\"\n").unwrap();
    let e = Producer::from_toml(Some(&toml)).unwrap_err();
    assert_eq!(e.code(), "invalid_config");
    assert!(
        e.message().starts_with("job_catalog: invalid job catalog"),
        "{e}"
    );
    std::fs::write(&toml, "[rrq]\njob_catalog = 3\n").unwrap();
    let e = Producer::from_toml(Some(&toml)).unwrap_err();
    assert_eq!(e.code(), "invalid_config");
    assert!(
        e.message()
            .contains("job_catalog must be a non-empty string"),
        "{e}"
    );
}
