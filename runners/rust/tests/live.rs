//! Live jobs, runner side (issue 23): hello tags and features, progress and output frames.
//! Most tests serve an in-process [`Runner`] on loopback TCP and speak frames to it.

use std::time::Duration;

use rrqkit::codec::{DecodeErrorCode, Encoding, FrameDecoder};
use rrqkit::protocol::normalize_tags;
use rrqkit::runtime::{runner_tags, FEATURES};
use rrqkit::{
    ExecutionRequest, Frame, HandlerError, Hello, JobContext, LaunchArgs, LiveOptions, OutputChunk,
    OutputStream, ProgressUpdate, Runner, Transport,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// -- codec ----------------------------------------------------------------------------------

fn decode(frame_type: &str, payload: Value) -> Result<Frame, DecodeErrorCode> {
    Frame::from_value(json!({"type": frame_type, "payload": payload})).map_err(|e| e.code())
}

fn merged(base: &Value, extra: Value) -> Value {
    let mut v = base.clone();
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

/// Each of `bad` merged into `payload` makes a `frame_type` frame that is refused as invalid.
fn assert_invalid(frame_type: &str, payload: &Value, bad: impl IntoIterator<Item = Value>) {
    for bad in bad {
        assert_eq!(
            decode(frame_type, merged(payload, bad.clone())).unwrap_err(),
            DecodeErrorCode::InvalidFrame,
            "{bad}"
        );
    }
}

#[test]
fn progress_frame_round_trip_and_validation() {
    let payload =
        json!({"job_id": "j", "request_id": "r", "progress": 0.5, "message": "half", "detail": {}});
    let Ok(Frame::Progress(p)) = decode("progress", payload.clone()) else {
        panic!("not a progress frame")
    };
    assert_eq!(
        p,
        ProgressUpdate {
            job_id: "j".into(),
            request_id: "r".into(),
            progress: Some(0.5),
            message: Some("half".into()),
            detail: Some(json!({})),
        }
    );
    assert_eq!(p.to_value(), payload);
    let value = p.to_value();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["job_id", "request_id", "progress", "message", "detail"]
    );
    let Ok(Frame::Progress(p)) = decode("progress", json!({"job_id": "j", "request_id": "r"}))
    else {
        panic!("not a progress frame")
    };
    assert_eq!((&p.progress, &p.message, &p.detail), (&None, &None, &None));
    assert_invalid(
        "progress",
        &payload,
        [
            json!({"progress": 1.5}),
            json!({"progress": -0.1}),
            json!({"progress": "0.5"}),
            json!({"message": 3}),
            json!({"message": "m".repeat(1025)}),
            json!({"request_id": null}),
            json!({"request_id": ""}),
        ],
    );
    // readers leave the detail's size to writers (schema)
    let big = merged(&payload, json!({"detail": "v".repeat(5000)}));
    assert!(matches!(decode("progress", big), Ok(Frame::Progress(_))));
    // integral values are written as integers, as Node and Python write them
    let one = ProgressUpdate {
        progress: Some(1.0),
        ..p.clone()
    };
    assert_eq!(
        serde_json::to_string(&one.to_value()["progress"]).unwrap(),
        "1"
    );
}

#[test]
fn output_frame_round_trip_and_validation() {
    let payload = json!({"job_id": "j", "request_id": "r", "seq": 0, "stream": "handler",
        "data": "line\n", "truncated": false, "dropped_bytes": 0});
    let Ok(Frame::Output(o)) = decode("output", payload.clone()) else {
        panic!("not an output frame")
    };
    assert_eq!(
        o,
        OutputChunk {
            job_id: "j".into(),
            request_id: "r".into(),
            seq: 0,
            stream: OutputStream::Handler,
            data: "line\n".into(),
            truncated: false,
            dropped_bytes: 0,
        }
    );
    assert_eq!(o.to_value(), payload);
    assert_invalid(
        "output",
        &payload,
        [
            json!({"seq": -1}),
            json!({"seq": 1.5}),
            json!({"seq": null}),
            json!({"stream": "log"}),
            json!({"data": null}),
            json!({"data": "é".repeat(32769)}),
            json!({"truncated": "yes"}),
            json!({"dropped_bytes": -3}),
        ],
    );
}

fn request_value(function_name: &str, request_id: &str, job_id: &str, live: Value) -> Value {
    let mut payload = json!({
        "protocol_version": "2",
        "request_id": request_id,
        "job_id": job_id,
        "function_name": function_name,
        "params": {},
        "context": {
            "job_id": job_id, "attempt": 1, "enqueue_time": "2026-01-01T12:00:00Z",
            "queue_name": "rrq:queue:default", "deadline": null, "trace_context": null,
            "correlation_context": null, "worker_id": "w-1",
        },
    });
    if !live.is_null() {
        payload["live"] = live;
    }
    json!({"type": "request", "payload": payload})
}

fn parse_request(live: Value) -> Result<ExecutionRequest, DecodeErrorCode> {
    let mut frame = request_value("echo", "r", "j", Value::Null);
    frame["payload"]["live"] = live;
    match Frame::from_value(frame).map_err(|e| e.code())? {
        Frame::Request(r) => Ok(r),
        other => panic!("{other:?}"),
    }
}

#[test]
fn request_live_field() {
    let plain = parse_request(Value::Null).unwrap();
    assert_eq!(plain.live, None);
    assert!(plain.to_value().get("live").is_none()); // RRQ's bytes unchanged
    let r = parse_request(json!({"progress": true, "progress_interval_ms": 100})).unwrap();
    assert_eq!(
        r.live,
        Some(LiveOptions {
            progress: true,
            output: false,
            progress_interval_ms: 100,
            output_max_bytes: 8 * 1024 * 1024, // absent: the default
        })
    );
    assert_eq!(
        r.to_value()["live"],
        json!({"progress": true, "output": false, "progress_interval_ms": 100,
            "output_max_bytes": 8388608})
    );
    for bad in [
        json!([]),
        json!({"progress": 1}),
        json!({"output_max_bytes": -1}),
        json!({"progress_interval_ms": 0.5}),
    ] {
        assert_eq!(
            parse_request(bad.clone()).unwrap_err(),
            DecodeErrorCode::InvalidFrame,
            "{bad}"
        );
    }
}

#[test]
fn hello_tags() {
    let base = json!({"protocol_version": "2", "runtime": "x", "features": []});
    let Ok(Frame::Hello(h)) = decode("hello", merged(&base, json!({"tags": ["a", "region:eu"]})))
    else {
        panic!("not a hello")
    };
    assert_eq!(h.tags, ["a", "region:eu"]);
    assert_eq!(h.to_value()["tags"], json!(["a", "region:eu"]));
    let Ok(Frame::Hello(h)) = decode("hello", base.clone()) else {
        panic!("not a hello")
    };
    assert!(h.tags.is_empty());
    assert!(h.to_value().get("tags").is_none());
    let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    for bad in [
        json!("gpu"),
        json!([""]),
        json!(["a b"]),
        json!(["x".repeat(65)]),
        json!(many),
        json!([1]),
        json!(["a", "a"]),
    ] {
        assert!(
            decode("hello", merged(&base, json!({ "tags": bad }))).is_err(),
            "{bad}"
        );
    }
    let _ = Hello {
        protocol_version: "2".into(),
        runtime: "x".into(),
        runtime_version: None,
        pid: None,
        max_in_flight: None,
        features: vec![],
        tags: vec![],
    };
}

#[test]
fn tags_are_checked_merged_and_sorted() {
    assert_eq!(normalize_tags(["gpu", "a", "gpu"]).unwrap(), ["a", "gpu"]);
    assert_eq!(
        runner_tags(["gpu"], " region:eu , ,gpu,cuda=12").unwrap(),
        ["cuda=12", "gpu", "region:eu"]
    );
    assert!(runner_tags(Vec::<String>::new(), "").unwrap().is_empty());
    assert!(runner_tags(["no spaces"], "").is_err());
    assert!(runner_tags(Vec::<String>::new(), "ok,bad!").is_err());
    assert!(normalize_tags((0..33).map(|i| format!("t{i}"))).is_err());
}

#[test]
fn job_context_outside_a_handler_does_nothing() {
    let ctx = JobContext::current();
    assert_eq!(ctx.job_id(), None);
    assert!(!ctx.progress_enabled() && !ctx.output_enabled());
    ctx.progress(0.5).message("half").detail(json!({"n": 1}));
    ctx.output().write("text");
    ctx.output().json(&json!({"a": 1})).unwrap();
    let mut bad = std::collections::HashMap::new();
    bad.insert(vec![1u8], 1); // a map with non-string keys has no JSON form
    assert!(ctx.output().json(&bad).is_err());
}

// -- an in-process runner -------------------------------------------------------------------

struct Peer {
    stream: TcpStream,
    encoding: Encoding,
    decoder: FrameDecoder,
    pending: std::collections::VecDeque<Frame>,
}

impl Peer {
    async fn send(&mut self, frame: Value) {
        let bytes = rrqkit::codec::encode_frame_value(&frame, self.encoding).unwrap();
        self.stream.write_all(&bytes).await.unwrap();
    }

    async fn next(&mut self) -> Frame {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            if let Some(f) = self.pending.pop_front() {
                return f;
            }
            let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf))
                .await
                .expect("a frame within 5 s")
                .unwrap();
            assert!(n > 0, "connection closed");
            self.decoder.push(&buf[..n]);
            while let Some(body) = self.decoder.next_frame().unwrap() {
                self.pending
                    .push_back(Frame::decode(&body, self.encoding).unwrap());
            }
        }
    }

    /// Frames of `request_id` up to and including its response.
    async fn until_response(&mut self, request_id: &str) -> Vec<Frame> {
        let mut got = Vec::new();
        loop {
            let frame = self.next().await;
            let rid = match &frame {
                Frame::Progress(p) => Some(p.request_id.as_str()),
                Frame::Output(o) => Some(o.request_id.as_str()),
                Frame::Response(o) => o.request_id.as_deref(),
                _ => None,
            };
            if rid != Some(request_id) {
                continue;
            }
            let done = matches!(frame, Frame::Response(_));
            got.push(frame);
            if done {
                return got;
            }
        }
    }
}

/// Serves `runner` (hello on) on a free loopback port: the port and the serving task.
fn spawn_serving(mut runner: Runner, encoding: Encoding) -> (u16, tokio::task::JoinHandle<()>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    runner.set_hello(true);
    let args = LaunchArgs {
        transport: Transport::Tcp(format!("127.0.0.1:{port}")),
        encoding,
    };
    let task = tokio::spawn(async move {
        runner.serve(args).await.unwrap();
    });
    (port, task)
}

/// Serves `runner` and connects to it; the hello it sends first is read.
async fn serve(runner: Runner, encoding: Encoding) -> (Peer, tokio::task::JoinHandle<()>) {
    let (mut peer, task) = connect(runner, encoding).await;
    let Frame::Hello(_) = peer.next().await else {
        panic!("hello first")
    };
    (peer, task)
}

/// Serves `runner` and connects to it (retrying while it starts listening).
async fn connect(runner: Runner, encoding: Encoding) -> (Peer, tokio::task::JoinHandle<()>) {
    let (port, task) = spawn_serving(runner, encoding);
    let mut tries = 0;
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => break s,
            Err(_) if tries < 200 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let peer = Peer {
        stream,
        encoding,
        decoder: FrameDecoder::new(),
        pending: Default::default(),
    };
    (peer, task)
}

/// Serves `runner`, sends it one request (`ids`: request and job id) for `function` with
/// `live`, and returns the frames of that request up to its response; the runner then stops.
async fn run_request(
    runner: Runner,
    encoding: Encoding,
    function: &str,
    ids: (&str, &str),
    live: Value,
) -> Vec<Frame> {
    let (mut peer, task) = serve(runner, encoding).await;
    peer.send(request_value(function, ids.0, ids.1, live)).await;
    let frames = peer.until_response(ids.0).await;
    task.abort();
    frames
}

/// The progress frames among `frames`, in order.
fn progress_updates(frames: &[Frame]) -> Vec<&ProgressUpdate> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Progress(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// The output frames among `frames`, in order.
fn output_chunks(frames: &[Frame]) -> Vec<&OutputChunk> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Output(o) => Some(o),
            _ => None,
        })
        .collect()
}

fn all_on() -> Value {
    json!({"progress": true, "output": true, "progress_interval_ms": 0, "output_max_bytes": 1000})
}

fn live_runner() -> Runner {
    let mut runner = Runner::new();
    runner.register("work", |req: ExecutionRequest| async move {
        let ctx = JobContext::current();
        assert_eq!(ctx.job_id(), Some(req.job_id.as_str()));
        assert_eq!(ctx.request_id(), Some(req.request_id.as_str()));
        ctx.progress(0.25).message("quarter");
        ctx.output().write("hello ");
        ctx.output().json(&json!({"n": 1}))?;
        ctx.progress(1.0)
            .message("done")
            .detail(json!({"items": 3}));
        Ok::<_, HandlerError>(json!({"ok": true}))
    });
    runner.register("blocking", |_req| async move {
        let ctx = JobContext::current();
        tokio::task::spawn_blocking(move || {
            ctx.progress(0.5).send();
            ctx.output().write("from a thread\n");
        })
        .await?;
        Ok::<_, HandlerError>(json!("ok"))
    });
    runner
}

fn kinds(frames: &[Frame]) -> Vec<&'static str> {
    frames.iter().map(Frame::type_name).collect()
}

#[tokio::test]
async fn hello_announces_features_and_tags() {
    let mut runner = Runner::new();
    runner.tags(["gpu", "a:b"]).tags(["gpu"]);
    let (mut peer, task) = connect(runner, Encoding::Msgpack).await;
    let Frame::Hello(h) = peer.next().await else {
        panic!("hello first")
    };
    assert_eq!(h.features, FEATURES);
    assert!(h.features.iter().any(|f| f == "progress"));
    assert!(h.features.iter().any(|f| f == "output"));
    assert_eq!(h.tags, ["a:b", "gpu"]);
    task.abort();
}

#[tokio::test]
async fn invalid_tags_fail_serving() {
    let mut runner = Runner::new();
    runner.tags(["not valid"]);
    let args = LaunchArgs {
        transport: Transport::Tcp("127.0.0.1:0".into()),
        encoding: Encoding::Json,
    };
    let err = runner.serve(args).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn frames_precede_the_response() {
    for encoding in [Encoding::Json, Encoding::Msgpack] {
        let frames = run_request(live_runner(), encoding, "work", ("r-1", "job-1"), all_on()).await;
        // the two writes share a frame; the progress report flushes it first
        assert_eq!(
            kinds(&frames),
            ["progress", "output", "progress", "response"]
        );
        let Frame::Progress(p) = &frames[0] else {
            unreachable!()
        };
        assert_eq!(
            p.to_value(),
            json!({"job_id": "job-1", "request_id": "r-1", "progress": 0.25,
                "message": "quarter", "detail": null})
        );
        let Frame::Output(o) = &frames[1] else {
            unreachable!()
        };
        assert_eq!(
            o.to_value(),
            json!({"job_id": "job-1", "request_id": "r-1", "seq": 0, "stream": "handler",
                "data": "hello {\"n\":1}\n", "truncated": false, "dropped_bytes": 0})
        );
        let Frame::Progress(p) = &frames[2] else {
            unreachable!()
        };
        assert_eq!(p.progress, Some(1.0));
        assert_eq!(p.detail, Some(json!({"items": 3})));
    }
}

#[tokio::test]
async fn a_cloned_context_works_in_a_blocking_thread() {
    let frames = run_request(
        live_runner(),
        Encoding::Json,
        "blocking",
        ("r-b", "job-b"),
        all_on(),
    )
    .await;
    assert_eq!(kinds(&frames), ["progress", "output", "response"]);
}

#[tokio::test]
async fn nothing_is_sent_unless_enabled() {
    let (mut peer, task) = serve(live_runner(), Encoding::Json).await;
    let cases = [
        (Value::Null, vec!["response"]),
        (json!({}), vec!["response"]),
        (
            json!({"progress": false, "output": false}),
            vec!["response"],
        ),
        (
            json!({"progress": true, "progress_interval_ms": 0}),
            vec!["progress", "progress", "response"],
        ),
        (json!({"output": true}), vec!["output", "response"]),
    ];
    for (i, (live, expected)) in cases.into_iter().enumerate() {
        let rid = format!("r-{i}");
        peer.send(request_value("work", &rid, "job-n", live.clone()))
            .await;
        assert_eq!(kinds(&peer.until_response(&rid).await), expected, "{live}");
    }
    task.abort();
}

#[tokio::test]
async fn progress_is_coalesced_with_a_trailing_update() {
    let mut runner = Runner::new();
    runner.register("burst", |_req| async move {
        let ctx = JobContext::current();
        for i in 1..=100 {
            ctx.progress(i as f64 / 100.0).message(format!("step {i}"));
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
        Ok::<_, HandlerError>(Value::Null)
    });
    let frames = run_request(
        runner,
        Encoding::Json,
        "burst",
        ("r-c", "job-c"),
        json!({"progress": true, "progress_interval_ms": 100}),
    )
    .await;
    let updates = progress_updates(&frames);
    // ~300 ms of work in 10 bursts at one update per 100 ms: the first at once, then a few more
    // (at most one per burst however slow the machine) and the trailing one
    assert!((2..=12).contains(&updates.len()), "{updates:?}");
    assert_eq!(updates[0].message.as_deref(), Some("step 1"));
    let last = updates.last().unwrap();
    assert_eq!(
        (last.progress, last.message.as_deref()),
        (Some(1.0), Some("step 100"))
    );
}

#[tokio::test]
async fn output_cap_sends_one_truncated_frame() {
    let mut runner = Runner::new();
    runner.register("chatty", |_req| async move {
        let ctx = JobContext::current();
        ctx.output().write("a".repeat(6));
        tokio::task::yield_now().await; // the flush task runs: a frame of its own
        ctx.output().write("é".repeat(4)); // 8 bytes: 3 fit, the cut falls inside an é
        tokio::task::yield_now().await;
        ctx.output().write("tail");
        ctx.output().write("more");
        Ok::<_, HandlerError>(Value::Null)
    });
    let frames = run_request(
        runner,
        Encoding::Json,
        "chatty",
        ("r-t", "job-t"),
        json!({"output": true, "output_max_bytes": 9}),
    )
    .await;
    let outputs: Vec<(u64, String, bool, u64)> = output_chunks(&frames)
        .into_iter()
        .map(|o| (o.seq, o.data.clone(), o.truncated, o.dropped_bytes))
        .collect();
    assert_eq!(
        outputs,
        [
            (0, "aaaaaa".to_string(), false, 0),
            (1, "é".to_string(), false, 0),
            (2, String::new(), true, 6 + 8),
        ]
    );
    assert_eq!(kinds(&frames).last(), Some(&"response"));
}

#[tokio::test]
async fn large_writes_are_split_into_64_kib_chunks() {
    let text = "ü".repeat(40000); // 80000 bytes
    let expected = text.clone();
    let mut runner = Runner::new();
    runner.register("big", move |_req| {
        let text = text.clone();
        async move {
            JobContext::current().output().write(&text);
            Ok::<_, HandlerError>(Value::Null)
        }
    });
    let frames = run_request(
        runner,
        Encoding::Msgpack,
        "big",
        ("r-l", "job-l"),
        json!({"output": true}),
    )
    .await;
    let data: Vec<String> = output_chunks(&frames)
        .into_iter()
        .map(|o| o.data.clone())
        .collect();
    assert_eq!(
        data.iter().map(String::len).collect::<Vec<_>>(),
        [65536, 80000 - 65536]
    );
    assert_eq!(data.concat(), expected);
}

#[tokio::test]
async fn oversize_detail_is_left_out_and_message_cut() {
    let mut runner = Runner::new();
    runner.register("detail", |_req| async move {
        let ctx = JobContext::current();
        ctx.progress(f64::NAN)
            .message("m".repeat(2000))
            .detail(json!({"blob": "x".repeat(5000)}));
        ctx.progress(7.0);
        Ok::<_, HandlerError>(Value::Null)
    });
    let frames = run_request(runner, Encoding::Json, "detail", ("r-d", "job-d"), all_on()).await;
    let Frame::Progress(first) = &frames[0] else {
        panic!("{frames:?}")
    };
    assert_eq!(first.progress, None);
    assert_eq!(
        first.message.as_ref().map(|m| m.chars().count()),
        Some(1024)
    );
    assert_eq!(first.detail, None);
    let Frame::Progress(second) = &frames[1] else {
        panic!("{frames:?}")
    };
    assert_eq!(second.progress, Some(1.0));
}

#[tokio::test]
async fn cancel_flushes_pending_progress_before_the_cancelled_outcome() {
    let mut runner = Runner::new();
    runner.register("slow", |_req| async move {
        let ctx = JobContext::current();
        ctx.progress(0.1);
        ctx.progress(0.2); // within the interval: pending
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, HandlerError>(Value::Null)
    });
    let (mut peer, task) = serve(runner, Encoding::Json).await;
    peer.send(request_value(
        "slow",
        "r-x",
        "job-x",
        json!({"progress": true, "progress_interval_ms": 60000}),
    ))
    .await;
    let Frame::Progress(first) = peer.next().await else {
        panic!("progress first")
    };
    assert_eq!(first.progress, Some(0.1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    peer.send(
        json!({"type": "cancel", "payload": {"protocol_version": "2", "job_id": "job-x",
        "request_id": "r-x"}}),
    )
    .await;
    let frames = peer.until_response("r-x").await;
    assert_eq!(kinds(&frames), ["progress", "response"]);
    let Frame::Progress(p) = &frames[0] else {
        unreachable!()
    };
    assert_eq!(p.progress, Some(0.2));
    let Frame::Response(o) = &frames[1] else {
        unreachable!()
    };
    assert_eq!(
        o.error.as_ref().unwrap().error_type.as_deref(),
        Some("cancelled")
    );
    task.abort();
}

#[tokio::test]
async fn writes_in_quick_succession_share_frames() {
    let mut runner = Runner::new();
    runner.register("lines", |_req| async move {
        let out = JobContext::current();
        for i in 0..1000 {
            out.output().write(format!("line {i}\n"));
        }
        tokio::task::yield_now().await;
        out.output().write("after\n");
        Ok::<_, HandlerError>(Value::Null)
    });
    let frames = run_request(
        runner,
        Encoding::Json,
        "lines",
        ("r-q", "job-q"),
        json!({"output": true}),
    )
    .await;
    let outputs: Vec<(u64, String)> = output_chunks(&frames)
        .into_iter()
        .map(|o| (o.seq, o.data.clone()))
        .collect();
    let all: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    assert_eq!(outputs, [(0, all), (1, "after\n".to_string())]);
}
