//! With the `otel` feature: the conformance runner exports `rrq.runner` spans over OTLP
//! HTTP/protobuf to a collector stub on loopback.
#![cfg(feature = "otel")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use rrqkit::codec::Encoding;
use serde_json::json;

use common::*;

struct Export {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 server that answers 200 to every request and reports what it got.
fn collector() -> (u16, Receiver<Export>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_string();
                    let mut length = 0usize;
                    let mut chunked = false;
                    let mut content_type = String::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (name, value) = h.split_once(':').unwrap_or((h, ""));
                        match name.trim().to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap_or(0),
                            "content-type" => content_type = value.trim().to_string(),
                            "transfer-encoding" => chunked = value.contains("chunked"),
                            _ => {}
                        }
                    }
                    let mut body = Vec::new();
                    if chunked {
                        loop {
                            let mut size = String::new();
                            reader.read_line(&mut size).unwrap();
                            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                            let mut chunk = vec![0u8; n + 2];
                            reader.read_exact(&mut chunk).unwrap();
                            if n == 0 {
                                break;
                            }
                            body.extend_from_slice(&chunk[..n]);
                        }
                    } else {
                        body.resize(length, 0);
                        reader.read_exact(&mut body).unwrap();
                    }
                    let _ = writer.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                    let _ = tx.send(Export {
                        path,
                        content_type,
                        body,
                    });
                }
            });
        }
    });
    (port, rx)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn runner_spans_are_exported() {
    let (port, rx) = collector();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut r = RunnerProc::spawn(
        Kind::Stdio,
        Encoding::Json,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "rust-conformance"),
        ],
    );
    let mut c = r.connect();
    let mut req = request("r-span", "j-span", "fail", json!({"message": "span-boom"}));
    req["payload"]["context"]["trace_context"] = json!({
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    });
    req["payload"]["context"]["correlation_context"] = json!({"tenant": "acme-corr"});
    c.send(&req);
    assert_eq!(c.recv_type("response")["status"], "error");
    c.send(&request("r-missing", "j-missing", "missing", json!({})));
    assert_eq!(
        c.recv_type("response")["error"]["type"],
        "handler_not_found"
    );
    // stdin EOF: the runner flushes its spans and exits
    c.close_write();
    assert_eq!(r.wait_exit(Duration::from_secs(10)), Some(Some(0)));

    let mut all = Vec::new();
    while let Ok(export) = rx.recv_timeout(Duration::from_secs(2)) {
        assert_eq!(export.path, "/v1/traces");
        assert_eq!(export.content_type, "application/x-protobuf");
        all.extend(export.body);
    }
    assert!(!all.is_empty(), "no spans exported");
    for needle in [
        &b"rrq.runner"[..],
        b"rust-conformance",
        b"rrq.job_id",
        b"j-span",
        b"j-missing",
        b"handler_not_found",
        b"rrq.outcome",
        b"span-boom",
        b"messaging.system",
        b"acme-corr",
        b"rrq.queue_wait_ms",
    ] {
        assert!(
            contains(&all, needle),
            "{} missing from the export",
            String::from_utf8_lossy(needle)
        );
    }
    // the parent trace id from the carrier
    assert!(contains(&all, &hex("4bf92f3577b34da6a3ce929d0e0e4736")));
}
