//! Live jobs, handler side: progress and streamed output.
//!
//! Inside a handler, [`JobContext::current`] is the running request's context:
//!
//! ```no_run
//! use rrqkit::{HandlerError, JobContext, Runner};
//! use serde_json::json;
//!
//! let mut runner = Runner::new();
//! runner.register("resize", |req| async move {
//!     let ctx = JobContext::current();
//!     let images = req.params["images"].as_array().cloned().unwrap_or_default();
//!     for (i, image) in images.iter().enumerate() {
//!         ctx.progress(i as f64 / images.len() as f64)
//!             .message(format!("image {} of {}", i + 1, images.len()));
//!         ctx.output().write(format!("resized {image}\n"));
//!     }
//!     ctx.output().json(&json!({"done": images.len()}))?;
//!     Ok::<_, HandlerError>(json!({"resized": images.len()}))
//! });
//! ```
//!
//! The calls never fail a job for being unwanted: for a request whose `live` does not enable
//! a feature (an RRQ orchestrator, an old rrqkit one, a job nobody watches) they do nothing, and
//! so does the context outside a handler. A `JobContext` is `Clone + Send + Sync`: clone it into
//! tasks or threads the handler starts (`tokio::spawn` and `spawn_blocking` do not inherit it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::outbox::Outbox;
use crate::protocol::{
    detail_bytes, ExecutionRequest, Frame, LiveOptions, OutputChunk, OutputStream, ProgressUpdate,
    MAX_OUTPUT_DATA_BYTES, MAX_PROGRESS_DETAIL_BYTES, MAX_PROGRESS_MESSAGE_CHARS,
};

tokio::task_local! {
    static CURRENT: JobContext;
}

/// The live frames of one request on one connection (runtime side).
///
/// Output writes are joined until a flush task runs (or 64 KiB are pending) into frames of at
/// most 64 KiB; progress is coalesced per `progress_interval_ms`. Every frame is encoded and
/// queued on the connection's writer under one lock, and [`LiveChannel::close`] runs right
/// before the outcome is queued on the same writer, so all live frames of a request precede
/// its `response` (RUNNER_PROTOCOL.md §13.4).
pub(crate) struct LiveChannel {
    job_id: String,
    request_id: String,
    progress_enabled: bool,
    output_enabled: bool,
    interval: Duration,
    out: Arc<Outbox>,
    tasks: tokio::runtime::Handle,
    state: Mutex<State>,
}

struct State {
    closed: bool,
    last_progress: Option<Instant>,
    pending_progress: Option<ProgressUpdate>,
    timer: Option<AbortHandle>,
    pending_output: String,
    flush_scheduled: bool,
    seq: u64,
    budget: u64,
    dropped: u64,
}

impl LiveChannel {
    /// A channel when `req.live` enables a feature, else `None`. `tasks` runs the timers.
    pub(crate) fn for_request(
        req: &ExecutionRequest,
        out: Arc<Outbox>,
        tasks: tokio::runtime::Handle,
    ) -> Option<Arc<LiveChannel>> {
        let live: &LiveOptions = req.live.as_ref()?;
        if !live.progress && !live.output {
            return None;
        }
        Some(Arc::new(LiveChannel {
            job_id: req.job_id.clone(),
            request_id: req.request_id.clone(),
            progress_enabled: live.progress,
            output_enabled: live.output,
            interval: Duration::from_millis(live.progress_interval_ms),
            out,
            tasks,
            state: Mutex::new(State {
                closed: false,
                last_progress: None,
                pending_progress: None,
                timer: None,
                pending_output: String::new(),
                flush_scheduled: false,
                seq: 0,
                budget: live.output_max_bytes,
                dropped: 0,
            }),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame (call with the state locked, which keeps frames in call order).
    fn queue(&self, frame: Frame) {
        match self.out.send(&frame) {
            Ok(()) => {}
            // A live frame that cannot be encoded is lost, never the request.
            Err(e) => eprintln!(
                "[rrqkit-rust] request {}: {} frame not sent: {e}",
                self.request_id,
                frame.type_name()
            ),
        }
    }

    fn progress(self: &Arc<Self>, update: ProgressUpdate) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let now = Instant::now();
        match state.last_progress {
            Some(last) if now.duration_since(last) < self.interval => {
                // Too soon: keep only the latest; it goes out when the interval is over.
                state.pending_progress = Some(update);
                if state.timer.is_none() {
                    let channel = Arc::clone(self);
                    let at = last + self.interval;
                    let timer = self.tasks.spawn(async move {
                        tokio::time::sleep_until(at).await;
                        channel.flush_progress();
                    });
                    state.timer = Some(timer.abort_handle());
                }
            }
            _ => self.send_progress(&mut state, update),
        }
    }

    fn send_progress(&self, state: &mut State, update: ProgressUpdate) {
        // Output written before this report goes first, so frames keep the handler's call order.
        self.flush_output_locked(state);
        state.last_progress = Some(Instant::now());
        self.queue(Frame::Progress(update));
    }

    fn flush_progress(&self) {
        let mut state = self.lock();
        state.timer = None;
        if state.closed {
            return;
        }
        if let Some(update) = state.pending_progress.take() {
            self.send_progress(&mut state, update);
        }
    }

    fn output(self: &Arc<Self>, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.pending_output.push_str(text);
        if state.pending_output.len() >= MAX_OUTPUT_DATA_BYTES {
            self.flush_output_locked(&mut state);
        } else if !state.flush_scheduled {
            // Writes made until the flush task runs share frames.
            state.flush_scheduled = true;
            let channel = Arc::clone(self);
            self.tasks.spawn(async move {
                let mut state = channel.lock();
                state.flush_scheduled = false;
                channel.flush_output_locked(&mut state);
            });
        }
    }

    fn flush_output_locked(&self, state: &mut State) {
        if state.closed || state.pending_output.is_empty() {
            return;
        }
        let text = std::mem::take(&mut state.pending_output);
        if state.dropped > 0 {
            state.dropped += text.len() as u64;
            return;
        }
        let budget = usize::try_from(state.budget).unwrap_or(usize::MAX);
        let (mut kept, dropped) = split_at_char(&text, budget);
        state.budget -= kept.len() as u64;
        state.dropped += dropped.len() as u64;
        while !kept.is_empty() {
            let (chunk, rest) = split_at_char(kept, MAX_OUTPUT_DATA_BYTES);
            self.queue_chunk(state, chunk.to_string(), false);
            kept = rest;
        }
    }

    fn queue_chunk(&self, state: &mut State, data: String, truncated: bool) {
        let chunk = OutputChunk {
            job_id: self.job_id.clone(),
            request_id: self.request_id.clone(),
            seq: state.seq,
            stream: OutputStream::Handler,
            data,
            truncated,
            dropped_bytes: if truncated { state.dropped } else { 0 },
        };
        state.seq += 1;
        self.queue(Frame::Output(chunk));
    }

    /// Queues what is still due (pending output, the latest coalesced progress, the truncation
    /// marker) and stops the channel; call right before queueing the outcome. Later calls do
    /// nothing.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        self.flush_output_locked(&mut state);
        if let Some(update) = state.pending_progress.take() {
            self.queue(Frame::Progress(update));
        }
        if state.dropped > 0 {
            // One marker, at the end, so that dropped_bytes counts everything dropped.
            self.queue_chunk(&mut state, String::new(), true);
        }
        state.closed = true;
    }

    /// The connection is gone: send nothing more.
    pub(crate) fn discard(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.pending_progress = None;
        state.pending_output.clear();
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
    }
}

/// `text` cut after at most `limit` bytes, on a character boundary.
fn split_at_char(text: &str, limit: usize) -> (&str, &str) {
    if text.len() <= limit {
        return (text, "");
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.split_at(end)
}

/// What a handler can tell the orchestrator while it runs (see the [module docs](self)).
///
/// Cheap to clone; every clone talks about the same request.
#[derive(Clone, Default)]
pub struct JobContext {
    channel: Option<Arc<LiveChannel>>,
    job_id: Option<String>,
    request_id: Option<String>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job_id", &self.job_id)
            .field("request_id", &self.request_id)
            .field("progress_enabled", &self.progress_enabled())
            .field("output_enabled", &self.output_enabled())
            .finish()
    }
}

impl JobContext {
    pub(crate) fn new(channel: Option<Arc<LiveChannel>>, req: &ExecutionRequest) -> Self {
        JobContext {
            channel,
            job_id: Some(req.job_id.clone()),
            request_id: Some(req.request_id.clone()),
        }
    }

    /// The running request's context: inside a handler's task (and what the handler's closure
    /// runs before its future). Elsewhere a context that does nothing.
    pub fn current() -> JobContext {
        CURRENT.try_with(Clone::clone).unwrap_or_default()
    }

    /// Runs `f` with `ctx` current (what the runtime does around a handler call).
    pub(crate) fn sync_scope<R>(ctx: JobContext, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(ctx, f)
    }

    /// Runs `fut` with `ctx` current.
    pub(crate) async fn scope<F: std::future::Future>(ctx: JobContext, fut: F) -> F::Output {
        CURRENT.scope(ctx, fut).await
    }

    /// The job this context belongs to (`None` outside a handler).
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// The request this context belongs to (`None` outside a handler).
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// True when progress updates of this request reach the orchestrator.
    pub fn progress_enabled(&self) -> bool {
        self.channel.as_ref().is_some_and(|c| c.progress_enabled)
    }

    /// True when output of this request reaches the orchestrator.
    pub fn output_enabled(&self) -> bool {
        self.channel.as_ref().is_some_and(|c| c.output_enabled)
    }

    /// Reports progress: `value` from 0 to 1 (clamped; `None` or a non-finite number: unknown).
    /// Add a message or detail on the returned builder; the update is sent when the builder is
    /// dropped, i.e. at the end of the statement:
    ///
    /// ```no_run
    /// # let ctx = rrqkit::JobContext::current();
    /// ctx.progress(0.5).message("halfway");
    /// ctx.progress(None).message("waiting for the upstream");
    /// ctx.progress(1.0).detail(serde_json::json!({"rows": 1200}));
    /// ```
    ///
    /// Updates are coalesced: at most one per the request's `progress_interval_ms` leaves the
    /// runner, the latest wins, and the last is always sent before the job's outcome.
    pub fn progress(&self, value: impl Into<Option<f64>>) -> Progress<'_> {
        let value = value
            .into()
            .filter(|v| v.is_finite())
            .map(|v| v.clamp(0.0, 1.0));
        Progress {
            ctx: self,
            value,
            message: None,
            detail: None,
        }
    }

    /// The request's output stream.
    pub fn output(&self) -> Output<'_> {
        Output { ctx: self }
    }
}

/// A progress update being built; sent when dropped (see [`JobContext::progress`]).
pub struct Progress<'a> {
    ctx: &'a JobContext,
    value: Option<f64>,
    message: Option<String>,
    detail: Option<Value>,
}

impl Progress<'_> {
    /// A message (cut to 1024 characters).
    pub fn message(mut self, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some((at, _)) = message.char_indices().nth(MAX_PROGRESS_MESSAGE_CHARS) {
            message.truncate(at);
        }
        self.message = Some(message);
        self
    }

    /// A JSON detail (at most 4096 bytes as compact JSON, else left out with a log line).
    pub fn detail(mut self, detail: Value) -> Self {
        if detail_bytes(&detail) > MAX_PROGRESS_DETAIL_BYTES {
            eprintln!(
                "[rrqkit-rust] request {}: progress detail over {MAX_PROGRESS_DETAIL_BYTES} bytes left out",
                self.ctx.request_id.as_deref().unwrap_or("-")
            );
            self.detail = None;
        } else if !detail.is_null() {
            self.detail = Some(detail);
        }
        self
    }

    /// Sends now (same as dropping the builder).
    pub fn send(self) {}
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        let Some(channel) = &self.ctx.channel else {
            return;
        };
        if !channel.progress_enabled {
            return;
        }
        channel.progress(ProgressUpdate {
            job_id: channel.job_id.clone(),
            request_id: channel.request_id.clone(),
            progress: self.value,
            message: self.message.take(),
            detail: self.detail.take(),
        });
    }
}

/// `ctx.output()`: text (or JSON lines) streamed to whoever tails the job.
pub struct Output<'a> {
    ctx: &'a JobContext,
}

impl Output<'_> {
    /// Appends `text` as is (add your own newlines). Writes in quick succession may share a
    /// frame; data beyond the request's `output_max_bytes` is dropped and the orchestrator is
    /// told how much.
    pub fn write(&self, text: impl AsRef<str>) {
        if let Some(channel) = &self.ctx.channel {
            if channel.output_enabled {
                channel.output(text.as_ref());
            }
        }
    }

    /// Appends `value` as one line of compact JSON. Fails when `value` cannot be serialized
    /// (also when output is off, so a bug shows in every test).
    pub fn json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), serde_json::Error> {
        let mut line = serde_json::to_string(value)?;
        line.push('\n');
        self.write(line);
        Ok(())
    }
}
