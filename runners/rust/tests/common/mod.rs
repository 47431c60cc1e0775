//! Test helpers: locate (and build once) the example binaries, spawn runners, speak frames.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rrqkit::codec::{decode_body, encode_frame_value, Encoding, FrameDecoder};
use serde_json::{json, Value};

/// `target/<profile>` of the running test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// Path of an example binary, built once per test process with the same features and profile.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let dir = profile_dir();
    let built = BUILT.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--examples", "--quiet", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        let target_dir = dir.parent().expect("target dir");
        cmd.arg("--target-dir").arg(target_dir);
        if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let mut features = Vec::new();
        if cfg!(feature = "producer") {
            features.push("producer");
        }
        if cfg!(feature = "otel") {
            features.push("otel");
        }
        cmd.arg("--no-default-features");
        if !features.is_empty() {
            cmd.arg("--features").arg(features.join(","));
        }
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = built {
        panic!("building the examples failed:\n{e}");
    }
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "missing example binary {}", path.display());
    path
}

/// A fresh private temp directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rrqkit-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private redis-server on a Unix socket in its own temp directory, killed on drop (the
/// producer tests that want a server per test, or server-wide settings such as `maxmemory`).
#[cfg(feature = "producer")]
pub struct RedisServer {
    child: Child,
    dir: TempDir,
}

#[cfg(feature = "producer")]
impl RedisServer {
    /// Starts a server; `tag` names its temp directory.
    pub fn start(tag: &str) -> RedisServer {
        RedisServer::start_with(tag, &[])
    }

    /// Starts a server with extra redis-server arguments (`--maxmemory-policy noeviction`).
    pub fn start_with(tag: &str, extra_args: &[&str]) -> RedisServer {
        let dir = TempDir::new(tag);
        let socket = dir.path().join("redis.sock");
        let child = Command::new(std::env::var("REDIS_SERVER").unwrap_or("redis-server".into()))
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .args(extra_args)
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, dir }
    }

    pub fn dsn(&self) -> String {
        format!(
            "redis+unix://{}?db=0",
            self.dir.path().join("redis.sock").display()
        )
    }

    pub fn con(&self) -> redis::Connection {
        redis::Client::open(self.dsn())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn producer(&self) -> rrqkit::Producer {
        rrqkit::Producer::new(rrqkit::ProducerConfig::with_dsn(self.dsn())).unwrap()
    }
}

#[cfg(feature = "producer")]
impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn verbose() -> bool {
    std::env::var("RRQKIT_TEST_VERBOSE").is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stdio,
    Unix,
    Tcp,
}

/// A runner child process.
pub struct RunnerProc {
    pub child: Child,
    pub kind: Kind,
    pub encoding: Encoding,
    pub addr: String,
    pub dir: TempDir,
    stdio_taken: bool,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RunnerProc {
    pub fn spawn(kind: Kind, encoding: Encoding, env: &[(&str, &str)]) -> RunnerProc {
        let dir = TempDir::new("runner");
        let mut cmd = Command::new(example("conformance_runner"));
        let addr = match kind {
            Kind::Stdio => {
                cmd.arg("--stdio");
                String::new()
            }
            Kind::Unix => {
                let p = dir.path().join("r.sock");
                cmd.arg("--unix-socket").arg(&p);
                p.to_string_lossy().into_owned()
            }
            Kind::Tcp => {
                let a = format!("127.0.0.1:{}", free_port());
                cmd.arg("--tcp-socket").arg(&a);
                a
            }
        };
        if encoding == Encoding::Msgpack {
            cmd.args(["--encoding", "msgpack"]);
        }
        cmd.env_remove("RRQ_RUNNER_HELLO")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(if kind == Kind::Stdio {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(if kind == Kind::Stdio {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stderr(if verbose() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
        let child = cmd.spawn().expect("spawn runner");
        RunnerProc {
            child,
            kind,
            encoding,
            addr,
            dir,
            stdio_taken: false,
        }
    }

    /// A new connection (for stdio: the one stdin/stdout pair).
    pub fn connect(&mut self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(10);
        match self.kind {
            Kind::Stdio => {
                assert!(!self.stdio_taken, "stdio has one connection");
                self.stdio_taken = true;
                let stdin = self.child.stdin.take().unwrap();
                let stdout = self.child.stdout.take().unwrap();
                Client::new(self.encoding, Box::new(stdin), Box::new(stdout), None)
            }
            Kind::Unix => loop {
                match UnixStream::connect(&self.addr) {
                    Ok(s) => {
                        let r = s.try_clone().unwrap();
                        let c = s.try_clone().unwrap();
                        return Client::new(
                            self.encoding,
                            Box::new(s),
                            Box::new(r),
                            Some(Box::new(move || {
                                let _ = c.shutdown(Shutdown::Write);
                            })),
                        );
                    }
                    Err(e) => {
                        assert!(Instant::now() < deadline, "unix connect: {e}");
                        self.assert_alive();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            },
            Kind::Tcp => loop {
                match TcpStream::connect(&self.addr) {
                    Ok(s) => {
                        s.set_nodelay(true).unwrap();
                        let r = s.try_clone().unwrap();
                        let c = s.try_clone().unwrap();
                        return Client::new(
                            self.encoding,
                            Box::new(s),
                            Box::new(r),
                            Some(Box::new(move || {
                                let _ = c.shutdown(Shutdown::Write);
                            })),
                        );
                    }
                    Err(e) => {
                        assert!(Instant::now() < deadline, "tcp connect: {e}");
                        self.assert_alive();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            },
        }
    }

    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("runner exited early: {status}");
        }
    }

    /// Waits for the process to exit; returns its exit code (None for a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for RunnerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub enum Event {
    Frame(Value),
    Closed(Option<String>),
}

/// One protocol connection, written synchronously and read by a background thread.
pub struct Client {
    pub encoding: Encoding,
    writer: Option<Box<dyn Write + Send>>,
    rx: Receiver<Event>,
    half_close: Option<Box<dyn FnMut() + Send>>,
}

impl Client {
    pub fn new(
        encoding: Encoding,
        writer: Box<dyn Write + Send>,
        mut reader: Box<dyn Read + Send>,
        half_close: Option<Box<dyn FnMut() + Send>>,
    ) -> Client {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut dec = FrameDecoder::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Event::Closed(dec.finish().err().map(|e| e.to_string())));
                        return;
                    }
                    Ok(n) => n,
                };
                dec.push(&buf[..n]);
                loop {
                    match dec.next_frame() {
                        Ok(Some(body)) => {
                            let v = decode_body(&body, encoding).expect("runner sent a bad body");
                            if tx.send(Event::Frame(v)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Event::Closed(Some(e.to_string())));
                            return;
                        }
                    }
                }
            }
        });
        Client {
            encoding,
            writer: Some(writer),
            rx,
            half_close,
        }
    }

    pub fn send(&mut self, frame: &Value) {
        let bytes = encode_frame_value(frame, self.encoding).expect("encode");
        self.send_raw(&bytes);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let w = self.writer.as_mut().expect("writer open");
        w.write_all(bytes).expect("write to runner");
        w.flush().unwrap();
    }

    /// Stops writing: EOF for the runner's reader (stdin closed / socket write shutdown).
    pub fn close_write(&mut self) {
        if let Some(mut f) = self.half_close.take() {
            f();
        }
        self.writer = None;
    }

    /// The next frame within `timeout`; panics on timeout or close.
    pub fn recv_within(&self, timeout: Duration) -> Value {
        match self.rx.recv_timeout(timeout) {
            Ok(Event::Frame(v)) => v,
            Ok(Event::Closed(e)) => panic!("connection closed while waiting for a frame ({e:?})"),
            Err(RecvTimeoutError::Timeout) => panic!("no frame within {timeout:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("reader gone"),
        }
    }

    pub fn recv(&self) -> Value {
        self.recv_within(Duration::from_secs(10))
    }

    /// The next frame's payload, asserting its type.
    pub fn recv_type(&self, frame_type: &str) -> Value {
        let f = self.recv();
        assert_eq!(f["type"], frame_type, "unexpected frame {f}");
        f["payload"].clone()
    }

    /// Asserts nothing arrives for `d`.
    pub fn assert_silent(&self, d: Duration) {
        match self.rx.recv_timeout(d) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(Event::Frame(v)) => panic!("unexpected frame {v}"),
            Ok(Event::Closed(e)) => panic!("unexpected close ({e:?})"),
            Err(RecvTimeoutError::Disconnected) => panic!("reader gone"),
        }
    }

    /// Asserts the runner closes the connection within `d` without sending a frame.
    pub fn expect_closed(&self, d: Duration) {
        match self.rx.recv_timeout(d) {
            Ok(Event::Closed(_)) => {}
            Ok(Event::Frame(v)) => panic!("expected close, got frame {v}"),
            Err(e) => panic!("connection not closed within {d:?}: {e:?}"),
        }
    }
}

/// An ExecutionContext with every optional field null.
pub fn context(job_id: &str, deadline: Option<String>) -> Value {
    json!({
        "job_id": job_id,
        "attempt": 1,
        "enqueue_time": "2026-01-01T12:00:00Z",
        "queue_name": "rrq:queue:default",
        "deadline": deadline,
        "trace_context": null,
        "correlation_context": null,
        "worker_id": "w-1",
    })
}

pub fn request(request_id: &str, job_id: &str, function_name: &str, params: Value) -> Value {
    request_with(request_id, job_id, function_name, params, None)
}

pub fn request_with(
    request_id: &str,
    job_id: &str,
    function_name: &str,
    params: Value,
    deadline: Option<String>,
) -> Value {
    json!({
        "type": "request",
        "payload": {
            "protocol_version": "2",
            "request_id": request_id,
            "job_id": job_id,
            "function_name": function_name,
            "params": params,
            "context": context(job_id, deadline),
        }
    })
}

pub fn cancel(job_id: &str, request_id: Option<&str>) -> Value {
    let mut payload = json!({"protocol_version": "2", "job_id": job_id});
    if let Some(r) = request_id {
        payload["request_id"] = json!(r);
    }
    payload["hard_kill"] = json!(false);
    json!({"type": "cancel", "payload": payload})
}

/// RFC 3339 "now + ms" (ms may be negative).
pub fn deadline_in(ms: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(ms))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../protocol/vectors"
    ))
}

pub fn manifest() -> Value {
    let text = std::fs::read_to_string(vectors_dir().join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).unwrap()
}
