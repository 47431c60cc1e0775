//! The producer against a real redis-server (one per test binary, on a Unix socket, one
//! database per test), and the producer adapter as a subprocess.
#![cfg(feature = "producer")]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use rrqkit::canonical::parse_timestamp;
use rrqkit::producer::{EnqueueItem, MAX_PARAMS_BYTES};
use rrqkit::{EnqueueOptions, JobStatus, Producer, ProducerConfig};
use serde_json::{json, Map, Value};

use common::{example, TempDir};

struct RedisServer {
    socket: PathBuf,
    _dir: TempDir,
}

/// One redis-server for this test process. It is started from a thread that lives as long as
/// the process and gets PR_SET_PDEATHSIG, so it dies with the tests.
fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        remove_stale_dirs();
        let dir = TempDir::new("redis");
        let socket = dir.path().join("redis.sock");
        let sock_arg = socket.clone();
        let dir_arg = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("redis-server-parent".into())
            .spawn(move || {
                let mut cmd = Command::new(
                    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()),
                );
                cmd.args([
                    "--port",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--databases",
                    "256",
                ])
                .arg("--unixsocket")
                .arg(&sock_arg)
                .arg("--dir")
                .arg(&dir_arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(
                            libc::PR_SET_PDEATHSIG,
                            libc::SIGKILL as libc::c_ulong,
                            0,
                            0,
                            0,
                        );
                        Ok(())
                    });
                }
                let child = cmd.spawn();
                let ok = child.is_ok();
                let _ = tx.send(child.map(|c| c.id()).map_err(|e| e.to_string()));
                if ok {
                    loop {
                        std::thread::park();
                    }
                }
            })
            .unwrap();
        rx.recv().unwrap().expect("redis-server must be on PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { socket, _dir: dir }
    })
}

/// The server's directory outlives this process (statics are not dropped); remove the ones of
/// earlier runs whose process is gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("rrqkit-redis-") else {
            continue;
        };
        let pid: i32 = rest
            .split('-')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if pid > 0 && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A DSN on a database no other test uses.
fn fresh_dsn() -> String {
    static DB: AtomicU32 = AtomicU32::new(1);
    let db = DB.fetch_add(1, Ordering::SeqCst);
    assert!(db < 256);
    format!("redis+unix://{}?db={db}", server().socket.display())
}

fn sync_con(dsn: &str) -> redis::Connection {
    redis::Client::open(dsn).unwrap().get_connection().unwrap()
}

fn hgetall(con: &mut redis::Connection, key: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL").arg(key).query(con).unwrap()
}

fn producer(dsn: &str) -> Producer {
    Producer::new(ProducerConfig::with_dsn(dsn)).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn ts(s: &str) -> chrono::DateTime<chrono::Utc> {
    parse_timestamp(s).unwrap()
}

fn dbsize(con: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).unwrap()
}

#[tokio::test]
async fn enqueue_writes_the_exact_hash() {
    let dsn = fresh_dsn();
    let mut mappings = IndexMap::new();
    mappings.insert("tenant".to_string(), "params.tenant.id".to_string());
    mappings.insert("order_id".to_string(), "order.id".to_string());
    mappings.insert("trace_wins".to_string(), "tenant.id".to_string());
    let p = Producer::new(ProducerConfig {
        correlation_mappings: mappings,
        ..ProducerConfig::with_dsn(&dsn)
    })
    .unwrap();
    let mut con = sync_con(&dsn);
    // subscribe to the wake-up channel before enqueueing
    let mut sub_con = sync_con(&dsn);
    let (wake_tx, wake_rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ps = sub_con.as_pubsub();
        ps.subscribe("rrq:wake:rrq:queue:default").unwrap();
        ready_tx.send(()).unwrap();
        ps.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if let Ok(msg) = ps.get_message() {
            let payload: String = msg.get_payload().unwrap();
            let _ = wake_tx.send(payload);
        }
    });
    ready_rx.recv().unwrap();

    let mut trace = IndexMap::new();
    trace.insert(
        "traceparent".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    );
    trace.insert("trace_wins".to_string(), "from-trace".to_string());
    let params = obj(json!({
        "z": 1, "a": {"y": [3, 1.5, 2.0, "ü\n\"q\"\u{1}"], "b": null}, "tenant": {"id": "acme"},
        "order": {"id": 42}, "é": true, "E": false
    }));
    let options = EnqueueOptions {
        job_id: Some("job-exact".into()),
        enqueue_time: Some(ts("2026-01-01T12:00:00.12Z")),
        trace_context: Some(trace),
        ..Default::default()
    };
    let id = p.enqueue("mail#send", params, options).await.unwrap();
    assert_eq!(id, "job-exact");
    let h = hgetall(&mut con, "rrq:job:job-exact");
    let expected: HashMap<String, String> = [
        ("id", "job-exact"),
        ("function_name", "mail#send"),
        ("job_params", "{\"E\":false,\"a\":{\"b\":null,\"y\":[3,1.5,2,\"ü\\n\\\"q\\\"\\u0001\"]},\"order\":{\"id\":42},\"tenant\":{\"id\":\"acme\"},\"z\":1,\"é\":true}"),
        ("enqueue_time", "2026-01-01T12:00:00.120+00:00"),
        ("status", "PENDING"),
        ("current_retries", "0"),
        ("next_scheduled_run_time", "2026-01-01T12:00:00.120+00:00"),
        ("max_retries", "5"),
        ("job_timeout_seconds", "300"),
        ("result_ttl_seconds", "86400"),
        ("queue_name", "rrq:queue:default"),
        ("result", "null"),
        ("trace_context", "{\"trace_wins\":\"from-trace\",\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}"),
        ("correlation_context", "{\"order_id\":\"42\",\"tenant\":\"acme\",\"trace_wins\":\"from-trace\"}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(h, expected);
    let score: f64 = redis::cmd("ZSCORE")
        .arg("rrq:queue:default")
        .arg("job-exact")
        .query(&mut con)
        .unwrap();
    let ms = ts("2026-01-01T12:00:00.12Z").timestamp_millis();
    assert_eq!(score as i64, ms);
    assert_eq!(
        wake_rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        ms.to_string()
    );
    // exactly three keys: the job, the queue and rrqkit's queue registry (rrq:queues)
    assert_eq!(dbsize(&mut con), 3);
}

#[tokio::test]
async fn every_option() {
    let dsn = fresh_dsn();
    let p = Producer::new(ProducerConfig {
        queue_name: "cfg-queue".into(),
        max_retries: 7,
        job_timeout_seconds: 11,
        result_ttl_seconds: 13,
        ..ProducerConfig::with_dsn(&dsn)
    })
    .unwrap();
    let mut con = sync_con(&dsn);

    // config defaults
    let id = p
        .enqueue("f", Map::new(), EnqueueOptions::default())
        .await
        .unwrap();
    assert!(uuid::Uuid::parse_str(&id).unwrap().get_version_num() == 4);
    assert_eq!(id, id.to_lowercase());
    let h = hgetall(&mut con, &format!("rrq:job:{id}"));
    assert_eq!(h["queue_name"], "rrq:queue:cfg-queue");
    assert_eq!(h["max_retries"], "7");
    assert_eq!(h["job_timeout_seconds"], "11");
    assert_eq!(h["result_ttl_seconds"], "13");
    assert!(!h.contains_key("trace_context") && !h.contains_key("correlation_context"));
    // enqueue_time is now, with the +00:00 offset
    let enq = ts(&h["enqueue_time"]);
    assert!((chrono::Utc::now() - enq).num_seconds().abs() < 5);
    assert!(h["enqueue_time"].ends_with("+00:00"));

    // per-call options
    let now = ts("2026-03-01T00:00:00Z");
    let id = p
        .enqueue(
            "g",
            obj(json!({"k": 1})),
            EnqueueOptions {
                queue_name: Some("rrq:queue:already".into()),
                max_retries: Some(0),
                job_timeout_seconds: Some(1),
                result_ttl_seconds: Some(-1),
                enqueue_time: Some(now),
                defer_by_seconds: Some(2.0001),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let h = hgetall(&mut con, &format!("rrq:job:{id}"));
    assert_eq!(h["queue_name"], "rrq:queue:already");
    assert_eq!(h["max_retries"], "0");
    assert_eq!(h["job_timeout_seconds"], "1");
    assert_eq!(h["result_ttl_seconds"], "-1");
    assert_eq!(h["enqueue_time"], "2026-03-01T00:00:00+00:00");
    assert_eq!(
        h["next_scheduled_run_time"],
        "2026-03-01T00:00:02.001+00:00"
    );
    let score: i64 = redis::cmd("ZSCORE")
        .arg("rrq:queue:already")
        .arg(&id)
        .query(&mut con)
        .unwrap();
    assert_eq!(score, now.timestamp_millis() + 2001);

    // defer_until and defer_by_seconds together are refused (PRODUCER.md §6)
    let e = p
        .enqueue(
            "g",
            Map::new(),
            EnqueueOptions {
                defer_until: Some(ts("2030-01-01T00:00:00.5+02:00")),
                defer_by_seconds: Some(100.0),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "conflicting_options");
    let id = p
        .enqueue(
            "g",
            Map::new(),
            EnqueueOptions {
                queue_name: Some("later".into()),
                defer_until: Some(ts("2030-01-01T00:00:00.5+02:00")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let h = hgetall(&mut con, &format!("rrq:job:{id}"));
    assert_eq!(
        h["next_scheduled_run_time"],
        "2029-12-31T22:00:00.500+00:00"
    );
    let score: i64 = redis::cmd("ZSCORE")
        .arg("rrq:queue:later")
        .arg(&id)
        .query(&mut con)
        .unwrap();
    assert_eq!(score, ts("2029-12-31T22:00:00.5Z").timestamp_millis());
}

#[tokio::test]
async fn idempotency() {
    let dsn = fresh_dsn();
    let p = producer(&dsn);
    let mut con = sync_con(&dsn);
    let opts = EnqueueOptions {
        unique_key: Some("order-1".into()),
        ..Default::default()
    };
    let a = p
        .enqueue("f", obj(json!({"n": 1})), opts.clone())
        .await
        .unwrap();
    let b = p
        .enqueue("f", obj(json!({"n": 2})), opts.clone())
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        hgetall(&mut con, &format!("rrq:job:{a}"))["job_params"],
        "{\"n\":1}"
    );
    let n: i64 = redis::cmd("ZCARD")
        .arg("rrq:queue:default")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    let key_val: String = redis::cmd("GET")
        .arg("rrq:idempotency:order-1")
        .query(&mut con)
        .unwrap();
    assert_eq!(key_val, a);
    let ttl: i64 = redis::cmd("TTL")
        .arg("rrq:idempotency:order-1")
        .query(&mut con)
        .unwrap();
    assert!(ttl > 21590 && ttl <= 21600, "ttl {ttl}");

    // a stale key (its job is gone) is replaced
    let _: () = redis::cmd("DEL")
        .arg(format!("rrq:job:{a}"))
        .query(&mut con)
        .unwrap();
    let c = p.enqueue("f", obj(json!({"n": 3})), opts).await.unwrap();
    assert_ne!(c, a);
    let key_val: String = redis::cmd("GET")
        .arg("rrq:idempotency:order-1")
        .query(&mut con)
        .unwrap();
    assert_eq!(key_val, c);

    // unique_ttl_seconds, raised to the defer delay
    p.enqueue(
        "f",
        Map::new(),
        EnqueueOptions {
            unique_key: Some("short".into()),
            unique_ttl_seconds: Some(50),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg("rrq:idempotency:short")
        .query(&mut con)
        .unwrap();
    assert!(ttl > 45 && ttl <= 50, "ttl {ttl}");
    p.enqueue(
        "f",
        Map::new(),
        EnqueueOptions {
            unique_key: Some("deferred".into()),
            unique_ttl_seconds: Some(50),
            defer_by_seconds: Some(1000.2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg("rrq:idempotency:deferred")
        .query(&mut con)
        .unwrap();
    assert!(ttl > 995 && ttl <= 1001, "ttl {ttl}");
}

#[tokio::test]
async fn rate_limit() {
    let dsn = fresh_dsn();
    let p = producer(&dsn);
    let mut con = sync_con(&dsn);
    let opts = EnqueueOptions {
        rate_limit_key: Some("user-9".into()),
        rate_limit_seconds: Some(2.5),
        ..Default::default()
    };
    let first = p
        .enqueue_with_rate_limit("f", Map::new(), opts.clone())
        .await
        .unwrap();
    let id = first.expect("first call creates the job");
    let second = p
        .enqueue_with_rate_limit("f", Map::new(), opts.clone())
        .await
        .unwrap();
    assert_eq!(second, None);
    let held: String = redis::cmd("GET")
        .arg("rrq:rate_limit:user-9")
        .query(&mut con)
        .unwrap();
    assert_eq!(held, id);
    let ttl: i64 = redis::cmd("TTL")
        .arg("rrq:rate_limit:user-9")
        .query(&mut con)
        .unwrap();
    assert!(ttl == 3 || ttl == 2, "ttl {ttl}");
    let n: i64 = redis::cmd("ZCARD")
        .arg("rrq:queue:default")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    // plain enqueue with rate-limit options: rate_limited error
    let e = p.enqueue("f", Map::new(), opts).await.unwrap_err();
    assert_eq!(e.code(), "rate_limited");
    // an already prefixed key is not prefixed twice
    let id = p
        .enqueue_with_rate_limit(
            "f",
            Map::new(),
            EnqueueOptions {
                rate_limit_key: Some("rrq:rate_limit:pre".into()),
                rate_limit_seconds: Some(1.0),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    let held: String = redis::cmd("GET")
        .arg("rrq:rate_limit:pre")
        .query(&mut con)
        .unwrap();
    assert_eq!(held, id);
    // a duplicate job id releases the window
    let e = p
        .enqueue_with_rate_limit(
            "f",
            Map::new(),
            EnqueueOptions {
                job_id: Some(id.clone()),
                rate_limit_key: Some("fresh".into()),
                rate_limit_seconds: Some(10.0),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "duplicate_job_id");
    let exists: i64 = redis::cmd("EXISTS")
        .arg("rrq:rate_limit:fresh")
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn debounce() {
    let dsn = fresh_dsn();
    let mut mappings = IndexMap::new();
    mappings.insert("tenant".to_string(), "tenant".to_string());
    let p = Producer::new(ProducerConfig {
        correlation_mappings: mappings,
        ..ProducerConfig::with_dsn(&dsn)
    })
    .unwrap();
    let mut con = sync_con(&dsn);
    let t0 = ts("2026-01-01T12:00:00Z");
    let first = p
        .enqueue_with_debounce(
            "f",
            obj(json!({"v": 1, "tenant": "acme"})),
            EnqueueOptions {
                debounce_key: Some("doc-1".into()),
                debounce_seconds: Some(1.5),
                enqueue_time: Some(t0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let h = hgetall(&mut con, &format!("rrq:job:{first}"));
    assert_eq!(
        h["next_scheduled_run_time"],
        "2026-01-01T12:00:01.500+00:00"
    );
    assert_eq!(h["correlation_context"], "{\"tenant\":\"acme\"}");
    let ttl: i64 = redis::cmd("TTL")
        .arg("rrq:debounce:doc-1")
        .query(&mut con)
        .unwrap();
    assert!(ttl == 2 || ttl == 1, "ttl {ttl}");

    // a second call while PENDING updates the same job, here moving it to another queue
    let t1 = ts("2026-01-01T12:00:01Z");
    let mut trace = IndexMap::new();
    trace.insert("traceparent".to_string(), "tp".to_string());
    let second = p
        .enqueue_with_debounce(
            "g",
            obj(json!({"v": 2})),
            EnqueueOptions {
                debounce_key: Some("doc-1".into()),
                debounce_seconds: Some(30.0),
                enqueue_time: Some(t1),
                queue_name: Some("other".into()),
                max_retries: Some(1),
                trace_context: Some(trace),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(second, first);
    let h = hgetall(&mut con, &format!("rrq:job:{first}"));
    assert_eq!(h["function_name"], "g");
    assert_eq!(h["job_params"], "{\"v\":2}");
    assert_eq!(h["enqueue_time"], "2026-01-01T12:00:00+00:00");
    assert_eq!(h["next_scheduled_run_time"], "2026-01-01T12:00:31+00:00");
    assert_eq!(h["queue_name"], "rrq:queue:other");
    assert_eq!(h["max_retries"], "1");
    assert_eq!(h["trace_context"], "{\"traceparent\":\"tp\"}");
    assert!(!h.contains_key("correlation_context"));
    let old: Option<f64> = redis::cmd("ZSCORE")
        .arg("rrq:queue:default")
        .arg(&first)
        .query(&mut con)
        .unwrap();
    assert_eq!(old, None);
    let new: i64 = redis::cmd("ZSCORE")
        .arg("rrq:queue:other")
        .arg(&first)
        .query(&mut con)
        .unwrap();
    assert_eq!(new, ts("2026-01-01T12:00:31Z").timestamp_millis());
    let ttl: i64 = redis::cmd("TTL")
        .arg("rrq:debounce:doc-1")
        .query(&mut con)
        .unwrap();
    assert!(ttl > 25, "ttl {ttl}");

    // once the job is no longer pending, a new job is created
    let _: () = redis::cmd("HSET")
        .arg(format!("rrq:job:{first}"))
        .arg("status")
        .arg("ACTIVE")
        .query(&mut con)
        .unwrap();
    let third = p
        .enqueue_with_debounce(
            "f",
            Map::new(),
            EnqueueOptions {
                debounce_key: Some("doc-1".into()),
                debounce_seconds: Some(1.0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(third, first);
    let held: String = redis::cmd("GET")
        .arg("rrq:debounce:doc-1")
        .query(&mut con)
        .unwrap();
    assert_eq!(held, third);
    // plain enqueue with debounce options behaves as enqueue_with_debounce
    let fourth = p
        .enqueue(
            "f",
            Map::new(),
            EnqueueOptions {
                debounce_key: Some("doc-1".into()),
                debounce_seconds: Some(1.0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fourth, third);
}

#[tokio::test]
async fn duplicate_job_id_writes_nothing() {
    let dsn = fresh_dsn();
    let p = producer(&dsn);
    let mut con = sync_con(&dsn);
    let opts = EnqueueOptions {
        job_id: Some("dup".into()),
        ..Default::default()
    };
    p.enqueue("f", obj(json!({"a": 1})), opts.clone())
        .await
        .unwrap();
    let before = hgetall(&mut con, "rrq:job:dup");
    let e = p
        .enqueue(
            "g",
            obj(json!({"a": 2})),
            EnqueueOptions {
                queue_name: Some("elsewhere".into()),
                ..opts
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "duplicate_job_id");
    assert_eq!(e.message(), "job_id already exists");
    assert_eq!(hgetall(&mut con, "rrq:job:dup"), before);
    // the job, its queue and the queue registry (rrq:queues); nothing for "elsewhere"
    assert_eq!(dbsize(&mut con), 3);
}

#[tokio::test]
async fn enqueue_many_is_validated_first_and_pipelined() {
    let dsn = fresh_dsn();
    let p = producer(&dsn);
    let mut con = sync_con(&dsn);
    let item = |name: &str, job_id: Option<&str>| EnqueueItem {
        function_name: name.to_string(),
        params: obj(json!({"name": name})),
        options: EnqueueOptions {
            job_id: job_id.map(str::to_string),
            ..Default::default()
        },
    };
    // one bad item: nothing is written
    let e = p
        .enqueue_many(vec![item("a", None), item(" ", None), item("c", None)])
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
    assert_eq!(dbsize(&mut con), 0);
    let mut limited = item("x", None);
    limited.options.rate_limit_key = Some("k".into());
    limited.options.rate_limit_seconds = Some(1.0);
    assert_eq!(
        p.enqueue_many(vec![limited]).await.unwrap_err().code(),
        "invalid_argument"
    );
    let e = p
        .enqueue_many(vec![item("a", Some("same")), item("b", Some("same"))])
        .await
        .unwrap_err();
    assert_eq!(e.code(), "duplicate_job_id");
    assert_eq!(dbsize(&mut con), 0);

    let ids = p
        .enqueue_many(vec![
            item("a", Some("m-1")),
            item("b", None),
            item("c", Some("m-3")),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], "m-1");
    assert_eq!(ids[2], "m-3");
    for (id, name) in ids.iter().zip(["a", "b", "c"]) {
        assert_eq!(
            hgetall(&mut con, &format!("rrq:job:{id}"))["function_name"],
            name
        );
    }
    let n: i64 = redis::cmd("ZCARD")
        .arg("rrq:queue:default")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 3);
    assert!(p.enqueue_many(vec![]).await.unwrap().is_empty());
}

#[tokio::test]
async fn validation_errors_write_nothing() {
    let dsn = fresh_dsn();
    let p = producer(&dsn);
    let mut con = sync_con(&dsn);
    let o = EnqueueOptions::default;
    type Case<'a> = (
        &'a str,
        Map<String, Value>,
        EnqueueOptions,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "  ",
            Map::new(),
            o(),
            "invalid_argument",
            "function_name cannot be empty",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                queue_name: Some(" ".into()),
                ..o()
            },
            "invalid_argument",
            "queue_name cannot be empty",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                job_id: Some("".into()),
                ..o()
            },
            "invalid_argument",
            "job_id cannot be empty",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                unique_key: Some("\t".into()),
                ..o()
            },
            "invalid_argument",
            "unique_key cannot be empty",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                max_retries: Some(-1),
                ..o()
            },
            "invalid_argument",
            "max_retries must be a non-negative integer",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                job_timeout_seconds: Some(0),
                ..o()
            },
            "invalid_argument",
            "job_timeout_seconds must be a positive integer",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                unique_ttl_seconds: Some(0),
                ..o()
            },
            "invalid_argument",
            "unique_ttl_seconds must be a positive integer",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                defer_by_seconds: Some(-1.0),
                ..o()
            },
            "invalid_argument",
            "defer_by_seconds must be a finite number >= 0",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                defer_by_seconds: Some(f64::NAN),
                ..o()
            },
            "invalid_argument",
            "defer_by_seconds must be a finite number >= 0",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                rate_limit_key: Some("k".into()),
                rate_limit_seconds: Some(0.0),
                ..o()
            },
            "invalid_argument",
            "rate_limit_seconds must be a finite number > 0",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                debounce_key: Some("k".into()),
                debounce_seconds: Some(f64::INFINITY),
                ..o()
            },
            "invalid_argument",
            "debounce_seconds must be a finite number > 0",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                rate_limit_key: Some("k".into()),
                ..o()
            },
            "invalid_argument",
            "rate_limit_seconds is required with rate_limit_key",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                debounce_seconds: Some(1.0),
                ..o()
            },
            "invalid_argument",
            "debounce_key is required with debounce_seconds",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                rate_limit_key: Some("k".into()),
                rate_limit_seconds: Some(1.0),
                debounce_key: Some("d".into()),
                debounce_seconds: Some(1.0),
                ..o()
            },
            "conflicting_options",
            "rate_limit and debounce options are mutually exclusive",
        ),
        (
            "f",
            Map::new(),
            EnqueueOptions {
                unique_key: Some("u".into()),
                debounce_key: Some("d".into()),
                debounce_seconds: Some(1.0),
                ..o()
            },
            "conflicting_options",
            "unique_key cannot be combined with rate_limit or debounce options",
        ),
        (
            "f",
            obj(json!({"data": "x".repeat(MAX_PARAMS_BYTES)})),
            o(),
            "payload_too_large",
            "params are 16711691 bytes when encoded; the limit is 16711680",
        ),
    ];
    for (name, params, options, code, message) in cases {
        let e = p.enqueue(name, params, options).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (code, message));
    }
    // the typed calls check their own options too
    let e = p
        .enqueue_with_rate_limit("f", Map::new(), o())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
    let e = p
        .enqueue_with_debounce(
            "f",
            Map::new(),
            EnqueueOptions {
                rate_limit_key: Some("k".into()),
                rate_limit_seconds: Some(1.0),
                ..o()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "conflicting_options");
    assert_eq!(dbsize(&mut con), 0);
    // the JSON option parser (used by the adapter) reports unknown names and bad types
    let e = EnqueueOptions::from_json(&json!({"colour": 1})).unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        ("invalid_argument", "unknown option 'colour'")
    );
    let e = EnqueueOptions::from_json(&json!({"defer_until": "soon"})).unwrap_err();
    assert_eq!(e.message(), "defer_until must be an RFC 3339 timestamp");
    let e = EnqueueOptions::from_json(&json!({"trace_context": {"a": 1}})).unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
    let e = EnqueueItem::from_json(&json!({"function_name": "f", "params": [1]})).unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        ("invalid_params", "params must be a JSON object")
    );
    // params given as options.params serialize the same
    let a = EnqueueItem::from_json(
        &json!({"function_name": "f", "options": {"params": {"b": 1, "a": 2}}}),
    )
    .unwrap();
    let b =
        EnqueueItem::from_json(&json!({"function_name": "f", "params": {"a": 2, "b": 1}})).unwrap();
    let ida = p
        .enqueue(&a.function_name, a.params, a.options)
        .await
        .unwrap();
    let idb = p
        .enqueue(&b.function_name, b.params, b.options)
        .await
        .unwrap();
    assert_eq!(
        hgetall(&mut con, &format!("rrq:job:{ida}"))["job_params"],
        hgetall(&mut con, &format!("rrq:job:{idb}"))["job_params"]
    );
}

#[tokio::test]
async fn status_and_wait() {
    let dsn = fresh_dsn();
    let p = producer(&dsn);
    let mut con = sync_con(&dsn);
    assert_eq!(p.get_job_status("nope").await.unwrap(), None);
    let id = p
        .enqueue("f", Map::new(), EnqueueOptions::default())
        .await
        .unwrap();
    let s = p.get_job_status(&id).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.result.clone(), s.last_error.clone()),
        (JobStatus::Pending, None, None)
    );
    let key = format!("rrq:job:{id}");
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("status")
        .arg("WEIRD")
        .arg("last_error")
        .arg("boom")
        .query(&mut con)
        .unwrap();
    let s = p.get_job_status(&id).await.unwrap().unwrap();
    assert_eq!(s.status, JobStatus::Unknown);
    assert_eq!(s.last_error.as_deref(), Some("boom"));
    assert_eq!(s.to_json()["status"], "UNKNOWN");
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("result")
        .arg("NULL")
        .query(&mut con)
        .unwrap();
    assert_eq!(p.get_job_status(&id).await.unwrap().unwrap().result, None);

    // times out while the job is not finished
    let t0 = Instant::now();
    let r = p
        .wait_for_completion(&id, Duration::from_millis(400), Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(r, None);
    assert!(t0.elapsed() >= Duration::from_millis(400) && t0.elapsed() < Duration::from_secs(2));

    // woken by the event stream long before the 5 s block interval ends
    let dsn2 = dsn.clone();
    let key2 = key.clone();
    let id2 = id.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut c = sync_con(&dsn2);
        let _: () = redis::cmd("HSET")
            .arg(&key2)
            .arg("status")
            .arg("COMPLETED")
            .arg("result")
            .arg("{\"ok\":true}")
            .query(&mut c)
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(format!("rrq:events:job:{id2}"))
            .arg("*")
            .arg("event")
            .arg("completed")
            .arg("job_id")
            .arg(&id2)
            .arg("status")
            .arg("COMPLETED")
            .query(&mut c)
            .unwrap();
    });
    let t0 = Instant::now();
    let r = p
        .wait_for_completion(&id, Duration::from_secs(20), Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    writer.join().unwrap();
    assert_eq!(r.status, JobStatus::Completed);
    assert_eq!(r.result, Some(json!({"ok": true})));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );

    // CANCELLED and FAILED are final too
    for status in ["CANCELLED", "FAILED"] {
        let id = p
            .enqueue("f", Map::new(), EnqueueOptions::default())
            .await
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg(format!("rrq:job:{id}"))
            .arg("status")
            .arg(status)
            .query(&mut con)
            .unwrap();
        let r = p
            .wait_for_completion(&id, Duration::from_secs(5), Duration::from_millis(250))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status.as_str(), status);
    }
}

#[tokio::test]
async fn redis_errors_hide_the_password() {
    let dir = TempDir::new("nosock");
    let dsn = format!(
        "redis+unix://{}?db=0&pass=s3cret-pw",
        dir.path().join("missing.sock").display()
    );
    let p = producer(&dsn);
    let e = p
        .enqueue("f", Map::new(), EnqueueOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "redis_unavailable");
    assert!(!e.message().contains("s3cret-pw"), "{}", e.message());
    let e = Producer::new(ProducerConfig::with_dsn("not a url")).unwrap_err();
    assert_eq!(e.code(), "invalid_config");
}

/// A port nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn unreachable_redis_fails_fast_naming_the_dsn() {
    let port = closed_port();
    let p = producer(&format!("redis://user:hunter2@127.0.0.1:{port}/0"));
    let started = Instant::now();
    let e = p
        .enqueue("f", Map::new(), EnqueueOptions::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "does not hang");
    assert_eq!(e.code(), "redis_unavailable");
    assert!(
        e.message().contains(&format!(
            "cannot connect to Redis at redis://***@127.0.0.1:{port}/0"
        )),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("hunter2"), "{}", e.message());

    // A server that accepts and never answers: bounded by the connect timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let p = Producer::new(ProducerConfig {
        redis_connect_timeout: Duration::from_millis(500),
        ..ProducerConfig::with_dsn(format!("redis://127.0.0.1:{port}/0"))
    })
    .unwrap();
    let started = Instant::now();
    let e = p.get_job_status("x").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "does not hang");
    assert_eq!(e.code(), "redis_unavailable", "{}", e.message());
    drop(silent);
}

#[test]
fn malformed_dsn_is_refused_with_the_fix() {
    let e = Producer::new(ProducerConfig::with_dsn("localhost:6391")).unwrap_err();
    assert_eq!(e.code(), "invalid_config");
    assert!(
        e.message().contains("redis_dsn \"localhost:6391\" has no scheme; use a URL such as redis://localhost:6391/0"),
        "{}",
        e.message()
    );
    let e = Producer::new(ProducerConfig::with_dsn("redis://:pw@h:1/zero")).unwrap_err();
    assert!(e.message().contains("database 'zero'"), "{}", e.message());
    assert!(!e.message().contains("pw@"), "{}", e.message());
    let e = ProducerConfig::parse_toml("redis_connect_timeout_seconds = 0\n").unwrap_err();
    assert_eq!(e.code(), "invalid_config");
    let c = ProducerConfig::parse_toml("redis_connect_timeout_seconds = 1.5\n").unwrap();
    assert_eq!(c.redis_connect_timeout, Duration::from_millis(1500));
}

/// The producer adapter, driven over stdin/stdout.
struct Adapter {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
    next: u64,
}

impl Adapter {
    fn start(cwd: &std::path::Path, env: &[(&str, &str)]) -> Adapter {
        let mut cmd = Command::new(example("producer_adapter"));
        cmd.current_dir(cwd)
            .env_remove("RRQ_CONFIG")
            .env_remove("RRQ_REDIS_DSN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Adapter {
            child,
            out,
            next: 0,
        }
    }

    fn raw(&mut self, line: &str) -> Value {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut reply = String::new();
        self.out.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"))
    }

    fn call(&mut self, mut cmd: Value) -> Value {
        self.next += 1;
        cmd["id"] = json!(self.next);
        let reply = self.raw(&cmd.to_string());
        assert_eq!(reply["id"], json!(self.next));
        reply
    }

    fn ok(&mut self, cmd: Value) -> Value {
        let r = self.call(cmd.clone());
        assert_eq!(r["ok"], true, "{cmd} -> {r}");
        r["result"].clone()
    }

    fn err(&mut self, cmd: Value) -> String {
        let r = self.call(cmd.clone());
        assert_eq!(r["ok"], false, "{cmd} -> {r}");
        r["error"]["code"].as_str().unwrap().to_string()
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0));
    }
}

#[test]
fn adapter_round_trip() {
    let dsn = fresh_dsn();
    let dir = TempDir::new("adapter");
    let mut a = Adapter::start(dir.path(), &[]);
    // no configure and no rrq.toml: config_not_found
    assert_eq!(
        a.err(json!({"op": "get_job_status", "job_id": "x"})),
        "config_not_found"
    );
    assert_eq!(
        a.err(json!({"op": "configure", "config": {"redis_dsn": dsn, "colour": 1}})),
        "invalid_config"
    );
    assert_eq!(
        a.ok(json!({"op": "configure", "config": {"redis_dsn": dsn, "queue_name": "ad"}})),
        Value::Null
    );
    let id = a.ok(json!({"op": "enqueue", "function_name": "f", "params": {"b": 2}, "options": {"job_id": "ad-1", "enqueue_time": "2026-01-01T00:00:00Z", "defer_until": "2026-01-01T00:00:10"}}));
    assert_eq!(id, "ad-1");
    let s = a.ok(json!({"op": "get_job_status", "job_id": "ad-1"}));
    assert_eq!(
        s,
        json!({"status": "PENDING", "result": null, "last_error": null})
    );
    assert_eq!(
        a.ok(json!({"op": "get_job_status", "job_id": "nope"})),
        Value::Null
    );
    assert!(a.ok(json!({"op": "enqueue_with_rate_limit", "function_name": "f", "params": {}, "options": {"rate_limit_key": "r", "rate_limit_seconds": 5}})).is_string());
    assert_eq!(a.ok(json!({"op": "enqueue_with_rate_limit", "function_name": "f", "params": {}, "options": {"rate_limit_key": "r", "rate_limit_seconds": 5}})), Value::Null);
    assert_eq!(a.err(json!({"op": "enqueue", "function_name": "f", "params": {}, "options": {"rate_limit_key": "r", "rate_limit_seconds": 5}})), "rate_limited");
    let d1 = a.ok(json!({"op": "enqueue_with_debounce", "function_name": "f", "options": {"params": {"v": 1}, "debounce_key": "d", "debounce_seconds": 5}}));
    let d2 = a.ok(json!({"op": "enqueue_with_debounce", "function_name": "f", "params": {"v": 2}, "options": {"debounce_key": "d", "debounce_seconds": 5}}));
    assert_eq!(d1, d2);
    let ids = a.ok(json!({"op": "enqueue_many", "items": [{"function_name": "a", "params": {}}, {"function_name": "b", "params": {}, "options": {"job_id": "ad-m"}}]}));
    assert_eq!(ids.as_array().unwrap().len(), 2);
    assert_eq!(ids[1], "ad-m");
    assert_eq!(
        a.err(json!({"op": "enqueue", "function_name": "", "params": {}})),
        "invalid_argument"
    );
    assert_eq!(
        a.err(json!({"op": "enqueue", "function_name": "f", "params": "x"})),
        "invalid_params"
    );
    assert_eq!(
        a.err(json!({"op": "enqueue", "function_name": "f", "params": {}, "options": {"nope": 1}})),
        "invalid_argument"
    );
    assert_eq!(a.err(json!({"op": "enqueue", "function_name": "f", "params": {}, "options": {"job_id": "ad-1"}})), "duplicate_job_id");
    let w = a.ok(json!({"op": "wait_for_completion", "job_id": "ad-1", "timeout_seconds": 0.2, "block_interval_seconds": 0.05}));
    assert_eq!(w, Value::Null);
    // malformed lines and unknown ops
    let r = a.raw("{not json");
    assert_eq!(r["id"], Value::Null);
    assert_eq!(r["error"]["code"], "adapter_error");
    assert_eq!(a.err(json!({"op": "explode"})), "adapter_error");
    a.finish();

    let mut con = sync_con(&dsn);
    let h = hgetall(&mut con, "rrq:job:ad-1");
    assert_eq!(h["queue_name"], "rrq:queue:ad");
    assert_eq!(h["next_scheduled_run_time"], "2026-01-01T00:00:10+00:00");
    assert_eq!(h["enqueue_time"], "2026-01-01T00:00:00+00:00");
}

#[test]
fn config_resolution() {
    let dir = TempDir::new("cfg");
    let explicit = dir.path().join("explicit.toml");
    std::fs::write(&explicit, "[rrq]\nredis_dsn = \"redis://explicit:1/0\"\ndefault_queue_name = \"ex\"\ndefault_max_retries = 1\ndefault_job_timeout_seconds = 2\ndefault_result_ttl_seconds = 3\ndefault_unique_job_lock_ttl_seconds = 4\n[rrq.correlation_mappings]\ntenant = \"params.tenant\"\n[rrq.runners.rust]\ncmd = [\"x\"]\n").unwrap();
    let via_env = dir.path().join("env.toml");
    std::fs::write(
        &via_env,
        "redis_dsn = \"redis://env:1/0\"\ndefault_queue_name = \"rrq:queue:root\"\n",
    )
    .unwrap();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(
        cwd.join("rrq.toml"),
        "[rrq]\nredis_dsn = \"redis://cwd:1/0\"\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[rrq]\ndefault_max_retries = \"five\"\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let env_s = via_env.to_string_lossy().into_owned();

    // 1. explicit path wins over RRQ_CONFIG and ./rrq.toml
    let mut a = Adapter::start(&cwd, &[("RRQ_CONFIG", &env_s)]);
    let c = a.ok(json!({"op": "load_config", "path": explicit.to_string_lossy()}));
    assert_eq!(
        c,
        json!({"redis_dsn": "redis://explicit:1/0", "queue_name": "rrq:queue:ex", "max_retries": 1,
               "job_timeout_seconds": 2, "result_ttl_seconds": 3, "idempotency_ttl_seconds": 4,
               "correlation_mappings": {"tenant": "params.tenant"}})
    );
    // 2. RRQ_CONFIG over ./rrq.toml; a root table without [rrq]
    let c = a.ok(json!({"op": "load_config"}));
    assert_eq!(c["redis_dsn"], "redis://env:1/0");
    assert_eq!(c["queue_name"], "rrq:queue:root");
    assert_eq!(c["max_retries"], 5);
    a.finish();
    // 3. ./rrq.toml (empty RRQ_CONFIG is ignored), with RRQ_REDIS_DSN overriding
    let mut a = Adapter::start(
        &cwd,
        &[
            ("RRQ_CONFIG", ""),
            ("RRQ_REDIS_DSN", "redis://override:2/1"),
        ],
    );
    let c = a.ok(json!({"op": "load_config"}));
    assert_eq!(c["redis_dsn"], "redis://override:2/1");
    assert_eq!(c["queue_name"], "rrq:queue:default");
    assert_eq!(c["idempotency_ttl_seconds"], 21600);
    a.finish();
    let mut a = Adapter::start(&cwd, &[]);
    assert_eq!(
        a.ok(json!({"op": "load_config"}))["redis_dsn"],
        "redis://cwd:1/0"
    );
    // wrong types and missing files
    assert_eq!(
        a.err(json!({"op": "load_config", "path": bad.to_string_lossy()})),
        "invalid_config"
    );
    let r = a.call(json!({"op": "load_config", "path": bad.to_string_lossy()}));
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("default_max_retries"));
    a.finish();
    // 4. nothing found
    let mut a = Adapter::start(&empty, &[]);
    let r = a.call(json!({"op": "load_config"}));
    assert_eq!(r["error"]["code"], "config_not_found");
    assert_eq!(
        r["error"]["message"],
        "RRQ config not found. Provide --config, set RRQ_CONFIG, or add rrq.toml."
    );
    a.finish();

    // the library call itself
    let c = ProducerConfig::from_toml(Some(&explicit)).unwrap();
    assert_eq!(c.queue_name, "rrq:queue:ex");
}

#[test]
fn lua_scripts_are_byte_identical() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../src/store/lua/");
    for (name, ours) in [
        ("enqueue-3.lua", rrqkit::producer::ENQUEUE_LUA),
        (
            "enqueue-rate-limited-3.lua",
            rrqkit::producer::ENQUEUE_RATE_LIMITED_LUA,
        ),
        (
            "enqueue-debounced-2.lua",
            rrqkit::producer::ENQUEUE_DEBOUNCED_LUA,
        ),
        ("enqueue-batch-n.lua", rrqkit::producer::ENQUEUE_BATCH_LUA),
        ("enqueue-fields-1.lua", rrqkit::producer::ENQUEUE_FIELDS_LUA),
        ("job-cancel-2.lua", rrqkit::producer::JOB_CANCEL_LUA),
    ] {
        let theirs = std::fs::read_to_string(format!("{root}{name}")).unwrap();
        assert_eq!(ours, theirs, "{name} drifted");
    }
}

/// With `tls`: a rediss:// DSN is accepted and a failed handshake is a plain redis_error
/// (the rustls provider is installed by the producer).
#[cfg(feature = "tls")]
#[tokio::test]
async fn rediss_dsn_is_supported() {
    // a plain TCP listener that is not a TLS server: the handshake fails
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            drop(s);
        }
    });
    let p = Producer::new(ProducerConfig::with_dsn(format!(
        "rediss://127.0.0.1:{port}/0"
    )))
    .unwrap();
    let e = p.get_job_status("x").await.unwrap_err();
    assert_eq!(e.code(), "redis_error");
}
