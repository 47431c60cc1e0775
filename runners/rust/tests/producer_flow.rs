//! Flow-control producer options (issue 22) against a private redis-server: the hash fields
//! they write, the session order enqueue-fields-1.lua records, and that bad values are refused
//! with nothing written. `ERRORS` is the table of test/producer-flow.test.ts (the same words in
//! every binding).
#![cfg(feature = "producer")]

mod common;

use std::collections::HashMap;

use rrqkit::producer::{EnqueueItem, StartRate};
use rrqkit::{EnqueueOptions, Producer, ProducerError};
use serde_json::{json, Map, Value};

use common::RedisServer;

const FLOW_FIELDS: [&str; 5] = [
    "concurrency_key",
    "concurrency_limit",
    "start_rate",
    "limit_name",
    "ordering_key",
];

fn flow_fields(con: &mut redis::Connection, id: &str) -> HashMap<String, String> {
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("rrq:job:{id}"))
        .query(con)
        .unwrap();
    all.into_iter()
        .filter(|(k, _)| FLOW_FIELDS.contains(&k.as_str()))
        .collect()
}

fn order(con: &mut redis::Connection, okey: &str) -> Vec<(String, i64)> {
    redis::cmd("ZRANGE")
        .arg(format!("rrq:fc:order:{okey}"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(con)
        .unwrap()
}

fn dbsize(con: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).unwrap()
}

fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Enqueues `f` with snake_case JSON options, as the adapter does.
async fn enqueue_json(p: &Producer, options: Value) -> Result<String, ProducerError> {
    let item = EnqueueItem::from_json(&json!({"function_name": "f", "options": options}))?;
    p.enqueue(&item.function_name, item.params, item.options)
        .await
}

#[tokio::test]
async fn every_field_stored_as_the_contract_says() {
    let server = RedisServer::start("flow");
    let p = server.producer();
    let mut con = server.con();
    let id = p
        .enqueue(
            "charge",
            json!({"a": 1}).as_object().unwrap().clone(),
            EnqueueOptions {
                concurrency_key: Some("tenant:1".into()),
                concurrency_limit: Some(3),
                start_rate: Some(StartRate::new(50, 1.0)),
                limit: Some("api.v2".into()),
                ordering_key: Some("order-9".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        flow_fields(&mut con, &id),
        fields(&[
            ("concurrency_key", "tenant:1"),
            ("concurrency_limit", "3"),
            ("start_rate", "50/1000"),
            ("limit_name", "api.v2"),
            ("ordering_key", "order-9"),
        ])
    );
    assert_eq!(order(&mut con, "order-9"), vec![(id.clone(), 1)]);
    let seq: String = redis::cmd("GET").arg("rrq:fc:seq").query(&mut con).unwrap();
    assert_eq!(seq, "1");

    // JSON options (the adapter's form), a named limit without a key, a fractional period
    let id = enqueue_json(
        &p,
        json!({"limit": "emails", "concurrency_limit": 2.0,
               "start_rate": {"limit": 10, "period_seconds": 1.5}, "ordering_key": "o"}),
    )
    .await
    .unwrap();
    assert_eq!(
        flow_fields(&mut con, &id),
        fields(&[
            ("concurrency_limit", "2"),
            ("start_rate", "10/1500"),
            ("limit_name", "emails"),
            ("ordering_key", "o"),
        ])
    );

    // periods rounded to whole ms, at least 1
    for (period, stored) in [
        (0.0001, "1/1"),
        (0.0004, "1/1"),
        (2.0006, "1/2001"),
        (86400.0, "1/86400000"),
    ] {
        let id = enqueue_json(
            &p,
            json!({"concurrency_key": "k", "start_rate": {"limit": 1, "period_seconds": period}}),
        )
        .await
        .unwrap();
        assert_eq!(flow_fields(&mut con, &id)["start_rate"], stored);
    }

    // key lengths count characters
    let key = "😀".repeat(256);
    let id = enqueue_json(&p, json!({"concurrency_key": key, "ordering_key": key}))
        .await
        .unwrap();
    assert_eq!(flow_fields(&mut con, &id)["concurrency_key"], key);
    let e = enqueue_json(&p, json!({"concurrency_key": format!("{key}x")}))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "concurrency_key must be a string of 1 to 256 characters"
    );

    // no options, no fields
    let id = p
        .enqueue("f", Map::new(), EnqueueOptions::default())
        .await
        .unwrap();
    assert!(flow_fields(&mut con, &id).is_empty());
}

#[tokio::test]
async fn sessions_follow_enqueue_order() {
    let server = RedisServer::start("flow");
    let p = server.producer();
    let mut con = server.con();
    let session = |key: &str| EnqueueOptions {
        ordering_key: Some(key.into()),
        ..Default::default()
    };
    let a = p
        .enqueue(
            "f",
            Map::new(),
            EnqueueOptions {
                defer_by_seconds: Some(60.0),
                ..session("s")
            },
        )
        .await
        .unwrap();
    let item = |key: &str| EnqueueItem {
        function_name: "f".into(),
        params: Map::new(),
        options: session(key),
    };
    let bc = p
        .enqueue_many(vec![item("s"), item("other")])
        .await
        .unwrap();
    let d = p.enqueue("f", Map::new(), session("s")).await.unwrap();
    assert_eq!(
        order(&mut con, "s"),
        vec![(a, 1), (bc[0].clone(), 2), (d, 4)]
    );
    assert_eq!(order(&mut con, "other"), vec![(bc[1].clone(), 3)]);

    // an idempotent hit and a duplicate id join no session
    let first = p
        .enqueue(
            "f",
            Map::new(),
            EnqueueOptions {
                unique_key: Some("u".into()),
                ..session("u1")
            },
        )
        .await
        .unwrap();
    let again = p
        .enqueue(
            "f",
            json!({"x": 1}).as_object().unwrap().clone(),
            EnqueueOptions {
                unique_key: Some("u".into()),
                ..session("t")
            },
        )
        .await
        .unwrap();
    assert_eq!(again, first);
    let e = p
        .enqueue(
            "f",
            json!({"y": 1}).as_object().unwrap().clone(),
            EnqueueOptions {
                job_id: Some(first.clone()),
                ..session("t")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "duplicate_job_id");
    assert_eq!(order(&mut con, "u1"), vec![(first, 5)]);
    assert!(order(&mut con, "t").is_empty());

    // a debounce update keeps the job's place, or moves it to its new session
    let debounced = |n: i64, key: &str| {
        (
            json!({ "n": n }).as_object().unwrap().clone(),
            EnqueueOptions {
                debounce_key: Some("d".into()),
                debounce_seconds: Some(30.0),
                ..session(key)
            },
        )
    };
    let (params, opts) = debounced(1, "ds");
    let id = p.enqueue_with_debounce("f", params, opts).await.unwrap();
    let (params, opts) = debounced(2, "ds");
    p.enqueue_with_debounce("f", params, opts).await.unwrap();
    assert_eq!(order(&mut con, "ds"), vec![(id.clone(), 6)]);
    let (params, opts) = debounced(3, "dt");
    p.enqueue_with_debounce("f", params, opts).await.unwrap();
    assert!(order(&mut con, "ds").is_empty());
    assert_eq!(order(&mut con, "dt"), vec![(id, 7)]);
}

const KEY_MSG: &str = "concurrency_key must be a string of 1 to 256 characters";
const SESSION_MSG: &str = "ordering_key must be a string of 1 to 256 characters";
const LIMIT_MSG: &str = "concurrency_limit must be an integer from 1 to 100000";
const RATE_SHAPE_MSG: &str = "start_rate must be an object with limit and period_seconds";
const RATE_LIMIT_MSG: &str = "start_rate.limit must be an integer from 1 to 1000000";
const RATE_PERIOD_MSG: &str = "start_rate.period_seconds must be a number > 0 and at most 86400";
const NAME_MSG: &str = "limit must be a limit name of 1 to 128 characters from A-Z a-z 0-9 _ . : -";

fn errors() -> Vec<(Value, &'static str)> {
    let rate = |r: Value| json!({"concurrency_key": "k", "start_rate": r});
    vec![
        (json!({"concurrency_key": ""}), KEY_MSG),
        (json!({"concurrency_key": "x".repeat(257)}), KEY_MSG),
        (json!({"concurrency_key": 5}), KEY_MSG),
        (json!({"ordering_key": ""}), SESSION_MSG),
        (json!({"ordering_key": ["a"]}), SESSION_MSG),
        (json!({"concurrency_key": "k", "concurrency_limit": 0}), LIMIT_MSG),
        (json!({"concurrency_key": "k", "concurrency_limit": 1.5}), LIMIT_MSG),
        (json!({"concurrency_key": "k", "concurrency_limit": 100001}), LIMIT_MSG),
        (json!({"concurrency_key": "k", "concurrency_limit": "3"}), LIMIT_MSG),
        (json!({"concurrency_key": "k", "concurrency_limit": true}), LIMIT_MSG),
        (
            json!({"concurrency_limit": 3}),
            "concurrency_limit needs concurrency_key or limit",
        ),
        (
            json!({"concurrency_limit": 3, "ordering_key": "o"}),
            "concurrency_limit needs concurrency_key or limit",
        ),
        (
            json!({"start_rate": {"limit": 1, "period_seconds": 1}}),
            "start_rate needs concurrency_key or limit",
        ),
        (rate(json!(5)), RATE_SHAPE_MSG),
        (rate(json!([1, 1])), RATE_SHAPE_MSG),
        (
            rate(json!({"limit": 1})),
            "start_rate.period_seconds is required",
        ),
        (
            rate(json!({"period_seconds": 1})),
            "start_rate.limit is required",
        ),
        (rate(json!({"limit": 0, "period_seconds": 1})), RATE_LIMIT_MSG),
        (
            rate(json!({"limit": 1000001, "period_seconds": 1})),
            RATE_LIMIT_MSG,
        ),
        (rate(json!({"limit": 2.5, "period_seconds": 1})), RATE_LIMIT_MSG),
        (rate(json!({"limit": 1, "period_seconds": 0})), RATE_PERIOD_MSG),
        (rate(json!({"limit": 1, "period_seconds": -1})), RATE_PERIOD_MSG),
        (
            rate(json!({"limit": 1, "period_seconds": 86401})),
            RATE_PERIOD_MSG,
        ),
        (rate(json!({"limit": 1, "period_seconds": "1"})), RATE_PERIOD_MSG),
        (
            rate(json!({"limit": 1, "period_seconds": 1e308})),
            RATE_PERIOD_MSG,
        ),
        (
            rate(json!({"limit": 1, "period_second": 1})),
            "unknown key 'start_rate.period_second'; valid keys are: limit, period_seconds — did you mean 'period_seconds'?",
        ),
        (json!({"limit": "a b"}), NAME_MSG),
        (json!({"limit": ""}), NAME_MSG),
        (json!({"limit": "x".repeat(129)}), NAME_MSG),
        (json!({"limit": 7}), NAME_MSG),
        (json!({"limit": "ok\n"}), NAME_MSG),
        // several bad options: the first in the TS producer's order is named
        (
            json!({"ordering_key": "", "concurrency_limit": "3", "concurrency_key": ""}),
            KEY_MSG,
        ),
    ]
}

#[tokio::test]
async fn bad_options_refused_and_nothing_written() {
    let server = RedisServer::start("flow");
    let p = server.producer();
    let mut con = server.con();
    for (options, message) in errors() {
        let e = enqueue_json(&p, options.clone()).await.unwrap_err();
        assert_eq!(e.code(), "invalid_argument", "{options}");
        assert_eq!(e.message(), message, "{options}");
        assert_eq!(dbsize(&mut con), 0, "{options}");
    }
    // the struct form is checked by the same rules
    let e = p
        .enqueue(
            "f",
            Map::new(),
            EnqueueOptions {
                concurrency_key: Some("k".into()),
                start_rate: Some(StartRate::new(1, f64::NAN)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), RATE_PERIOD_MSG);
    let e = p
        .enqueue(
            "f",
            Map::new(),
            EnqueueOptions {
                start_rate: Some(StartRate::new(5, 1.0)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "start_rate needs concurrency_key or limit");
    // a bad item of a bulk enqueue writes no item
    let items = vec![
        EnqueueItem::from_json(&json!({"function_name": "f", "options": {"ordering_key": "s"}}))
            .unwrap(),
        EnqueueItem::from_json(&json!({"function_name": "f", "options": {"concurrency_limit": 2}}))
            .unwrap(),
    ];
    let e = p.enqueue_many(items).await.unwrap_err();
    assert_eq!(
        e.message(),
        "concurrency_limit needs concurrency_key or limit"
    );
    assert_eq!(dbsize(&mut con), 0);
}
