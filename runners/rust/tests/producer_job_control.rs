//! Job control in the producer (issue 20): `cancel` with the shared job-cancel-2.lua (waiting
//! and running jobs, refusals), `wait_for_completion` on a cancel, the `retry` / `expires_at`
//! / `expires_in` enqueue options, and the adapter's `cancel` op. Against a private
//! redis-server on a Unix socket (one per test).
#![cfg(feature = "producer")]

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rrqkit::producer::{CANCEL_NOT_FOUND, CANCEL_NOT_WAITING, CANCEL_RUNNING_UNFENCED};
use rrqkit::{CancelResult, EnqueueOptions, JobStatus, Producer, ProducerConfig};
use serde_json::{json, Map, Value};

use common::TempDir;

/// A private redis-server, killed on drop.
struct Server {
    child: Child,
    dir: TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = TempDir::new("jobctl");
        let socket = dir.path().join("redis.sock");
        let child = Command::new(std::env::var("REDIS_SERVER").unwrap_or("redis-server".into()))
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, dir }
    }

    fn dsn(&self) -> String {
        format!(
            "redis+unix://{}?db=0",
            self.dir.path().join("redis.sock").display()
        )
    }

    fn con(&self) -> redis::Connection {
        redis::Client::open(self.dsn())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    fn producer(&self) -> Producer {
        Producer::new(ProducerConfig::with_dsn(self.dsn())).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let server = Server::start();
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
    let server = Server::start();
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
