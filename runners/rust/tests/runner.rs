//! The conformance runner example as a real subprocess, over stdio, a Unix socket and TCP, in
//! JSON and MessagePack.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rrqkit::codec::Encoding;
use serde_json::{json, Value};

use common::*;

const HELLO: [(&str, &str); 1] = [("RRQ_RUNNER_HELLO", "1")];

fn outcome(c: &Client) -> Value {
    c.recv_type("response")
}

fn expect_hello(c: &Client) {
    let h = c.recv_type("hello");
    assert_eq!(h["protocol_version"], "2");
    assert_eq!(h["runtime"], "rrqkit-rust");
    assert_eq!(h["max_in_flight"], 64);
    assert_eq!(
        h["features"],
        json!([
            "ping",
            "cancel_by_job",
            "stdout_guard",
            "progress",
            "output"
        ])
    );
    assert!(h["pid"].as_u64().unwrap() > 0);
    assert!(h["runtime_version"].is_string());
}

/// The full behaviour suite on one runner process / connection.
fn behaviour(kind: Kind, enc: Encoding) {
    let mut r = RunnerProc::spawn(kind, enc, &HELLO);
    let mut c = r.connect();
    expect_hello(&c);

    // ping / pong
    c.send(&json!({"type": "ping", "payload": {"nonce": "n-1"}}));
    assert_eq!(c.recv_type("pong"), json!({"nonce": "n-1"}));

    // success with a raw value (echo returns the params, not an outcome)
    let params = json!({"b": 1, "a": [1, 2.5, "x", null, {"z": true}], "ü": "ünï 😀"});
    c.send(&request("r-echo", "j-echo", "echo", params.clone()));
    let o = outcome(&c);
    assert_eq!(
        serde_json::to_string(&o).unwrap(),
        serde_json::to_string(&json!({
            "job_id": "j-echo", "request_id": "r-echo", "status": "success",
            "result": params, "error": null, "retry_after_seconds": null
        }))
        .unwrap()
    );

    // inspect copies the request, context with all eight fields
    c.send(&request("r-insp", "j-insp", "inspect", json!({"k": "v"})));
    let o = outcome(&c);
    assert_eq!(o["result"]["request_id"], "r-insp");
    assert_eq!(o["result"]["function_name"], "inspect");
    assert_eq!(o["result"]["params"], json!({"k": "v"}));
    assert_eq!(o["result"]["context"], context("j-insp", None));

    // live frames (issue 23): progress and output precede the response
    let mut live_req = request(
        "r-prog",
        "j-prog",
        "report_progress",
        json!({"values": [0.5, null, 1]}),
    );
    live_req["payload"]["live"] =
        json!({"progress": true, "output": true, "progress_interval_ms": 0});
    c.send(&live_req);
    for (value, message) in [
        (json!(0.5), "step 1 of 3"),
        (Value::Null, "step 2 of 3"),
        (json!(1), "step 3 of 3"),
    ] {
        let p = c.recv_type("progress");
        assert_eq!(
            (&p["progress"], p["message"].as_str()),
            (&value, Some(message)),
            "{p}"
        );
        assert_eq!(p["request_id"], "r-prog");
    }
    assert_eq!(outcome(&c)["result"], json!({"reported": 3}));
    let mut live_req = request(
        "r-out",
        "j-out",
        "write_output",
        json!({"lines": 2, "json": true, "text": "t"}),
    );
    live_req["payload"]["live"] = json!({"output": true});
    c.send(&live_req);
    let mut data = String::new();
    let o = loop {
        let f = c.recv();
        match f["type"].as_str() {
            Some("output") => data += f["payload"]["data"].as_str().unwrap(),
            Some("response") => break f["payload"].clone(),
            _ => panic!("unexpected frame {f}"),
        }
    };
    assert_eq!(
        data,
        "{\"line\":0,\"text\":\"t\"}\n{\"line\":1,\"text\":\"t\"}\n"
    );
    assert_eq!(o["result"], json!({"lines": 2}));
    // without live: no live frame
    c.send(&request("r-nolive", "j-nolive", "write_output", json!({})));
    assert_eq!(outcome(&c)["result"], json!({"lines": 3}));

    // error outcome with type and code
    c.send(&request(
        "r-fail",
        "j-fail",
        "fail",
        json!({"message": "bad", "type": "ValueError", "code": "E1"}),
    ));
    let o = outcome(&c);
    assert_eq!(o["status"], "error");
    assert_eq!(
        o["error"],
        json!({"message": "bad", "type": "ValueError", "code": "E1", "details": null})
    );

    // a thrown error
    c.send(&request(
        "r-throw",
        "j-throw",
        "throw",
        json!({"message": "kaput"}),
    ));
    let o = outcome(&c);
    assert_eq!(o["status"], "error");
    assert_eq!(o["error"]["message"], "kaput");
    assert_eq!(o["error"]["type"], "Error");
    let tb = o["error"]["traceback"].as_str().expect("a traceback");
    assert!(
        tb.starts_with("Error: kaput\n  at examples/conformance_runner.rs:"),
        "{tb}"
    );

    // retry with a delay, and without a message
    c.send(&request(
        "r-retry",
        "j-retry",
        "retry",
        json!({"after_seconds": 2.5, "message": "later"}),
    ));
    let o = outcome(&c);
    assert_eq!(o["status"], "retry");
    assert_eq!(o["retry_after_seconds"], 2.5);
    assert_eq!(o["error"]["message"], "later");
    c.send(&request("r-retry2", "j-retry", "retry", json!({})));
    let o = outcome(&c);
    assert_eq!(o["status"], "retry");
    assert_eq!(o["retry_after_seconds"], Value::Null);
    assert_eq!(o["error"]["message"], "Job requested retry");

    // timeout outcome from the handler
    c.send(&request("r-to", "j-to", "timeout", json!({})));
    let o = outcome(&c);
    assert_eq!(o["status"], "timeout");
    assert_eq!(o["error"]["type"], "timeout");
    assert_eq!(o["error"]["message"], "Job execution timed out");

    // a permanent error (RUNNER_PROTOCOL.md §7): reserved type, the message, a traceback
    c.send(&request(
        "r-perm",
        "j-perm",
        "fail_permanently",
        json!({"message": "card number is invalid"}),
    ));
    let o = outcome(&c);
    assert_eq!(o["status"], "error");
    assert_eq!(o["error"]["message"], "card number is invalid");
    assert_eq!(o["error"]["type"], "non_retryable");
    let tb = o["error"]["traceback"].as_str().expect("a traceback");
    assert!(
        tb.starts_with(
            "non_retryable: card number is invalid\n  at examples/conformance_runner.rs:"
        ),
        "{tb}"
    );
    assert!(o.get("snooze").is_none());

    // snooze (§7.2): twice, then success; the count is per job_id; snooze is written last
    for i in 0..2 {
        c.send(&request(
            &format!("r-snz-{i}"),
            "j-snz",
            "snooze",
            json!({"seconds": 30, "times": 2}),
        ));
        let o = outcome(&c);
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            serde_json::to_string(&json!({
                "job_id": "j-snz", "request_id": format!("r-snz-{i}"), "status": "retry",
                "result": null,
                "error": {"message": "Job snoozed", "type": null, "code": null, "details": null},
                "retry_after_seconds": 30, "snooze": true
            }))
            .unwrap()
        );
    }
    c.send(&request("r-snz-2", "j-snz", "snooze", json!({"times": 2})));
    let o = outcome(&c);
    assert_eq!(o["status"], "success");
    assert_eq!(o["result"], json!({"snoozed": 2, "attempt": 1}));
    assert!(o.get("snooze").is_none());
    c.send(&request(
        "r-snz-3",
        "j-snz-other",
        "snooze",
        json!({"seconds": 0.25}),
    ));
    let o = outcome(&c);
    assert_eq!(o["retry_after_seconds"], 0.25);
    assert_eq!(o["snooze"], true);

    // flaky
    c.send(&request(
        "r-flaky",
        "j-flaky",
        "flaky",
        json!({"fail_until_attempt": 1}),
    ));
    assert_eq!(
        outcome(&c)["error"]["message"],
        "flaky failure on attempt 1"
    );

    // handler not found
    c.send(&request("r-missing", "j-missing", "missing", json!({})));
    let o = outcome(&c);
    assert_eq!(o["status"], "error");
    assert_eq!(
        o["error"],
        json!({"message": "No handler registered for function 'missing'", "type": "handler_not_found", "code": null, "details": null})
    );

    // deadline already past
    c.send(&request_with(
        "r-past",
        "j-past",
        "sleep",
        json!({"ms": 1}),
        Some(deadline_in(-1000)),
    ));
    let o = outcome(&c);
    assert_eq!(o["status"], "timeout");
    assert_eq!(o["error"]["message"], "Job deadline exceeded");
    assert_eq!(o["error"]["type"], "timeout");

    // deadline expiring while the handler runs
    let t0 = Instant::now();
    c.send(&request_with(
        "r-dl",
        "j-dl",
        "sleep",
        json!({"ms": 10000}),
        Some(deadline_in(300)),
    ));
    let o = outcome(&c);
    assert_eq!(o["request_id"], "r-dl");
    assert_eq!(o["status"], "timeout");
    assert_eq!(o["error"]["message"], "Job execution timed out");
    assert_eq!(o["error"]["type"], "timeout");
    assert!(t0.elapsed() < Duration::from_secs(3));

    // out-of-order replies
    c.send(&request("r-slow", "j-ooo", "sleep", json!({"ms": 600})));
    c.send(&request("r-fast", "j-ooo", "sleep", json!({"ms": 20})));
    assert_eq!(outcome(&c)["request_id"], "r-fast");
    let o = outcome(&c);
    assert_eq!(o["request_id"], "r-slow");
    assert_eq!(o["result"], json!({"slept_ms": 600}));

    // cancel by request_id
    c.send(&request("r-c1", "j-c", "sleep", json!({"ms": 10000})));
    c.send(&request("r-c2", "j-c", "sleep", json!({"ms": 300})));
    c.send(&cancel("j-c", Some("r-c1")));
    let o = outcome(&c);
    assert_eq!(o["request_id"], "r-c1");
    assert_eq!(o["job_id"], "j-c");
    assert_eq!(o["status"], "error");
    assert_eq!(
        o["error"],
        json!({"message": "Job cancelled", "type": "cancelled", "code": null, "details": null})
    );
    assert_eq!(outcome(&c)["request_id"], "r-c2");
    // cancelling something already answered or unknown is silent
    c.send(&cancel("j-c", Some("r-c1")));
    c.send(&cancel("nope", None));
    c.assert_silent(Duration::from_millis(150));

    // cancel by job_id with several in flight
    for i in 0..3 {
        c.send(&request(
            &format!("r-j{i}"),
            "j-many",
            "sleep",
            json!({"ms": 10000}),
        ));
    }
    c.send(&request("r-other", "j-other", "sleep", json!({"ms": 400})));
    c.send(&cancel("j-many", None));
    let mut cancelled = HashSet::new();
    for _ in 0..3 {
        let o = outcome(&c);
        assert_eq!(o["job_id"], "j-many");
        assert_eq!(o["error"]["type"], "cancelled");
        cancelled.insert(o["request_id"].as_str().unwrap().to_string());
    }
    assert_eq!(cancelled.len(), 3);
    let o = outcome(&c);
    assert_eq!(o["request_id"], "r-other");
    assert_eq!(o["status"], "success");

    // 64 in flight, the 65th is refused at once
    for i in 0..64 {
        c.send(&request(
            &format!("r-cap{i}"),
            "j-cap",
            "sleep",
            json!({"ms": 20000}),
        ));
    }
    c.send(&request("r-cap64", "j-cap-65", "echo", json!({})));
    let o = outcome(&c);
    assert_eq!(o["request_id"], "r-cap64");
    assert_eq!(o["job_id"], "j-cap-65");
    assert_eq!(
        o["error"],
        json!({"message": "Runner busy: too many in-flight requests", "type": null, "code": null, "details": null})
    );
    c.send(&cancel("j-cap", None));
    let mut seen = HashSet::new();
    for _ in 0..64 {
        let o = outcome(&c);
        assert_eq!(o["error"]["type"], "cancelled");
        seen.insert(o["request_id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 64);
    // slots are free again
    c.send(&request("r-after-cap", "j-cap", "echo", json!({"ok": 1})));
    assert_eq!(outcome(&c)["status"], "success");

    // bad protocol version: error reply, connection kept
    let mut bad = request("r-v3", "j-v3", "echo", json!({}));
    bad["payload"]["protocol_version"] = json!("3");
    c.send(&bad);
    let o = outcome(&c);
    assert_eq!(o["request_id"], "r-v3");
    assert_eq!(
        o["error"],
        json!({"message": "Unsupported protocol version", "type": null, "code": null, "details": null})
    );
    // a cancel with a wrong version is ignored
    c.send(&request("r-v-c", "j-v-c", "sleep", json!({"ms": 200})));
    let mut bad_cancel = cancel("j-v-c", None);
    bad_cancel["payload"]["protocol_version"] = json!("1");
    c.send(&bad_cancel);
    assert_eq!(outcome(&c)["status"], "success");

    // an unexpected response frame gets an error outcome
    c.send(&json!({"type": "response", "payload": {"job_id": "x", "request_id": "y", "status": "success", "result": null, "error": null, "retry_after_seconds": null}}));
    let o = outcome(&c);
    assert_eq!(o["job_id"], "unknown");
    assert_eq!(o["request_id"], Value::Null);
    assert_eq!(o["error"]["message"], "Unexpected response message");
    // hello and pong from the peer are ignored
    c.send(&json!({"type": "pong", "payload": {"nonce": "x"}}));
    c.assert_silent(Duration::from_millis(100));

    // stdout noise does not disturb frames (stdio stdout guard)
    c.send(&request(
        "r-noise",
        "j-noise",
        "noise",
        json!({"lines": 50}),
    ));
    assert_eq!(outcome(&c)["result"], json!({"lines": 50}));
    c.send(&request(
        "r-after-noise",
        "j-noise",
        "echo",
        json!({"n": 1}),
    ));
    assert_eq!(outcome(&c)["result"], json!({"n": 1}));

    // 15 MiB round trip
    let big = "y".repeat(15 * 1024 * 1024);
    c.send(&request("r-big", "j-big", "echo", json!({"data": big})));
    let o = c.recv_within(Duration::from_secs(60));
    assert_eq!(o["payload"]["request_id"], "r-big");
    assert_eq!(
        o["payload"]["result"]["data"].as_str().unwrap().len(),
        big.len()
    );
    // an outcome over 16 MiB is replaced by an error outcome
    c.send(&request(
        "r-huge",
        "j-huge",
        "large",
        json!({"bytes": 17 * 1024 * 1024}),
    ));
    let o = c.recv_within(Duration::from_secs(60))["payload"].clone();
    assert_eq!(o["request_id"], "r-huge");
    assert_eq!(o["status"], "error");

    // still healthy
    c.send(&json!({"type": "ping", "payload": {"nonce": "end"}}));
    assert_eq!(c.recv_type("pong")["nonce"], "end");

    // an oversized frame header closes the connection without a reply
    c.send_raw(&(16u32 * 1024 * 1024 + 1).to_be_bytes());
    c.expect_closed(Duration::from_secs(5));
    match kind {
        Kind::Stdio => {
            // the only connection is gone: the process ends
            assert!(r.wait_exit(Duration::from_secs(5)).is_some());
        }
        _ => {
            // other connections are unaffected
            let c2 = r.connect();
            expect_hello(&c2);
            r.assert_alive();
        }
    }
}

#[test]
fn behaviour_stdio_json() {
    behaviour(Kind::Stdio, Encoding::Json);
}

#[test]
fn behaviour_stdio_msgpack() {
    behaviour(Kind::Stdio, Encoding::Msgpack);
}

#[test]
fn behaviour_unix_json() {
    behaviour(Kind::Unix, Encoding::Json);
}

#[test]
fn behaviour_unix_msgpack() {
    behaviour(Kind::Unix, Encoding::Msgpack);
}

#[test]
fn behaviour_tcp_json() {
    behaviour(Kind::Tcp, Encoding::Json);
}

#[test]
fn behaviour_tcp_msgpack() {
    behaviour(Kind::Tcp, Encoding::Msgpack);
}

/// Peer closing mid-frame: for sockets the runner drops that connection and keeps serving;
/// for stdio it exits 0.
fn peer_closes_mid_frame(kind: Kind, enc: Encoding) {
    let mut r = RunnerProc::spawn(kind, enc, &[]);
    let mut c = r.connect();
    // an in-flight request is aborted by the close
    c.send(&request("r-1", "j-1", "sleep", json!({"ms": 10000})));
    let frame =
        rrqkit::codec::encode_frame_value(&request("r-2", "j-2", "echo", json!({})), enc).unwrap();
    c.send_raw(&frame[..frame.len() / 2]);
    c.close_write();
    c.expect_closed(Duration::from_secs(5));
    match kind {
        Kind::Stdio => assert_eq!(r.wait_exit(Duration::from_secs(5)), Some(Some(0))),
        _ => {
            let mut c2 = r.connect();
            c2.send(&request("r-3", "j-3", "echo", json!({"x": 1})));
            assert_eq!(outcome(&c2)["result"], json!({"x": 1}));
            // header-only truncation too
            let mut c3 = r.connect();
            c3.send_raw(&[0, 0]);
            c3.close_write();
            c3.expect_closed(Duration::from_secs(5));
            r.assert_alive();
        }
    }
}

#[test]
fn peer_closes_mid_frame_all_transports() {
    for kind in [Kind::Stdio, Kind::Unix, Kind::Tcp] {
        for enc in [Encoding::Json, Encoding::Msgpack] {
            peer_closes_mid_frame(kind, enc);
        }
    }
}

#[test]
fn hello_only_when_requested() {
    for kind in [Kind::Stdio, Kind::Unix, Kind::Tcp] {
        let mut r = RunnerProc::spawn(kind, Encoding::Json, &[("RRQ_RUNNER_HELLO", "0")]);
        let mut c = r.connect();
        c.send(&json!({"type": "ping", "payload": {"nonce": "first"}}));
        // the first frame is the pong, no hello
        assert_eq!(c.recv_type("pong")["nonce"], "first");
        if kind != Kind::Stdio {
            // and with hello requested, every connection starts with it
            let mut r2 = RunnerProc::spawn(kind, Encoding::Msgpack, &HELLO);
            for _ in 0..2 {
                let mut c2 = r2.connect();
                expect_hello(&c2);
                c2.send(&json!({"type": "ping", "payload": {"nonce": "x"}}));
                assert_eq!(c2.recv_type("pong")["nonce"], "x");
            }
        }
    }
}

#[test]
fn job_cancel_spans_connections() {
    for kind in [Kind::Unix, Kind::Tcp] {
        let mut r = RunnerProc::spawn(kind, Encoding::Json, &[]);
        let mut a = r.connect();
        let mut b = r.connect();
        a.send(&request("ra", "shared-job", "sleep", json!({"ms": 10000})));
        b.send(&request("rb", "shared-job", "sleep", json!({"ms": 10000})));
        b.send(&request("rb2", "other-job", "sleep", json!({"ms": 300})));
        std::thread::sleep(Duration::from_millis(100));
        // a cancel on a third, short-lived connection (as RRQ's orchestrator sends them)
        let mut c = r.connect();
        c.send(&cancel("shared-job", None));
        let oa = outcome(&a);
        assert_eq!(
            (oa["request_id"].as_str(), oa["error"]["type"].as_str()),
            (Some("ra"), Some("cancelled"))
        );
        let ob = outcome(&b);
        assert_eq!(
            (ob["request_id"].as_str(), ob["error"]["type"].as_str()),
            (Some("rb"), Some("cancelled"))
        );
        assert_eq!(outcome(&b)["request_id"], "rb2");
        c.assert_silent(Duration::from_millis(100));
        // a cancel by request id from yet another connection
        a.send(&request("ra2", "j", "sleep", json!({"ms": 10000})));
        std::thread::sleep(Duration::from_millis(50));
        c.send(&cancel("j", Some("ra2")));
        assert_eq!(outcome(&a)["error"]["type"], "cancelled");
        // closing a connection aborts its work only
        b.send(&request("rb3", "jb3", "sleep", json!({"ms": 300})));
        a.send(&request("ra3", "ja3", "sleep", json!({"ms": 10000})));
        a.close_write();
        a.expect_closed(Duration::from_secs(5));
        assert_eq!(outcome(&b)["request_id"], "rb3");
    }
}

#[test]
fn ignore_cancel_gets_exactly_one_outcome() {
    let mut r = RunnerProc::spawn(Kind::Unix, Encoding::Json, &[]);
    let mut c = r.connect();
    c.send(&request(
        "r-ic",
        "j-ic",
        "ignore_cancel",
        json!({"ms": 400}),
    ));
    std::thread::sleep(Duration::from_millis(50));
    c.send(&cancel("j-ic", Some("r-ic")));
    let o = outcome(&c);
    assert_eq!(o["error"]["type"], "cancelled");
    // the handler's own result is discarded
    c.assert_silent(Duration::from_millis(700));
    c.send(&request("r-ok", "j-ok", "echo", json!({})));
    assert_eq!(outcome(&c)["request_id"], "r-ok");

    // handlers that block every handler thread do not delay pong or cancel replies
    for i in 0..8 {
        c.send(&request(
            &format!("r-b{i}"),
            "j-block",
            "ignore_cancel",
            json!({"ms": 1500}),
        ));
    }
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    c.send(&json!({"type": "ping", "payload": {"nonce": "busy"}}));
    assert_eq!(c.recv_type("pong")["nonce"], "busy");
    c.send(&cancel("j-block", None));
    for _ in 0..8 {
        assert_eq!(outcome(&c)["error"]["type"], "cancelled");
    }
    assert!(
        t0.elapsed() < Duration::from_millis(700),
        "took {:?}",
        t0.elapsed()
    );
    c.assert_silent(Duration::from_millis(2000));
}

#[test]
fn stdio_eof_aborts_and_exits_zero() {
    let mut r = RunnerProc::spawn(Kind::Stdio, Encoding::Msgpack, &HELLO);
    let mut c = r.connect();
    expect_hello(&c);
    c.send(&request("r-1", "j-1", "sleep", json!({"ms": 30000})));
    c.send(&request("r-2", "j-2", "echo", json!({"done": true})));
    assert_eq!(outcome(&c)["request_id"], "r-2");
    let t0 = Instant::now();
    c.close_write();
    c.expect_closed(Duration::from_secs(5));
    assert_eq!(r.wait_exit(Duration::from_secs(5)), Some(Some(0)));
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn sigterm_exits_promptly() {
    for kind in [Kind::Stdio, Kind::Unix, Kind::Tcp] {
        let mut r = RunnerProc::spawn(kind, Encoding::Json, &[]);
        let mut c = r.connect();
        c.send(&request("r-1", "j-1", "sleep", json!({"ms": 30000})));
        c.send(&json!({"type": "ping", "payload": {"nonce": "p"}}));
        c.recv_type("pong");
        let t0 = Instant::now();
        unsafe {
            libc::kill(r.pid(), libc::SIGTERM);
        }
        assert!(
            r.wait_exit(Duration::from_secs(3)).is_some(),
            "{kind:?} did not exit"
        );
        assert!(t0.elapsed() < Duration::from_secs(2));
        if kind == Kind::Unix {
            assert!(
                !std::path::Path::new(&r.addr).exists(),
                "socket file left behind"
            );
        }
    }
}

#[test]
fn refuses_non_loopback_bind() {
    let bin = example("conformance_runner");
    let out = std::process::Command::new(&bin)
        .args(["--tcp-socket", "0.0.0.0:0"])
        .env_remove("RRQ_RUNNER_ALLOW_REMOTE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(&bin)
        .args(["--stdio", "--encoding", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => {
            // state is the field after the ")" of the command name; Z = zombie
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        }
    }
}

/// Starts the runner under an intermediate shell, SIGKILLs the shell, and measures how long the
/// runner survives it.
fn orphan_runner(guard_env: Option<&str>) -> (i32, Option<Duration>) {
    let dir = TempDir::new("guard");
    let sock = dir.path().join("g.sock");
    let bin = example("conformance_runner");
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("\"$0\" --unix-socket \"$1\" & echo $!; wait")
        .arg(&bin)
        .arg(&sock)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(v) = guard_env {
        cmd.env("RRQ_RUNNER_PARENT_GUARD", v);
    } else {
        cmd.env_remove("RRQ_RUNNER_PARENT_GUARD");
    }
    let mut shell = cmd.spawn().unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(shell.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line.trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "runner never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    shell.kill().unwrap();
    let killed = Instant::now();
    shell.wait().unwrap();
    let gone = loop {
        if process_gone(pid) {
            break Some(killed.elapsed());
        }
        if killed.elapsed() > Duration::from_secs(2) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (pid, gone)
}

#[test]
fn parent_death_guard() {
    let (_, gone) = orphan_runner(None);
    let took = gone.expect("runner outlived its parent");
    assert!(
        took < Duration::from_secs(1),
        "runner took {took:?} to exit"
    );

    // disabled by RRQ_RUNNER_PARENT_GUARD=0
    let (pid, gone) = orphan_runner(Some("0"));
    assert!(gone.is_none(), "runner exited although the guard was off");
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

#[test]
fn exec_log_lines() {
    let dir = TempDir::new("execlog");
    let log = dir.path().join("exec.log");
    let log_s = log.to_string_lossy().into_owned();
    let mut r = RunnerProc::spawn(
        Kind::Stdio,
        Encoding::Json,
        &[("RRQ_TEST_EXEC_LOG", &log_s)],
    );
    let mut c = r.connect();
    c.send(&request("r-1", "j-1", "echo", json!({})));
    c.send(&request("r-2", "j-1", "fail", json!({})));
    outcome(&c);
    outcome(&c);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let by_req: HashMap<String, Value> = lines
        .into_iter()
        .map(|l| (l["request_id"].as_str().unwrap().to_string(), l))
        .collect();
    assert_eq!(by_req["r-2"]["function_name"], "fail");
    assert_eq!(by_req["r-1"]["attempt"], 1);
    assert_eq!(by_req["r-1"]["pid"], r.pid());
}

/// Every invalid vector sent to a live runner: `close` vectors close the connection without a
/// reply, `reply_error` gets the manifest's reply, `ignore` gets nothing.
#[test]
fn invalid_vectors_against_runner() {
    let m = manifest();
    for enc in [Encoding::Json, Encoding::Msgpack] {
        let mut r = RunnerProc::spawn(Kind::Unix, enc, &[]);
        for v in m["vectors"].as_array().unwrap() {
            if v["kind"] != "invalid" || v["encoding"] != enc.as_str() {
                continue;
            }
            let name = v["name"].as_str().unwrap();
            let bytes = std::fs::read(vectors_dir().join(v["file"].as_str().unwrap())).unwrap();
            let mut c = r.connect();
            c.send_raw(&bytes);
            match v["action"].as_str().unwrap() {
                "close" => {
                    if v["error"] == "frame_truncated" {
                        c.close_write();
                    }
                    c.expect_closed(Duration::from_secs(5));
                }
                "reply_error" => {
                    let o = outcome(&c);
                    for (k, want) in v["reply"].as_object().unwrap() {
                        if k == "error" {
                            for (ek, ev) in want.as_object().unwrap() {
                                assert_eq!(&o["error"][ek], ev, "{name}: error.{ek}");
                            }
                        } else {
                            assert_eq!(&o[k], want, "{name}: {k}");
                        }
                    }
                    c.send(&json!({"type": "ping", "payload": {"nonce": "alive"}}));
                    assert_eq!(c.recv_type("pong")["nonce"], "alive", "{name}");
                }
                "ignore" => {
                    c.send(&json!({"type": "ping", "payload": {"nonce": "alive"}}));
                    assert_eq!(c.recv_type("pong")["nonce"], "alive", "{name}");
                }
                other => panic!("{name}: unknown action {other}"),
            }
        }
        r.assert_alive();
    }
}
