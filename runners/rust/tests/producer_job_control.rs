//! Job control in the producer (issue 20): `cancel` with the shared job-cancel-2.lua (waiting
//! and running jobs, refusals), `wait_for_completion` on a cancel, the `retry` / `expires_at`
//! / `expires_in` enqueue options, and the adapter's `cancel` op. Against a private
//! redis-server on a Unix socket (one per test).
#![cfg(feature = "producer")]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rrqkit::canonical::parse_timestamp;
use rrqkit::producer::{
    Backoff, EnqueueItem, RetryPolicy, CANCEL_NOT_FOUND, CANCEL_NOT_WAITING,
    CANCEL_RUNNING_UNFENCED, MSG_EXPIRES_PAST,
};
use rrqkit::{CancelResult, EnqueueOptions, JobStatus};
use serde_json::{json, Map, Value};

use common::{example, RedisServer, TempDir};

fn hgetall(con: &mut redis::Connection, key: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL").arg(key).query(con).unwrap()
}

fn dbsize(con: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).unwrap()
}

fn hset(con: &mut redis::Connection, key: &str, fields: &[(&str, &str)]) {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    let _: i64 = cmd.query(con).unwrap();
}

fn refused(status: Option<&str>, reason: &str) -> CancelResult {
    CancelResult {
        cancelled: false,
        status: status.map(str::to_string),
        reason: Some(reason.to_string()),
    }
}

#[tokio::test]
async fn cancel_waiting_job_and_refusals() {
    let server = RedisServer::start("jobctl");
    let p = server.producer();
    let mut con = server.con();

    let id = p
        .enqueue("f", Map::new(), EnqueueOptions::default())
        .await
        .unwrap();
    let r = p.cancel(&id).await.unwrap();
    assert_eq!(
        r,
        CancelResult {
            cancelled: true,
            status: Some("CANCELLED".into()),
            reason: None
        }
    );
    assert_eq!(
        r.to_json(),
        json!({"cancelled": true, "status": "CANCELLED"})
    );
    let h = hgetall(&mut con, &format!("rrq:job:{id}"));
    assert_eq!(h["status"], "CANCELLED");
    assert!(h["completion_time"].ends_with("+00:00"));
    let in_queue: Option<f64> = redis::cmd("ZSCORE")
        .arg("rrq:queue:default")
        .arg(&id)
        .query(&mut con)
        .unwrap();
    assert_eq!(in_queue, None);

    // a second cancel is refused: the status no longer allows it
    assert_eq!(
        p.cancel(&id).await.unwrap(),
        refused(Some("CANCELLED"), CANCEL_NOT_WAITING)
    );
    let r = p.cancel("no-such-job").await.unwrap();
    assert_eq!(r, refused(None, CANCEL_NOT_FOUND));
    assert_eq!(
        r.to_json(),
        json!({"cancelled": false, "status": null, "reason": "not_found"})
    );
    assert!(p.cancel("").await.is_err());

    // wait_for_completion returns at once on CANCELLED
    let t0 = Instant::now();
    let done = p
        .wait_for_completion(&id, Duration::from_secs(10), Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn cancel_running_job() {
    let server = RedisServer::start("jobctl");
    let p = server.producer();
    let mut con = server.con();

    // A job claimed by an rrqkit orchestrator: ACTIVE, lease_fence, lock, lease entry.
    let id = p
        .enqueue("f", Map::new(), EnqueueOptions::default())
        .await
        .unwrap();
    let key = format!("rrq:job:{id}");
    let _: i64 = redis::cmd("ZREM")
        .arg("rrq:queue:default")
        .arg(&id)
        .query(&mut con)
        .unwrap();
    hset(
        &mut con,
        &key,
        &[
            ("status", "ACTIVE"),
            ("lease_fence", "7"),
            ("worker_id", "w-1"),
            ("runs", "1"),
        ],
    );
    let _: () = redis::cmd("SET")
        .arg(format!("rrq:lock:job:{id}"))
        .arg("w-1:7")
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg("rrq:leases")
        .arg(9_999_999_999_999i64)
        .arg(&id)
        .query(&mut con)
        .unwrap();

    // Listen on the holder's cancel channel.
    let mut sub_con = server.con();
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = std::thread::spawn(move || {
        let mut sub = sub_con.as_pubsub();
        sub.subscribe("rrq:cancel:w-1").unwrap();
        sub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        ready_tx.send(()).unwrap();
        let msg = sub.get_message().unwrap();
        tx.send(msg.get_payload::<String>().unwrap()).unwrap();
    });
    ready_rx.recv().unwrap();

    let r = p.cancel(&id).await.unwrap();
    assert!(r.cancelled, "{r:?}");
    assert_eq!(r.status.as_deref(), Some("CANCELLED"));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        id,
        "published on rrq:cancel:w-1"
    );
    listener.join().unwrap();
    let h = hgetall(&mut con, &key);
    assert_eq!(h["status"], "CANCELLED");
    assert_eq!(h["last_error"], "Job cancelled while running");
    assert_eq!(h["run_1_outcome"], "cancelled");
    let lock: i64 = redis::cmd("EXISTS")
        .arg(format!("rrq:lock:job:{id}"))
        .query(&mut con)
        .unwrap();
    assert_eq!(lock, 0, "the attempt's fence is revoked");

    // ACTIVE without a lease_fence: held by RRQ's orchestrator, refused, nothing written.
    let id2 = p
        .enqueue("f", Map::new(), EnqueueOptions::default())
        .await
        .unwrap();
    let key2 = format!("rrq:job:{id2}");
    hset(&mut con, &key2, &[("status", "ACTIVE")]);
    let before = hgetall(&mut con, &key2);
    assert_eq!(
        p.cancel(&id2).await.unwrap(),
        refused(Some("ACTIVE"), CANCEL_RUNNING_UNFENCED)
    );
    assert_eq!(hgetall(&mut con, &key2), before);
    let _ = dbsize(&mut con);
}

fn opts(v: Value) -> EnqueueOptions {
    EnqueueOptions::from_json(&v).unwrap().0
}

#[tokio::test]
async fn retry_and_expiry_options_are_stored() {
    let server = RedisServer::start("jobctl");
    let p = server.producer();
    let mut con = server.con();

    // Without the options the hash has exactly RRQ's fields.
    let plain = p
        .enqueue(
            "f",
            Map::new(),
            opts(json!({"job_id": "plain", "enqueue_time": "2026-01-01T00:00:00Z"})),
        )
        .await
        .unwrap();
    let plain = hgetall(&mut con, &format!("rrq:job:{plain}"));
    assert!(!plain.contains_key("retry_policy") && !plain.contains_key("expires_at"));

    let policy = RetryPolicy {
        max_attempts: Some(4),
        backoff: Some(Backoff::Fixed),
        delay_seconds: Some(0.2),
        non_retryable_error_types: Some(vec!["CardDeclined".into()]),
        ..Default::default()
    };
    let o = EnqueueOptions {
        job_id: Some("ctl".into()),
        enqueue_time: Some(parse_timestamp("2026-01-01T00:00:00Z").unwrap()),
        retry: Some(policy),
        expires_in: Some(60.0),
        ..Default::default()
    };
    let t0 = chrono::Utc::now();
    p.enqueue("f", Map::new(), o).await.unwrap();
    let h = hgetall(&mut con, "rrq:job:ctl");
    assert_eq!(
        h["retry_policy"],
        r#"{"backoff":"fixed","delay_seconds":0.2,"max_attempts":4,"non_retryable_error_types":["CardDeclined"]}"#
    );
    assert_eq!(h["max_retries"], "4");
    // expires_in counts from this producer's clock (not the given enqueue_time), in the
    // enqueue_time format with millisecond precision.
    let expires = parse_timestamp(&h["expires_at"]).unwrap();
    let secs = (expires - t0).num_milliseconds();
    assert!((59_000..=61_000).contains(&secs), "{}", h["expires_at"]);
    assert!(h["expires_at"].ends_with("+00:00"));
    let fraction = h["expires_at"].split('.').nth(1).map_or(0, |f| f.len() - 6);
    assert!(fraction <= 3, "{}", h["expires_at"]);
    // Apart from the new fields (and max_retries, from max_attempts) the same hash.
    let mut rest = h.clone();
    for k in ["retry_policy", "expires_at", "max_retries", "id"] {
        rest.remove(k);
    }
    let mut plain_rest = plain.clone();
    for k in ["max_retries", "id"] {
        plain_rest.remove(k);
    }
    assert_eq!(rest, plain_rest);

    // expires_at as given, truncated to microseconds; delays alone are stored as given
    p.enqueue(
        "f",
        Map::new(),
        opts(
            json!({"job_id": "at", "expires_at": "2099-05-01T10:00:00.1234567Z",
            "retry": {"delays": [1, 2.5], "max_snoozes": 3}}),
        ),
    )
    .await
    .unwrap();
    let h = hgetall(&mut con, "rrq:job:at");
    assert_eq!(h["expires_at"], "2099-05-01T10:00:00.123456+00:00");
    assert_eq!(h["retry_policy"], r#"{"delays":[1,2.5],"max_snoozes":3}"#);
    assert_eq!(h["max_retries"], "5", "no max_attempts: the default");

    // max_retries equal to max_attempts is fine
    p.enqueue(
        "f",
        Map::new(),
        opts(json!({"job_id": "same", "max_retries": 2, "retry": {"max_attempts": 2}})),
    )
    .await
    .unwrap();
    assert_eq!(hgetall(&mut con, "rrq:job:same")["max_retries"], "2");
}

#[tokio::test]
async fn options_reach_every_enqueue_path() {
    let server = RedisServer::start("jobctl");
    let p = server.producer();
    let mut con = server.con();
    let retry = json!({"max_attempts": 2});
    let policy = r#"{"max_attempts":2}"#;

    // debounced: created, then updated (the fields follow the job the key names)
    let d1 = p
        .enqueue_with_debounce(
            "f",
            Map::new(),
            opts(json!({"debounce_key": "d", "debounce_seconds": 30, "retry": retry})),
        )
        .await
        .unwrap();
    assert_eq!(
        hgetall(&mut con, &format!("rrq:job:{d1}"))["retry_policy"],
        policy
    );
    let d2 = p
        .enqueue_with_debounce(
            "f",
            Map::new(),
            opts(
                json!({"debounce_key": "d", "debounce_seconds": 30, "retry": {"max_attempts": 3}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(d1, d2);
    let h = hgetall(&mut con, &format!("rrq:job:{d1}"));
    assert_eq!(h["retry_policy"], r#"{"max_attempts":3}"#);

    // rate limited: the first call writes the fields, the dropped one writes nothing
    let r1 = p
        .enqueue_with_rate_limit(
            "f",
            Map::new(),
            opts(json!({"rate_limit_key": "r", "rate_limit_seconds": 30, "expires_in": 30})),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(hgetall(&mut con, &format!("rrq:job:{r1}")).contains_key("expires_at"));
    let dropped = p
        .enqueue_with_rate_limit(
            "f",
            Map::new(),
            opts(json!({"rate_limit_key": "r", "rate_limit_seconds": 30, "expires_in": 30})),
        )
        .await
        .unwrap();
    assert_eq!(dropped, None);

    // bulk: only the items that ask for it get the fields
    let items = vec![
        EnqueueItem {
            function_name: "a".into(),
            params: Map::new(),
            options: opts(json!({"job_id": "b1", "retry": retry})),
        },
        EnqueueItem {
            function_name: "b".into(),
            params: Map::new(),
            options: opts(json!({"job_id": "b2"})),
        },
    ];
    assert_eq!(p.enqueue_many(items).await.unwrap(), vec!["b1", "b2"]);
    assert_eq!(hgetall(&mut con, "rrq:job:b1")["retry_policy"], policy);
    assert_eq!(hgetall(&mut con, "rrq:job:b1")["max_retries"], "2");
    assert!(!hgetall(&mut con, "rrq:job:b2").contains_key("retry_policy"));

    // an idempotent hit returns the existing job and changes nothing on it
    let first = p
        .enqueue("f", Map::new(), opts(json!({"unique_key": "u"})))
        .await
        .unwrap();
    let before = hgetall(&mut con, &format!("rrq:job:{first}"));
    let again = p
        .enqueue(
            "f",
            obj(json!({"other": 1})),
            opts(json!({"unique_key": "u", "retry": retry})),
        )
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(hgetall(&mut con, &format!("rrq:job:{first}")), before);
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn bad_options_write_nothing() {
    let server = RedisServer::start("jobctl");
    let p = server.producer();
    let mut con = server.con();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"retry": {"jitter": 2}}),
            "invalid_argument",
            "retry.jitter must be a number between 0 and 1, got 2",
        ),
        (
            json!({"retry": {"max_attempts": 0, "backoff": "linear"}}),
            "invalid_argument",
            "retry.max_attempts must be an integer >= 1, got 0; retry.backoff must be one of \"exponential\", \"fixed\", \"list\", got \"linear\"",
        ),
        (
            json!({"retry": {"max_retries": 3}}),
            "invalid_argument",
            "unknown key 'retry.max_retries'",
        ),
        (
            json!({"retry": {"backoff": "list"}}),
            "invalid_argument",
            "retry.delays is required with backoff \"list\"",
        ),
        (json!({"retry": 3}), "invalid_argument", "retry must be an object (a table)"),
        (
            json!({"retry": {"max_attempts": 3}, "max_retries": 2}),
            "conflicting_options",
            "max_retries (2) and retry.max_attempts (3) differ; give one",
        ),
        (
            json!({"expires_in": 10, "expires_at": "2099-01-01T00:00:00Z"}),
            "conflicting_options",
            "expires_at and expires_in are mutually exclusive; give one",
        ),
        (
            json!({"expires_at": "2020-01-01T00:00:00Z"}),
            "invalid_argument",
            MSG_EXPIRES_PAST,
        ),
        (
            json!({"expires_in": 0}),
            "invalid_argument",
            "expires_in must be a finite number > 0",
        ),
        (
            json!({"expires_in": -5}),
            "invalid_argument",
            "expires_in must be a finite number > 0",
        ),
        (
            json!({"expires_at": "tomorrow"}),
            "invalid_argument",
            "expires_at must be an RFC 3339 timestamp",
        ),
    ];
    for (raw, code, message) in cases {
        let result = match EnqueueOptions::from_json(&raw) {
            Err(e) => Err(e),
            Ok((o, _)) => p.enqueue("f", Map::new(), o).await,
        };
        let e = result.expect_err(&raw.to_string());
        assert_eq!(e.code(), code, "{raw}");
        assert!(e.message().starts_with(message), "{raw}: {}", e.message());
    }
    // the typed API is validated the same way
    let e = p
        .enqueue(
            "f",
            Map::new(),
            EnqueueOptions {
                retry: Some(RetryPolicy {
                    delays: Some(vec![]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "retry.delays must be a non-empty array of numbers >= 0, got []"
    );
    assert_eq!(dbsize(&mut con), 0);
}

#[test]
fn adapter_cancel_and_job_control_options() {
    let server = RedisServer::start("jobctl");
    let dir = TempDir::new("adapter-jobctl");
    let mut cmd = Command::new(example("producer_adapter"));
    cmd.current_dir(dir.path())
        .env_remove("RRQ_CONFIG")
        .env_remove("RRQ_REDIS_DSN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut call = |cmd: Value| -> Value {
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(reply["id"], cmd["id"]);
        reply
    };
    let r = call(json!({"id": 1, "op": "configure", "config": {"redis_dsn": server.dsn()}}));
    assert_eq!(r["ok"], true, "{r}");
    let r = call(
        json!({"id": 2, "op": "enqueue", "function_name": "f", "params": {},
        "options": {"job_id": "a1", "retry": {"max_attempts": 3, "jitter": 0.5}, "expires_in": 30}}),
    );
    assert_eq!(r, json!({"id": 2, "ok": true, "result": "a1"}));
    let r = call(
        json!({"id": 3, "op": "enqueue", "function_name": "f", "params": {},
        "options": {"retry": {"jitter": 5}}}),
    );
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["code"], "invalid_argument");
    let r = call(json!({"id": 4, "op": "cancel", "job_id": "a1"}));
    assert_eq!(
        r,
        json!({"id": 4, "ok": true, "result": {"cancelled": true, "status": "CANCELLED"}})
    );
    let r = call(json!({"id": 5, "op": "cancel", "job_id": "a1"}));
    assert_eq!(
        r["result"],
        json!({"cancelled": false, "status": "CANCELLED", "reason": "not_waiting"})
    );
    let r = call(json!({"id": 6, "op": "cancel", "job_id": "nope"}));
    assert_eq!(
        r["result"],
        json!({"cancelled": false, "status": null, "reason": "not_found"})
    );
    let r = call(json!({"id": 7, "op": "cancel"}));
    assert_eq!(r["error"]["code"], "invalid_argument");
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));

    let mut con = server.con();
    let h = hgetall(&mut con, "rrq:job:a1");
    assert_eq!(h["retry_policy"], r#"{"jitter":0.5,"max_attempts":3}"#);
    assert_eq!(h["max_retries"], "3");
    assert!(h.contains_key("expires_at"));
}
