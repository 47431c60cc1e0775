//! The runner runtime: transports, connections, in-flight bookkeeping, cancellation and
//! deadlines (RUNNER_PROTOCOL.md §5–§10).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::AbortHandle;

use crate::codec::{DecodeError, DecodeErrorCode, EncodeError, Encoding, FrameDecoder};
use crate::handler::{CatchUnwind, IntoHandlerOutcome, Registry};
use crate::handler_middleware::{panic_outcome, Next};
use crate::launch::{self, LaunchArgs, Transport};
use crate::live::{JobContext, LiveChannel};
use crate::outbox::{Outbox, Sink};
use crate::protocol::{
    normalize_tags, ExecutionOutcome, ExecutionRequest, Frame, Hello, OutcomeError, OutcomeStatus,
    Ping, BUSY_MESSAGE, DEADLINE_EXCEEDED_MESSAGE, DEFAULT_RETRY_MESSAGE, ERROR_TYPE_TIMEOUT,
    PROTOCOL_VERSION, TIMEOUT_MESSAGE, UNEXPECTED_RESPONSE_MESSAGE, UNHANDLED_ERROR_MESSAGE,
    UNSUPPORTED_VERSION_MESSAGE,
};
use crate::telemetry::{self, RequestSpan};

/// Per-connection in-flight cap (and the `max_in_flight` announced in hello).
pub const MAX_IN_FLIGHT: usize = 64;
/// `runtime` announced in hello.
pub const RUNTIME_NAME: &str = "rrqkit-rust";
/// `features` announced in hello.
pub const FEATURES: [&str; 5] = [
    "ping",
    "cancel_by_job",
    "stdout_guard",
    "progress",
    "output",
];

macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("[rrqkit-rust] {}", cap_log_line(format!($($arg)*)))
    };
}

/// Longest runtime log line kept whole: an error's text can carry a job's params or result.
const MAX_LOG_LINE: usize = 2048;

/// `line` cut to [`MAX_LOG_LINE`] bytes (on a char boundary) with a marker.
fn cap_log_line(line: String) -> String {
    if line.len() <= MAX_LOG_LINE {
        return line;
    }
    let mut end = MAX_LOG_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} more bytes cut]", &line[..end], line.len() - end)
}

/// A runner process: a handler registry plus the protocol runtime.
///
/// ```no_run
/// use rrqkit::{Runner, HandlerError};
/// let mut runner = Runner::new();
/// runner.register("echo", |req| async move { Ok::<_, HandlerError>(req.params) });
/// runner.run_from_args();
/// ```
#[derive(Debug, Default)]
pub struct Runner {
    registry: Registry,
    hello: Option<bool>,
    handler_runtime: Option<tokio::runtime::Handle>,
    #[cfg(feature = "contracts")]
    catalog: Option<crate::contracts::JobCatalog>,
    tags: Vec<String>,
}

/// Why [`Runner::serve`] returned.
#[derive(Debug)]
pub enum ServeEnd {
    /// stdin reached end of file (stdio transport).
    StdinClosed,
    /// The stdio connection had a decoding error and was closed.
    StdioDecodeError(DecodeError),
    /// SIGTERM or SIGINT.
    Signal,
}

impl Runner {
    pub fn new() -> Self {
        Self::default()
    }

    /// A runner for an existing registry.
    pub fn with_registry(registry: Registry) -> Self {
        Runner {
            registry,
            ..Self::default()
        }
    }

    /// Registers a handler of a generated params type (see [`Registry::register_typed`]).
    #[cfg(feature = "contracts")]
    pub fn register_typed<P, F, Fut, E>(&mut self, handler: F) -> &mut Self
    where
        P: crate::contracts::JobContract + Send + 'static,
        F: Fn(P, ExecutionRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<P::Result, E>> + Send + 'static,
        E: Into<crate::HandlerError>,
    {
        self.registry.register_typed::<P, F, Fut, E>(handler);
        self
    }

    /// Checks the params of catalogued functions before their handler runs: params that break
    /// their contract get an `error` outcome of type `invalid_params` (message
    /// `<function>: params<field> <what is wrong>`) and the handler is not called. Without this
    /// call, the catalog `RRQ_JOB_CATALOG` names (a directory) is used, if any.
    #[cfg(feature = "contracts")]
    pub fn catalog(&mut self, catalog: crate::contracts::JobCatalog) -> &mut Self {
        self.catalog = Some(catalog);
        self
    }

    /// The catalog set with [`Runner::catalog`], else the one `RRQ_JOB_CATALOG` names.
    #[cfg(feature = "contracts")]
    fn resolve_catalog(&mut self) -> Result<(), crate::contracts::CatalogError> {
        if self.catalog.is_none() {
            self.catalog = crate::contracts::catalog_from_env()?;
        }
        Ok(())
    }

    /// The `--list-handlers` line: `{"runtime":"rust","version":..,"handlers":[sorted names]}`.
    pub fn handlers_line(&self) -> String {
        serde_json::json!({
            "runtime": "rust",
            "version": env!("CARGO_PKG_VERSION"),
            "handlers": self.registry.names(),
        })
        .to_string()
    }

    /// Registers a handler (see [`Registry::register`]).
    pub fn register<F, Fut>(&mut self, name: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(ExecutionRequest) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoHandlerOutcome,
    {
        self.registry.register(name, handler);
        self
    }

    /// Adds a middleware around every handler (see [`Registry::middleware`]): first
    /// registered = outermost; it runs after the `handler_not_found`, deadline and contract
    /// checks, with the job context current and under the request's deadline.
    ///
    /// ```no_run
    /// # use rrqkit::Runner;
    /// let mut runner = Runner::new();
    /// runner.middleware(|mut request, next| async move {
    ///     request.params.insert("via".into(), "middleware".into());
    ///     next.run(request).await
    /// });
    /// ```
    pub fn middleware<F, Fut>(&mut self, middleware: F) -> &mut Self
    where
        F: Fn(ExecutionRequest, Next) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoHandlerOutcome,
    {
        self.registry.middleware(middleware);
        self
    }

    /// The registry (its handlers and middleware).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry, to change.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Adds capability tags to the hello (jobs enqueued with `requires` go only to runners
    /// whose tags cover them), merged with the comma-separated `RRQ_RUNNER_TAGS`. Each tag is
    /// 1..64 characters of `A-Z a-z 0-9 _ . : / = -`, at most 32 in all; an invalid one makes
    /// serving fail with `InvalidInput` (see [`runner_tags`]).
    ///
    /// ```no_run
    /// # let mut runner = rrqkit::Runner::new();
    /// runner.tags(["gpu", "region:eu"]);
    /// ```
    pub fn tags<I, S>(&mut self, tags: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Overrides `RRQ_RUNNER_HELLO` (whether a hello frame opens each connection).
    pub fn set_hello(&mut self, enabled: bool) -> &mut Self {
        self.hello = Some(enabled);
        self
    }

    /// Parses `std::env::args()`, runs until shutdown and exits the process.
    ///
    /// Exit status: 0 after stdin EOF or SIGTERM, 1 after a decoding error on stdio, 2 for a
    /// bad command line or a transport that cannot be set up.
    ///
    /// With `--list-handlers` (no transport needed) it prints [`Runner::handlers_line`] on
    /// stdout and exits 0 without listening.
    pub fn run_from_args(self) -> ! {
        if std::env::args()
            .skip(1)
            .any(|a| a == launch::LIST_HANDLERS_FLAG)
        {
            println!("{}", self.handlers_line());
            std::process::exit(0);
        }
        let args = match LaunchArgs::parse(std::env::args().skip(1)) {
            Ok(a) => a,
            Err(e) => {
                log!("{e}\n{}", launch::USAGE);
                std::process::exit(2);
            }
        };
        let code = self.run(args);
        std::process::exit(code)
    }

    /// Runs handler tasks on `handle` instead of the runtime that serves the connections.
    pub fn set_handler_runtime(&mut self, handle: tokio::runtime::Handle) -> &mut Self {
        self.handler_runtime = Some(handle);
        self
    }

    /// Installs the stdout guard (stdio), the parent-death guard and telemetry, then serves
    /// until shutdown and returns the exit status.
    ///
    /// Two tokio runtimes are used: a small one for the protocol (accepting, reading, writing,
    /// pong, cancel) and one for handlers, so a handler that blocks its thread cannot delay
    /// pings, cancels or other outcomes.
    ///
    /// An unusable job catalog (`RRQ_JOB_CATALOG`) stops the runner with status 1.
    pub fn run(mut self, args: LaunchArgs) -> i32 {
        #[cfg(feature = "contracts")]
        if let Err(e) = self.resolve_catalog() {
            log!("{e}");
            return 1;
        }
        let frame_out = if args.transport == Transport::Stdio {
            match launch::guard_stdout() {
                Ok(f) => Some(f),
                Err(e) => {
                    log!("cannot protect stdout: {e}");
                    return 2;
                }
            }
        } else {
            None
        };
        launch::install_parent_guard();
        telemetry::init_from_env();
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(4);
        // The connection side (accept, read, decode, write, pongs, cancels) runs on one thread
        // of its own: a multi-threaded runtime there only bounced every frame between threads
        // (most of the runner's CPU was context switches). Handlers run on the other runtime,
        // so one that blocks a thread still cannot delay pongs, cancels or finished outcomes.
        let io = tokio::runtime::Builder::new_current_thread()
            .thread_name("rrq-runner-io")
            .enable_all()
            .build();
        let handlers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("rrq-runner-handler")
            .enable_all()
            .build();
        let (rt, handler_rt) = match (io, handlers) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                log!("cannot start the async runtime: {e}");
                return 2;
            }
        };
        if self.handler_runtime.is_none() {
            self.handler_runtime = Some(handler_rt.handle().clone());
        }
        let result = rt.block_on(self.serve_with(args, frame_out));
        let code = match result {
            Ok(ServeEnd::StdinClosed) | Ok(ServeEnd::Signal) => 0,
            Ok(ServeEnd::StdioDecodeError(e)) => {
                log!("closing stdio connection: {e}");
                1
            }
            Err(e) => {
                log!("{e}");
                2
            }
        };
        telemetry::shutdown();
        rt.shutdown_timeout(Duration::from_millis(200));
        handler_rt.shutdown_timeout(Duration::from_millis(200));
        code
    }

    /// Serves `args` inside an existing tokio runtime until stdin EOF (stdio) or SIGTERM /
    /// SIGINT. For stdio, call [`launch::guard_stdout`] yourself first and use
    /// [`Runner::serve_with`] to pass the protected frame file; this method writes frames to the
    /// original fd 1.
    pub async fn serve(self, args: LaunchArgs) -> std::io::Result<ServeEnd> {
        self.serve_with(args, None).await
    }

    /// Like [`Runner::serve`], with the file stdio frames are written to.
    pub async fn serve_with(
        #[cfg_attr(not(feature = "contracts"), allow(unused_mut))] mut self,
        args: LaunchArgs,
        frame_out: Option<std::fs::File>,
    ) -> std::io::Result<ServeEnd> {
        #[cfg(feature = "contracts")]
        self.resolve_catalog()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let hello = self.hello.unwrap_or_else(launch::hello_requested);
        let env_tags = std::env::var("RRQ_RUNNER_TAGS").unwrap_or_default();
        let tags = runner_tags(self.tags, &env_tags).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("capability tags: {e}"),
            )
        })?;
        let shared = Arc::new(Shared {
            tags,
            handlers: self
                .handler_runtime
                .unwrap_or_else(tokio::runtime::Handle::current),
            registry: self.registry,
            #[cfg(feature = "contracts")]
            catalog: self.catalog,
            encoding: args.encoding,
            hello,
            table: Mutex::new(Table::default()),
            next_conn: AtomicU64::new(1),
        });
        let signals = shutdown_signal();
        match args.transport {
            Transport::Tcp(spec) => {
                let addr = launch::resolve_tcp_address(&spec, launch::allow_remote())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let listener = tokio::net::TcpListener::bind(addr).await?;
                log!(
                    "listening on tcp {} ({})",
                    listener.local_addr()?,
                    args.encoding
                );
                let accept = {
                    let shared = shared.clone();
                    async move {
                        loop {
                            match listener.accept().await {
                                Ok((stream, _)) => {
                                    let _ = stream.set_nodelay(true);
                                    let (r, w) = stream.into_split();
                                    let sink = Sink::Tcp(w);
                                    tokio::spawn(socket_connection(shared.clone(), r, sink));
                                }
                                Err(e) => {
                                    log!("accept failed: {e}");
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = accept => unreachable!(),
                    _ = signals => {}
                }
                shared.abort_all();
                Ok(ServeEnd::Signal)
            }
            Transport::Unix(path) => {
                let listener = tokio::net::UnixListener::bind(&path)?;
                let _cleanup = RemoveOnDrop(path.clone());
                launch::set_socket_path(Some(path.clone()));
                log!("listening on unix {} ({})", path.display(), args.encoding);
                let accept = {
                    let shared = shared.clone();
                    async move {
                        loop {
                            match listener.accept().await {
                                Ok((stream, _)) => {
                                    let (r, w) = stream.into_split();
                                    let sink = Sink::Unix(w);
                                    tokio::spawn(socket_connection(shared.clone(), r, sink));
                                }
                                Err(e) => {
                                    log!("accept failed: {e}");
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = accept => unreachable!(),
                    _ = signals => {}
                }
                shared.abort_all();
                Ok(ServeEnd::Signal)
            }
            Transport::Stdio => {
                let out = match frame_out {
                    Some(f) => f,
                    None => {
                        // SAFETY: dup of fd 1 gives a new fd we own.
                        let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
                        if fd < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
                    }
                };
                let conn = shared.new_conn_id();
                let outbox = Outbox::threaded(shared.encoding);
                let writer = {
                    let outbox = outbox.clone();
                    std::thread::Builder::new()
                        .name("rrq-runner-stdout".into())
                        .spawn(move || outbox.blocking_writer(out))?
                };
                let end = tokio::select! {
                    end = read_loop(shared.clone(), conn, tokio::io::stdin(), &outbox) => end,
                    _ = signals => {
                        shared.abort_all();
                        return Ok(ServeEnd::Signal);
                    }
                };
                shared.drop_connection(conn);
                outbox.finish();
                // Let outcomes already produced reach stdout before the process exits.
                let join = tokio::task::spawn_blocking(move || {
                    let _ = writer.join();
                });
                let _ = tokio::time::timeout(Duration::from_secs(2), join).await;
                match end {
                    Ok(()) => Ok(ServeEnd::StdinClosed),
                    // End of file inside a frame is still the end of stdin.
                    Err(ReadEnd::Decode(e)) if e.code() == DecodeErrorCode::FrameTruncated => {
                        log!("stdin ended inside a frame: {e}");
                        Ok(ServeEnd::StdinClosed)
                    }
                    Err(ReadEnd::Decode(e)) => Ok(ServeEnd::StdioDecodeError(e)),
                    Err(ReadEnd::Io(e)) => {
                        log!("stdin read failed: {e}");
                        Ok(ServeEnd::StdinClosed)
                    }
                }
            }
        }
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        launch::set_socket_path(None);
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {}
        _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
    log!("shutting down on signal");
}

async fn socket_connection<R>(shared: Arc<Shared>, reader: R, sink: Sink)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let conn = shared.new_conn_id();
    let outbox = Outbox::socket(shared.encoding, sink);
    let writer_task = tokio::spawn(outbox.clone().writer_task());
    let end = read_loop(shared.clone(), conn, reader, &outbox).await;
    if let Err(ReadEnd::Decode(e)) = &end {
        log!("closing connection {conn}: {e}");
    }
    shared.drop_connection(conn);
    // Close at once: nothing more is written on a closed connection (§6.6, §2.5).
    outbox.close();
    writer_task.abort();
}

enum ReadEnd {
    Decode(DecodeError),
    Io(std::io::Error),
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    conn: u64,
    mut reader: R,
    out: &Arc<Outbox>,
) -> Result<(), ReadEnd> {
    if shared.hello {
        shared.send_frame(out, &Frame::Hello(hello_payload(&shared.tags)));
    }
    let mut decoder = FrameDecoder::new();
    loop {
        // Straight into the decoder's buffer; every complete frame is decoded in place.
        let n = match reader.read_buf(decoder.read_buffer(READ_CHUNK)).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadEnd::Io(e)),
        };
        if n == 0 {
            return decoder.finish().map_err(ReadEnd::Decode);
        }
        loop {
            match decoder.next_frame_ref() {
                Ok(Some(body)) => {
                    let frame = Frame::decode(body, shared.encoding).map_err(ReadEnd::Decode)?;
                    shared.handle_frame(conn, out, frame);
                }
                Ok(None) => break,
                Err(e) => return Err(ReadEnd::Decode(e)),
            }
        }
    }
}

/// Bytes asked of each read (more when a frame being received needs them).
const READ_CHUNK: usize = 64 * 1024;

fn hello_payload(tags: &[String]) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION.to_string(),
        runtime: RUNTIME_NAME.to_string(),
        runtime_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        pid: Some(std::process::id() as i64),
        max_in_flight: Some(MAX_IN_FLIGHT as u64),
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        tags: tags.to_vec(),
    }
}

/// `tags` plus the comma-separated `env` (blank items skipped), checked, deduplicated and
/// sorted (what the hello announces).
pub fn runner_tags<I, S>(tags: I, env: &str) -> Result<Vec<String>, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let from_env = env
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from);
    normalize_tags(tags.into_iter().map(Into::into).chain(from_env))
}

struct Shared {
    /// Capability tags announced in hello.
    tags: Vec<String>,
    /// Where handler tasks run.
    handlers: tokio::runtime::Handle,
    registry: Registry,
    /// Params of catalogued functions are checked before their handler runs.
    #[cfg(feature = "contracts")]
    catalog: Option<crate::contracts::JobCatalog>,
    encoding: Encoding,
    hello: bool,
    table: Mutex<Table>,
    next_conn: AtomicU64,
}

#[derive(Default)]
struct Table {
    next_key: u64,
    entries: HashMap<u64, Entry>,
    per_conn: HashMap<u64, usize>,
}

impl Table {
    fn remove(&mut self, key: u64) -> Option<Entry> {
        let entry = self.entries.remove(&key)?;
        if let Some(n) = self.per_conn.get_mut(&entry.conn) {
            *n -= 1;
            if *n == 0 {
                self.per_conn.remove(&entry.conn);
            }
        }
        Some(entry)
    }
}

struct Entry {
    conn: u64,
    request_id: String,
    job_id: String,
    out: Arc<Outbox>,
    abort: Option<AbortHandle>,
    span: RequestSpan,
    /// When the request's `live` enables a feature.
    live: Option<Arc<LiveChannel>>,
}

impl Entry {
    /// Live frames are all queued before the outcome: the last progress, the truncation marker.
    fn close_live(&self) {
        if let Some(live) = &self.live {
            live.close();
        }
    }

    fn discard_live(&self) {
        if let Some(live) = &self.live {
            live.discard();
        }
    }
}

impl Shared {
    fn new_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send_frame(&self, out: &Outbox, frame: &Frame) {
        if let Err(e) = out.send(frame) {
            log!("cannot encode {} frame: {e}", frame.type_name());
        }
    }

    fn send_outcome(&self, out: &Outbox, outcome: ExecutionOutcome) {
        self.queue_outcome(out, outcome, false);
    }

    /// Queues an outcome (replaced by an error outcome when it cannot be encoded); `batched`:
    /// with [`Outbox::send_batched`], returning whether the caller must flush.
    fn queue_outcome(&self, out: &Outbox, outcome: ExecutionOutcome, batched: bool) -> bool {
        let frame = Frame::Response(outcome);
        let sent = if batched {
            out.send_batched(&frame)
        } else {
            out.send(&frame).map(|()| false)
        };
        let err = match sent {
            Ok(flush) => return flush,
            Err(err) => err,
        };
        let Frame::Response(original) = frame else {
            unreachable!()
        };
        let (message, error_type) = match err {
            EncodeError::TooLarge(n) => (
                format!("Outcome too large: {n} bytes when encoded; the frame limit is 16777216"),
                "OutcomeTooLarge",
            ),
            EncodeError::Unencodable(m) => (
                format!("Outcome cannot be encoded: {m}"),
                "OutcomeNotEncodable",
            ),
        };
        log!("{message} (job {})", original.job_id);
        let mut replacement = ExecutionOutcome::error(message)
            .with_error_type(error_type)
            .with_ids(original.job_id, original.request_id.unwrap_or_default());
        if replacement.request_id.as_deref() == Some("") {
            replacement.request_id = None;
        }
        self.send_frame(out, &Frame::Response(replacement));
        false
    }

    fn handle_frame(self: &Arc<Self>, conn: u64, out: &Arc<Outbox>, frame: Frame) {
        match frame {
            Frame::Request(req) => self.accept_request(conn, out, req),
            Frame::Cancel(cancel) => {
                if cancel.protocol_version != PROTOCOL_VERSION {
                    return;
                }
                self.cancel(cancel.request_id.as_deref(), &cancel.job_id);
            }
            Frame::Ping(p) => self.send_frame(out, &Frame::Pong(Ping { nonce: p.nonce })),
            Frame::Response(_) => {
                let mut o = ExecutionOutcome::error(UNEXPECTED_RESPONSE_MESSAGE);
                o.job_id = "unknown".into();
                self.send_outcome(out, o);
            }
            // and an orchestrator never sends live frames: ignored like hello
            Frame::Hello(_) | Frame::Pong(_) | Frame::Progress(_) | Frame::Output(_) => {}
        }
    }

    fn accept_request(self: &Arc<Self>, conn: u64, out: &Arc<Outbox>, req: ExecutionRequest) {
        if req.protocol_version != PROTOCOL_VERSION {
            let o = ExecutionOutcome::error(UNSUPPORTED_VERSION_MESSAGE)
                .with_ids(req.job_id, req.request_id);
            self.send_outcome(out, o);
            return;
        }
        let (key, live) = {
            let mut t = self.lock();
            let count = t.per_conn.get(&conn).copied().unwrap_or(0);
            if count >= MAX_IN_FLIGHT {
                drop(t);
                let o = ExecutionOutcome::error(BUSY_MESSAGE).with_ids(req.job_id, req.request_id);
                self.send_outcome(out, o);
                return;
            }
            t.next_key += 1;
            let key = t.next_key;
            let live = LiveChannel::for_request(&req, out.clone(), self.handlers.clone());
            *t.per_conn.entry(conn).or_insert(0) += 1;
            t.entries.insert(
                key,
                Entry {
                    conn,
                    request_id: req.request_id.clone(),
                    job_id: req.job_id.clone(),
                    out: out.clone(),
                    abort: None,
                    span: RequestSpan::start(&req),
                    live: live.clone(),
                },
            );
            (key, live)
        };
        let ctx = JobContext::new(live, &req);
        let handle = self
            .handlers
            .spawn(run_request(self.clone(), key, req, ctx));
        let mut t = self.lock();
        match t.entries.get_mut(&key) {
            Some(e) => e.abort = Some(handle.abort_handle()),
            // Already answered (finished or cancelled from another connection before we
            // could record the handle): make sure the handler stops.
            None => handle.abort(),
        }
    }

    fn cancel(&self, request_id: Option<&str>, job_id: &str) {
        let removed: Vec<Entry> = {
            let mut t = self.lock();
            let keys: Vec<u64> = t
                .entries
                .iter()
                .filter(|(_, e)| match request_id {
                    Some(r) => e.request_id == r,
                    None => e.job_id == job_id,
                })
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter().filter_map(|k| t.remove(k)).collect()
        };
        for entry in removed {
            if let Some(a) = &entry.abort {
                a.abort();
            }
            let outcome = ExecutionOutcome::cancelled().with_ids(&entry.job_id, &entry.request_id);
            entry.close_live();
            entry.span.end(Some(&outcome));
            self.send_outcome(&entry.out, outcome);
        }
    }

    /// Queues a finished request's outcome; returns the outbox its caller must flush.
    fn complete(&self, key: u64, outcome: ExecutionOutcome) -> Option<Arc<Outbox>> {
        let entry = self.lock().remove(key)?;
        entry.close_live();
        entry.span.end(Some(&outcome));
        self.queue_outcome(&entry.out, outcome, true)
            .then_some(entry.out)
    }

    fn drop_connection(&self, conn: u64) {
        let removed: Vec<Entry> = {
            let mut t = self.lock();
            let keys: Vec<u64> = t
                .entries
                .iter()
                .filter(|(_, e)| e.conn == conn)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter().filter_map(|k| t.remove(k)).collect()
        };
        for entry in removed {
            if let Some(a) = &entry.abort {
                a.abort();
            }
            entry.discard_live();
            entry.span.end(None);
        }
    }

    fn abort_all(&self) {
        let removed: Vec<Entry> = {
            let mut t = self.lock();
            t.per_conn.clear();
            t.entries.drain().map(|(_, e)| e).collect()
        };
        for entry in removed {
            if let Some(a) = &entry.abort {
                a.abort();
            }
            entry.discard_live();
            entry.span.end(None);
        }
    }
}

async fn run_request(shared: Arc<Shared>, key: u64, req: ExecutionRequest, ctx: JobContext) {
    let job_id = req.job_id.clone();
    let request_id = req.request_id.clone();
    let outcome = execute(&shared, req, ctx).await;
    if let Some(out) = shared.complete(key, normalize(outcome, job_id, request_id)) {
        // Handlers finishing in this scheduler round queue their outcomes meanwhile: one write
        // carries them all. The write is made on drop: this task may be aborted while it
        // yields (a request answered before its abort handle was recorded is aborted).
        let _flush = FlushOnDrop(out);
        tokio::task::yield_now().await;
    }
}

/// Flushes an outbox when dropped (see [`run_request`]).
struct FlushOnDrop(Arc<Outbox>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.0.flush();
    }
}

async fn execute(shared: &Shared, req: ExecutionRequest, ctx: JobContext) -> ExecutionOutcome {
    let now = Utc::now();
    let deadline = match &req.context.deadline {
        None => None,
        Some(text) => match req.context.deadline_time() {
            Some(d) => Some(d),
            None => {
                log!(
                    "request {}: ignoring unparsable deadline {text:?}",
                    req.request_id
                );
                None
            }
        },
    };
    if let Some(d) = deadline {
        if d <= now {
            return ExecutionOutcome::timeout(Some(DEADLINE_EXCEEDED_MESSAGE));
        }
    }
    let Some(handler) = shared.registry.get_with_middleware(&req.function_name) else {
        return ExecutionOutcome::handler_not_found(&req.function_name);
    };
    #[cfg(feature = "contracts")]
    if let Some(outcome) = contract_failure(shared, &req) {
        return outcome;
    }
    // The context is current while the handler's closure (or the first middleware) runs and
    // while its future is polled, so also in every middleware and the handler.
    let fut = JobContext::sync_scope(ctx.clone(), || handler(req));
    let run = JobContext::scope(ctx, CatchUnwind::new(fut));
    let result = match deadline {
        None => run.await,
        Some(d) => {
            let remaining = (d - now).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                r = run => r,
                _ = tokio::time::sleep(remaining) => {
                    return ExecutionOutcome::timeout(Some(TIMEOUT_MESSAGE));
                }
            }
        }
    };
    result.unwrap_or_else(panic_outcome)
}

/// The `invalid_params` outcome when the catalog has a contract for the request's function
/// that its params break.
#[cfg(feature = "contracts")]
fn contract_failure(shared: &Shared, req: &ExecutionRequest) -> Option<ExecutionOutcome> {
    let catalog = shared.catalog.as_ref()?;
    if !catalog.contains(&req.function_name) {
        return None;
    }
    let params = Value::Object(req.params.clone());
    let problem = catalog.check_params(&req.function_name, &params)?;
    Some(ExecutionOutcome::error(problem.message).with_error_type(ERROR_TYPE_INVALID_PARAMS))
}

/// `error.type` of the outcome for params that break their job's contract.
pub const ERROR_TYPE_INVALID_PARAMS: &str = "invalid_params";

/// Fills the correlation ids and the default error of retry/timeout/error outcomes that came
/// without one.
fn normalize(mut o: ExecutionOutcome, job_id: String, request_id: String) -> ExecutionOutcome {
    o.job_id = job_id;
    o.request_id = Some(request_id);
    if o.error.is_none() {
        o.error = match o.status {
            OutcomeStatus::Success => None,
            OutcomeStatus::Retry => Some(OutcomeError::new(DEFAULT_RETRY_MESSAGE)),
            OutcomeStatus::Timeout => {
                Some(OutcomeError::new(TIMEOUT_MESSAGE).with_type(ERROR_TYPE_TIMEOUT))
            }
            OutcomeStatus::Error => Some(OutcomeError::new(UNHANDLED_ERROR_MESSAGE)),
        };
    }
    if o.status != OutcomeStatus::Success && o.result == Some(Value::Null) {
        o.result = None;
    }
    o
}
