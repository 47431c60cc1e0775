//! Typed frames of runner protocol v2 (schemas/v2).
//!
//! Reading is lenient where the protocol says so (absent = null, unknown fields ignored) and
//! strict about the schema's `required` and `type` rules, which yield `invalid_frame`.
//! Writing emits every field in schema order with `null` for none, except the rrqkit additions
//! `error.traceback` and the outcome's `snooze`, written only when set; a job-wide cancel omits
//! `request_id`.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::codec::{decode_body, DecodeError, DecodeErrorCode, EncodeError, Encoding};

/// The only protocol version: `"2"`.
pub const PROTOCOL_VERSION: &str = "2";

/// A string-to-string map that keeps insertion order (trace and correlation context).
pub type StringMap = IndexMap<String, String>;

/// `ExecutionContext`: what the orchestrator knows about the job and this attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionContext {
    pub job_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// RFC 3339, kept as received.
    pub enqueue_time: String,
    /// Full queue key, e.g. `rrq:queue:default`.
    pub queue_name: String,
    /// Absolute RFC 3339 deadline, kept as received.
    pub deadline: Option<String>,
    pub trace_context: Option<StringMap>,
    pub correlation_context: Option<StringMap>,
    pub worker_id: Option<String>,
}

impl ExecutionContext {
    /// `deadline` parsed as RFC 3339, `None` when absent or unparsable.
    pub fn deadline_time(&self) -> Option<DateTime<Utc>> {
        self.deadline.as_deref().and_then(parse_rfc3339)
    }

    /// `enqueue_time` parsed as RFC 3339.
    pub fn enqueue_time_parsed(&self) -> Option<DateTime<Utc>> {
        parse_rfc3339(&self.enqueue_time)
    }

    /// All eight fields in schema order, absent ones as `null`.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("job_id".into(), Value::String(self.job_id.clone()));
        m.insert("attempt".into(), Value::from(self.attempt));
        m.insert(
            "enqueue_time".into(),
            Value::String(self.enqueue_time.clone()),
        );
        m.insert("queue_name".into(), Value::String(self.queue_name.clone()));
        m.insert("deadline".into(), opt_str(&self.deadline));
        m.insert("trace_context".into(), opt_map(&self.trace_context));
        m.insert(
            "correlation_context".into(),
            opt_map(&self.correlation_context),
        );
        m.insert("worker_id".into(), opt_str(&self.worker_id));
        Value::Object(m)
    }
}

/// `ExecutionRequest`: one attempt of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRequest {
    /// `"2"` when the frame omitted it.
    pub protocol_version: String,
    pub request_id: String,
    pub job_id: String,
    pub function_name: String,
    /// The job's params; `{}` when absent or null.
    pub params: Map<String, Value>,
    pub context: ExecutionContext,
    /// rrqkit addition (§13.1): the live frames this request may send (`None`: none). Written only
    /// when set, so a request without it is byte-for-byte RRQ's.
    pub live: Option<LiveOptions>,
}

impl ExecutionRequest {
    /// The payload in schema order.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "protocol_version".into(),
            Value::String(self.protocol_version.clone()),
        );
        m.insert("request_id".into(), Value::String(self.request_id.clone()));
        m.insert("job_id".into(), Value::String(self.job_id.clone()));
        m.insert(
            "function_name".into(),
            Value::String(self.function_name.clone()),
        );
        m.insert("params".into(), Value::Object(self.params.clone()));
        m.insert("context".into(), self.context.to_value());
        if let Some(live) = &self.live {
            m.insert("live".into(), live.to_value());
        }
        Value::Object(m)
    }

    /// A param by name.
    pub fn param(&self, name: &str) -> Option<&Value> {
        self.params.get(name)
    }
}

/// `live.progress_interval_ms` when a request leaves it out (§13.1).
pub const DEFAULT_PROGRESS_INTERVAL_MS: u64 = 200;
/// `live.output_max_bytes` when a request leaves it out (§13.1): 8 MiB.
pub const DEFAULT_OUTPUT_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// A request's `live` (rrqkit addition, RUNNER_PROTOCOL.md §13.1): which live frames its handler
/// may send. The orchestrator sets it only on a connection whose hello listed the features.
/// Absent or null limits read as their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOptions {
    /// `progress` frames may be sent.
    pub progress: bool,
    /// `output` frames may be sent.
    pub output: bool,
    /// At most one `progress` frame per this many milliseconds (the latest value wins; 0: no
    /// coalescing).
    pub progress_interval_ms: u64,
    /// Output data bytes the request may send; beyond them data is dropped (one truncated frame).
    pub output_max_bytes: u64,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            progress: false,
            output: false,
            progress_interval_ms: DEFAULT_PROGRESS_INTERVAL_MS,
            output_max_bytes: DEFAULT_OUTPUT_MAX_BYTES,
        }
    }
}

impl LiveOptions {
    /// The four fields in schema order.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("progress".into(), Value::Bool(self.progress));
        m.insert("output".into(), Value::Bool(self.output));
        m.insert(
            "progress_interval_ms".into(),
            Value::from(self.progress_interval_ms),
        );
        m.insert(
            "output_max_bytes".into(),
            Value::from(self.output_max_bytes),
        );
        Value::Object(m)
    }
}

/// Hello tags: at most this many.
pub const MAX_TAGS: usize = 32;
/// A progress message: at most this many characters.
pub const MAX_PROGRESS_MESSAGE_CHARS: usize = 1024;
/// A progress detail: at most this many bytes of compact JSON.
pub const MAX_PROGRESS_DETAIL_BYTES: usize = 4096;
/// An output frame's data: at most this many bytes of UTF-8.
pub const MAX_OUTPUT_DATA_BYTES: usize = 65536;

/// True for a valid capability tag: 1..64 characters of `A-Z a-z 0-9 _ . : / = -`.
pub fn is_valid_tag(tag: &str) -> bool {
    (1..=64).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/=-".contains(&b))
}

/// `tags` checked, deduplicated and sorted; `Err` names the first invalid tag, or too many.
pub fn normalize_tags<I, S>(tags: I) -> Result<Vec<String>, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.into();
        if !is_valid_tag(&tag) {
            return Err(format!(
                "invalid tag {tag:?}: 1-64 characters of A-Z a-z 0-9 _ . : / = - expected"
            ));
        }
        out.push(tag);
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_TAGS {
        return Err(format!(
            "{} tags: at most {MAX_TAGS} are allowed",
            out.len()
        ));
    }
    Ok(out)
}

/// `progress` frame payload (rrqkit addition, §13.2; runner → orchestrator). Readers do not check
/// the size of `detail`: writers refuse one over 4096 bytes of JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    pub job_id: String,
    pub request_id: String,
    /// Fraction done, 0 to 1; `None`: unknown (only the message or detail changed).
    pub progress: Option<f64>,
    pub message: Option<String>,
    pub detail: Option<Value>,
}

impl ProgressUpdate {
    /// The payload in schema order, every field present.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("job_id".into(), Value::String(self.job_id.clone()));
        m.insert("request_id".into(), Value::String(self.request_id.clone()));
        m.insert(
            "progress".into(),
            match self.progress {
                Some(f) => seconds_value(f),
                None => Value::Null,
            },
        );
        m.insert("message".into(), opt_str(&self.message));
        m.insert("detail".into(), self.detail.clone().unwrap_or(Value::Null));
        Value::Object(m)
    }
}

/// Which stream an `output` frame's data came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Written by the handler (`ctx.output().write(..)`).
    Handler,
    /// The runner's stdout while the request ran.
    Stdout,
    /// The runner's stderr while the request ran.
    Stderr,
}

impl OutputStream {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Handler => "handler",
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }

    pub fn parse(s: &str) -> Option<OutputStream> {
        Some(match s {
            "handler" => OutputStream::Handler,
            "stdout" => OutputStream::Stdout,
            "stderr" => OutputStream::Stderr,
            _ => return None,
        })
    }
}

/// `output` frame payload (rrqkit addition, §13.3; runner → orchestrator). `seq` counts a request's
/// output frames from 0; the one frame with `truncated` says `dropped_bytes` bytes were dropped
/// at the request's `output_max_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    pub job_id: String,
    pub request_id: String,
    pub seq: u64,
    pub stream: OutputStream,
    pub data: String,
    pub truncated: bool,
    pub dropped_bytes: u64,
}

impl OutputChunk {
    /// The payload in schema order, every field present.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("job_id".into(), Value::String(self.job_id.clone()));
        m.insert("request_id".into(), Value::String(self.request_id.clone()));
        m.insert("seq".into(), Value::from(self.seq));
        m.insert("stream".into(), Value::String(self.stream.as_str().into()));
        m.insert("data".into(), Value::String(self.data.clone()));
        m.insert("truncated".into(), Value::Bool(self.truncated));
        m.insert("dropped_bytes".into(), Value::from(self.dropped_bytes));
        Value::Object(m)
    }
}

/// Outcome status (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeStatus {
    Success,
    Retry,
    Timeout,
    Error,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Success => "success",
            OutcomeStatus::Retry => "retry",
            OutcomeStatus::Timeout => "timeout",
            OutcomeStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<OutcomeStatus> {
        Some(match s {
            "success" => OutcomeStatus::Success,
            "retry" => OutcomeStatus::Retry,
            "timeout" => OutcomeStatus::Timeout,
            "error" => OutcomeStatus::Error,
            _ => return None,
        })
    }
}

/// `OutcomeError`: why an attempt did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeError {
    pub message: String,
    /// Open set; reserved: `handler_not_found`, `cancelled`, `timeout`, `non_retryable`.
    pub error_type: Option<String>,
    pub code: Option<String>,
    pub details: Option<Value>,
    /// rrqkit addition: the error's traceback, at most 8 KiB of UTF-8 (§7.1 and
    /// [`crate::traceback`]); written only when present.
    pub traceback: Option<String>,
}

impl OutcomeError {
    /// An error with a message and nothing else.
    pub fn new(message: impl Into<String>) -> Self {
        OutcomeError {
            message: message.into(),
            error_type: None,
            code: None,
            details: None,
            traceback: None,
        }
    }

    /// Same error with `type` set.
    pub fn with_type(mut self, error_type: impl Into<String>) -> Self {
        self.error_type = Some(error_type.into());
        self
    }

    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("message".into(), Value::String(self.message.clone()));
        m.insert("type".into(), opt_str(&self.error_type));
        m.insert("code".into(), opt_str(&self.code));
        m.insert(
            "details".into(),
            self.details.clone().unwrap_or(Value::Null),
        );
        // Only when present, so an outcome without one is byte-for-byte RRQ's.
        if let Some(traceback) = &self.traceback {
            m.insert("traceback".into(), Value::String(traceback.clone()));
        }
        Value::Object(m)
    }
}

/// Error type reported when no handler is registered.
pub const ERROR_TYPE_HANDLER_NOT_FOUND: &str = "handler_not_found";
/// Error type of a cancelled request.
pub const ERROR_TYPE_CANCELLED: &str = "cancelled";
/// Error type of a timeout.
pub const ERROR_TYPE_TIMEOUT: &str = "timeout";
/// Error type of a permanent failure (rrqkit addition, RUNNER_PROTOCOL.md §7): rrqkit's
/// orchestrator moves the job to the DLQ without a retry; RRQ's retries it like any error.
pub const ERROR_TYPE_NON_RETRYABLE: &str = "non_retryable";

/// `ExecutionOutcome`: the one reply to a request.
///
/// Build one with the constructors ([`ExecutionOutcome::success`], [`ExecutionOutcome::retry`],
/// ...). `job_id` and `request_id` may be left empty: the runtime fills them in from the
/// request it answers.
///
/// This type deliberately does not implement `serde::Serialize`, so that a handler may return
/// either an outcome or any serializable value; use [`ExecutionOutcome::to_value`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionOutcome {
    pub job_id: String,
    pub request_id: Option<String>,
    pub status: OutcomeStatus,
    pub result: Option<Value>,
    pub error: Option<OutcomeError>,
    pub retry_after_seconds: Option<f64>,
    /// rrqkit addition (RUNNER_PROTOCOL.md §7.2): a `retry` that is a snooze (the attempt is
    /// not counted). Written only when true, so other outcomes stay byte-for-byte RRQ's.
    pub snooze: bool,
}

impl ExecutionOutcome {
    fn bare(status: OutcomeStatus) -> Self {
        ExecutionOutcome {
            job_id: String::new(),
            request_id: None,
            status,
            result: None,
            error: None,
            retry_after_seconds: None,
            snooze: false,
        }
    }

    /// `success` with `result`. A value that cannot be serialized gives an `error` outcome
    /// (type `SerializationError`).
    pub fn success<T: serde::Serialize>(result: T) -> Self {
        match serde_json::to_value(result) {
            Ok(v) => {
                let mut o = Self::bare(OutcomeStatus::Success);
                o.result = Some(v);
                o
            }
            Err(e) => Self::error(format!("handler result is not serializable: {e}"))
                .with_error_type("SerializationError"),
        }
    }

    /// `retry`, after `retry_after_seconds` when given. `error.message` is `message`, or
    /// `Job requested retry` when none.
    pub fn retry(message: Option<&str>, retry_after_seconds: Option<f64>) -> Self {
        let mut o = Self::bare(OutcomeStatus::Retry);
        o.error = Some(OutcomeError::new(message.unwrap_or(DEFAULT_RETRY_MESSAGE)));
        o.retry_after_seconds = retry_after_seconds;
        o
    }

    /// A snooze: run the job again after `seconds` without counting this attempt (outcome
    /// `retry` with `snooze: true` and error message `Job snoozed`). rrqkit's orchestrator
    /// caps the snoozes of a job (`max_snoozes`); RRQ's treats it as an ordinary retry.
    ///
    /// ```
    /// # use rrqkit::ExecutionOutcome;
    /// let later = ExecutionOutcome::snooze(30.0);
    /// assert!(later.snooze);
    /// ```
    ///
    /// # Panics
    ///
    /// When `seconds` is negative, NaN or infinite (a bug at the call, like an invalid
    /// `Duration`); inside a handler the runtime reports the panic as an `error` outcome.
    #[track_caller]
    pub fn snooze(seconds: f64) -> Self {
        check_snooze_seconds(seconds);
        let mut o = Self::bare(OutcomeStatus::Retry);
        o.error = Some(OutcomeError::new(SNOOZE_MESSAGE));
        o.retry_after_seconds = Some(seconds);
        o.snooze = true;
        o
    }

    /// A permanent failure: `error` of type `non_retryable`, so rrqkit's orchestrator moves
    /// the job to the DLQ without a retry. (A returned outcome carries no traceback; use
    /// [`crate::HandlerError::non_retryable`] for one.)
    pub fn non_retryable(message: impl Into<String>) -> Self {
        Self::error(message).with_error_type(ERROR_TYPE_NON_RETRYABLE)
    }

    /// `timeout` with error type `timeout`; message defaults to `Job execution timed out`.
    pub fn timeout(message: Option<&str>) -> Self {
        let mut o = Self::bare(OutcomeStatus::Timeout);
        o.error = Some(
            OutcomeError::new(message.unwrap_or(TIMEOUT_MESSAGE)).with_type(ERROR_TYPE_TIMEOUT),
        );
        o
    }

    /// `error` with a message and no type.
    pub fn error(message: impl Into<String>) -> Self {
        let mut o = Self::bare(OutcomeStatus::Error);
        o.error = Some(OutcomeError::new(message));
        o
    }

    /// `error` of type `handler_not_found` for `function_name`.
    pub fn handler_not_found(function_name: &str) -> Self {
        Self::error(format!(
            "No handler registered for function '{function_name}'"
        ))
        .with_error_type(ERROR_TYPE_HANDLER_NOT_FOUND)
    }

    /// `error` of type `cancelled` (what the runtime sends for a cancelled request).
    pub fn cancelled() -> Self {
        Self::error(CANCELLED_MESSAGE).with_error_type(ERROR_TYPE_CANCELLED)
    }

    /// Sets `error.type` (creating an error with an empty message if there is none).
    pub fn with_error_type(mut self, error_type: impl Into<String>) -> Self {
        self.error
            .get_or_insert_with(|| OutcomeError::new(""))
            .error_type = Some(error_type.into());
        self
    }

    /// Sets `error.code`.
    pub fn with_error_code(mut self, code: impl Into<String>) -> Self {
        self.error.get_or_insert_with(|| OutcomeError::new("")).code = Some(code.into());
        self
    }

    /// Sets `error.details`.
    pub fn with_error_details(mut self, details: Value) -> Self {
        self.error
            .get_or_insert_with(|| OutcomeError::new(""))
            .details = Some(details);
        self
    }

    /// Sets the correlation ids.
    pub fn with_ids(mut self, job_id: impl Into<String>, request_id: impl Into<String>) -> Self {
        self.job_id = job_id.into();
        self.request_id = Some(request_id.into());
        self
    }

    /// The payload in schema order, every field present.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("job_id".into(), Value::String(self.job_id.clone()));
        m.insert("request_id".into(), opt_str(&self.request_id));
        m.insert(
            "status".into(),
            Value::String(self.status.as_str().to_string()),
        );
        m.insert("result".into(), self.result.clone().unwrap_or(Value::Null));
        m.insert(
            "error".into(),
            self.error
                .as_ref()
                .map(OutcomeError::to_value)
                .unwrap_or(Value::Null),
        );
        m.insert(
            "retry_after_seconds".into(),
            match self.retry_after_seconds {
                Some(f) => seconds_value(f),
                None => Value::Null,
            },
        );
        // Last and only when true (schema), so an ordinary outcome is byte-for-byte RRQ's.
        if self.snooze {
            m.insert("snooze".into(), Value::Bool(true));
        }
        Value::Object(m)
    }
}

/// A number of seconds as JSON: integral values as integers (`30`, as the Node and Python
/// runtimes write them, not `30.0`), NaN and infinities as `null`.
pub(crate) fn seconds_value(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Panics unless `seconds` is a finite number ≥ 0 (see [`ExecutionOutcome::snooze`]).
#[track_caller]
pub(crate) fn check_snooze_seconds(seconds: f64) {
    assert!(
        seconds.is_finite() && seconds >= 0.0,
        "snooze seconds must be a finite number >= 0, got {seconds}"
    );
}

/// `Job requested retry`.
pub const DEFAULT_RETRY_MESSAGE: &str = "Job requested retry";
/// `Job snoozed` (the error message of a snooze).
pub const SNOOZE_MESSAGE: &str = "Job snoozed";
/// `Job execution timed out`.
pub const TIMEOUT_MESSAGE: &str = "Job execution timed out";
/// `Job deadline exceeded`.
pub const DEADLINE_EXCEEDED_MESSAGE: &str = "Job deadline exceeded";
/// `Job cancelled`.
pub const CANCELLED_MESSAGE: &str = "Job cancelled";
/// `Runner busy: too many in-flight requests`.
pub const BUSY_MESSAGE: &str = "Runner busy: too many in-flight requests";
/// `Unsupported protocol version`.
pub const UNSUPPORTED_VERSION_MESSAGE: &str = "Unsupported protocol version";
/// `Unexpected response message`.
pub const UNEXPECTED_RESPONSE_MESSAGE: &str = "Unexpected response message";
/// `Unhandled handler error`.
pub const UNHANDLED_ERROR_MESSAGE: &str = "Unhandled handler error";

/// `CancelRequest`.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelRequest {
    /// `"2"` when absent.
    pub protocol_version: String,
    pub job_id: String,
    /// `None`: cancel every in-flight request of `job_id`.
    pub request_id: Option<String>,
    pub hard_kill: bool,
}

impl CancelRequest {
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "protocol_version".into(),
            Value::String(self.protocol_version.clone()),
        );
        m.insert("job_id".into(), Value::String(self.job_id.clone()));
        if let Some(r) = &self.request_id {
            m.insert("request_id".into(), Value::String(r.clone()));
        }
        m.insert("hard_kill".into(), Value::Bool(self.hard_kill));
        Value::Object(m)
    }
}

/// `Hello` (rrqkit extension).
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub protocol_version: String,
    pub runtime: String,
    pub runtime_version: Option<String>,
    pub pid: Option<i64>,
    pub max_in_flight: Option<u64>,
    pub features: Vec<String>,
    /// Capability tags, sorted and unique; empty: none (then not written).
    pub tags: Vec<String>,
}

impl Hello {
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "protocol_version".into(),
            Value::String(self.protocol_version.clone()),
        );
        m.insert("runtime".into(), Value::String(self.runtime.clone()));
        m.insert("runtime_version".into(), opt_str(&self.runtime_version));
        m.insert(
            "pid".into(),
            self.pid.map(Value::from).unwrap_or(Value::Null),
        );
        m.insert(
            "max_in_flight".into(),
            self.max_in_flight.map(Value::from).unwrap_or(Value::Null),
        );
        m.insert(
            "features".into(),
            Value::Array(self.features.iter().cloned().map(Value::String).collect()),
        );
        if !self.tags.is_empty() {
            m.insert(
                "tags".into(),
                Value::Array(self.tags.iter().cloned().map(Value::String).collect()),
            );
        }
        Value::Object(m)
    }
}

/// `Ping` payload, also used by `pong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub nonce: String,
}

impl Ping {
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("nonce".into(), Value::String(self.nonce.clone()));
        Value::Object(m)
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Request(ExecutionRequest),
    Response(ExecutionOutcome),
    Cancel(CancelRequest),
    Hello(Hello),
    Ping(Ping),
    Pong(Ping),
    /// rrqkit addition, runner → orchestrator.
    Progress(ProgressUpdate),
    /// rrqkit addition, runner → orchestrator.
    Output(OutputChunk),
}

impl Frame {
    /// The envelope `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Frame::Request(_) => "request",
            Frame::Response(_) => "response",
            Frame::Cancel(_) => "cancel",
            Frame::Hello(_) => "hello",
            Frame::Ping(_) => "ping",
            Frame::Pong(_) => "pong",
            Frame::Progress(_) => "progress",
            Frame::Output(_) => "output",
        }
    }

    /// The envelope `{type, payload}` as a value.
    pub fn to_value(&self) -> Value {
        let payload = match self {
            Frame::Request(r) => r.to_value(),
            Frame::Response(o) => o.to_value(),
            Frame::Cancel(c) => c.to_value(),
            Frame::Hello(h) => h.to_value(),
            Frame::Ping(p) | Frame::Pong(p) => p.to_value(),
            Frame::Progress(p) => p.to_value(),
            Frame::Output(o) => o.to_value(),
        };
        let mut m = Map::new();
        m.insert("type".into(), Value::String(self.type_name().into()));
        m.insert("payload".into(), payload);
        Value::Object(m)
    }

    /// Checks the envelope and payload of a decoded body.
    pub fn from_value(value: Value) -> Result<Frame, DecodeError> {
        let Value::Object(mut env) = value else {
            return Err(envelope_err("body is not a map"));
        };
        let frame_type = match env.remove("type") {
            Some(Value::String(s)) => s,
            Some(_) => return Err(envelope_err("type is not a string")),
            None => return Err(envelope_err("type is missing")),
        };
        let payload = match env.remove("payload") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(envelope_err("payload is not a map")),
            None => return Err(envelope_err("payload is missing")),
        };
        match frame_type.as_str() {
            "request" => parse_request(payload).map(Frame::Request),
            "response" => parse_outcome(&payload).map(Frame::Response),
            "cancel" => parse_cancel(&payload).map(Frame::Cancel),
            "hello" => parse_hello(&payload).map(Frame::Hello),
            "ping" => parse_ping(&payload).map(Frame::Ping),
            "pong" => parse_ping(&payload).map(Frame::Pong),
            "progress" => parse_progress(&payload).map(Frame::Progress),
            "output" => parse_output(&payload).map(Frame::Output),
            other => Err(DecodeError::new(
                DecodeErrorCode::UnknownFrameType,
                format!("unknown frame type '{other}'"),
            )),
        }
    }

    /// Decodes one frame body.
    pub fn decode(body: &[u8], encoding: Encoding) -> Result<Frame, DecodeError> {
        Frame::from_value(decode_body(body, encoding)?)
    }

    /// Encodes the frame with its length prefix; refuses frames over 16 MiB.
    pub fn encode(&self, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out, encoding)?;
        Ok(out)
    }

    /// Appends the frame with its length prefix to `out` (left as it was on error); refuses
    /// frames over 16 MiB. A response is written without building a value tree first.
    pub fn encode_into(&self, out: &mut Vec<u8>, encoding: Encoding) -> Result<(), EncodeError> {
        crate::frame_writer::write_frame(out, self, encoding)
    }
}

fn envelope_err(msg: &str) -> DecodeError {
    DecodeError::new(DecodeErrorCode::InvalidEnvelope, msg)
}

fn frame_err(msg: String) -> DecodeError {
    DecodeError::new(DecodeErrorCode::InvalidFrame, msg)
}

fn opt_str(s: &Option<String>) -> Value {
    match s {
        Some(s) => Value::String(s.clone()),
        None => Value::Null,
    }
}

fn opt_map(m: &Option<StringMap>) -> Value {
    match m {
        Some(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
        None => Value::Null,
    }
}

/// Parses RFC 3339 (any offset) into UTC.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn req_string(m: &Map<String, Value>, key: &str, what: &str) -> Result<String, DecodeError> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(frame_err(format!("{what}.{key} is not a string"))),
        None => Err(frame_err(format!("{what}.{key} is missing"))),
    }
}

fn opt_string(
    m: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<String>, DecodeError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(frame_err(format!("{what}.{key} is not a string"))),
    }
}

/// An integer in the JSON Schema sense (an integral number, even if written as a float).
fn as_integer(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Some(u as i128)
            } else if let Some(i) = n.as_i64() {
                Some(i as i128)
            } else {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 1e30).then_some(f as i128)
            }
        }
        _ => None,
    }
}

/// A context timestamp must parse as RFC 3339: anything else is `invalid_frame`
/// (RUNNER_PROTOCOL.md §10.6, §11), never a silently missing deadline.
fn timestamp(value: String, key: &str) -> Result<String, DecodeError> {
    match parse_rfc3339(&value) {
        Some(_) => Ok(value),
        None => Err(frame_err(format!(
            "context.{key} is not an RFC 3339 timestamp"
        ))),
    }
}

// A request's fields are moved out of its decoded payload (no clone of params or strings): it
// is the one frame every job brings. The checks and their order are those of the other frames.

fn take_string(m: &mut Map<String, Value>, key: &str, what: &str) -> Result<String, DecodeError> {
    match m.remove(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(frame_err(format!("{what}.{key} is not a string"))),
        None => Err(frame_err(format!("{what}.{key} is missing"))),
    }
}

fn take_opt_string(
    m: &mut Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<String>, DecodeError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(frame_err(format!("{what}.{key} is not a string"))),
    }
}

fn take_opt_string_map(
    m: &mut Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<StringMap>, DecodeError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => {
            let mut out = StringMap::with_capacity(o.len());
            for (k, v) in o {
                match v {
                    Value::String(s) => {
                        out.insert(k, s);
                    }
                    _ => {
                        return Err(frame_err(format!("{what}.{key}.{k} is not a string")));
                    }
                }
            }
            Ok(Some(out))
        }
        Some(_) => Err(frame_err(format!("{what}.{key} is not a map"))),
    }
}

fn parse_request(mut p: Map<String, Value>) -> Result<ExecutionRequest, DecodeError> {
    let what = "request";
    let protocol_version = take_opt_string(&mut p, "protocol_version", what)?
        .unwrap_or_else(|| PROTOCOL_VERSION.to_string());
    let request_id = take_string(&mut p, "request_id", what)?;
    if request_id.is_empty() {
        return Err(frame_err("request.request_id is empty".into()));
    }
    let job_id = take_string(&mut p, "job_id", what)?;
    if job_id.is_empty() {
        return Err(frame_err("request.job_id is empty".into()));
    }
    let function_name = take_string(&mut p, "function_name", what)?;
    let params = match p.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(frame_err("request.params is not a map".into())),
    };
    let mut ctx = match p.remove("context") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(frame_err("request.context is not a map".into())),
        None => return Err(frame_err("request.context is missing".into())),
    };
    let what = "context";
    let attempt = match ctx.get("attempt") {
        None => return Err(frame_err("context.attempt is missing".into())),
        Some(v) => match as_integer(v) {
            Some(n) if (0..=u32::MAX as i128).contains(&n) => n as u32,
            Some(_) => return Err(frame_err("context.attempt is out of range".into())),
            None => return Err(frame_err("context.attempt is not an integer".into())),
        },
    };
    let context = ExecutionContext {
        job_id: take_string(&mut ctx, "job_id", what)?,
        attempt,
        enqueue_time: timestamp(take_string(&mut ctx, "enqueue_time", what)?, "enqueue_time")?,
        queue_name: take_string(&mut ctx, "queue_name", what)?,
        deadline: take_opt_string(&mut ctx, "deadline", what)?
            .map(|d| timestamp(d, "deadline"))
            .transpose()?,
        trace_context: take_opt_string_map(&mut ctx, "trace_context", what)?,
        correlation_context: take_opt_string_map(&mut ctx, "correlation_context", what)?,
        worker_id: take_opt_string(&mut ctx, "worker_id", what)?,
    };
    let live = match p.get("live") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(parse_live(m)?),
        Some(_) => return Err(frame_err("request.live is not a map".into())),
    };
    Ok(ExecutionRequest {
        protocol_version,
        request_id,
        job_id,
        function_name,
        params,
        context,
        live,
    })
}

fn opt_bool(m: &Map<String, Value>, key: &str, what: &str) -> Result<bool, DecodeError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(frame_err(format!("{what}.{key} is not a boolean"))),
    }
}

fn opt_count(m: &Map<String, Value>, key: &str, what: &str) -> Result<Option<u64>, DecodeError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match as_integer(v) {
            Some(n) if (0..=u64::MAX as i128).contains(&n) => Ok(Some(n as u64)),
            _ => Err(frame_err(format!("{what}.{key} is not an integer >= 0"))),
        },
    }
}

fn parse_live(m: &Map<String, Value>) -> Result<LiveOptions, DecodeError> {
    let what = "request.live";
    Ok(LiveOptions {
        progress: opt_bool(m, "progress", what)?,
        output: opt_bool(m, "output", what)?,
        progress_interval_ms: opt_count(m, "progress_interval_ms", what)?
            .unwrap_or(DEFAULT_PROGRESS_INTERVAL_MS),
        output_max_bytes: opt_count(m, "output_max_bytes", what)?
            .unwrap_or(DEFAULT_OUTPUT_MAX_BYTES),
    })
}

/// Bytes of `value` as compact JSON (what the 4096-byte detail cap measures).
pub fn detail_bytes(value: &Value) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

fn req_id(p: &Map<String, Value>, what: &str) -> Result<String, DecodeError> {
    let id = req_string(p, "request_id", what)?;
    if id.is_empty() {
        return Err(frame_err(format!("{what}.request_id is empty")));
    }
    Ok(id)
}

fn parse_progress(p: &Map<String, Value>) -> Result<ProgressUpdate, DecodeError> {
    let what = "progress";
    let progress = match p.get("progress") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if (0.0..=1.0).contains(&f) => Some(f),
            _ => return Err(frame_err("progress.progress is not from 0 to 1".into())),
        },
        Some(_) => return Err(frame_err("progress.progress is not a number".into())),
    };
    let message = opt_string(p, "message", what)?;
    if message
        .as_ref()
        .is_some_and(|m| m.chars().count() > MAX_PROGRESS_MESSAGE_CHARS)
    {
        return Err(frame_err(format!(
            "progress.message is longer than {MAX_PROGRESS_MESSAGE_CHARS} characters"
        )));
    }
    // Readers leave the detail's size to writers (schema).
    let detail = match p.get("detail") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    Ok(ProgressUpdate {
        job_id: req_string(p, "job_id", what)?,
        request_id: req_id(p, what)?,
        progress,
        message,
        detail,
    })
}

fn parse_output(p: &Map<String, Value>) -> Result<OutputChunk, DecodeError> {
    let what = "output";
    let seq = match p.get("seq") {
        None | Some(Value::Null) => return Err(frame_err("output.seq is missing".into())),
        Some(_) => opt_count(p, "seq", what)?.unwrap_or_default(),
    };
    let stream_text = req_string(p, "stream", what)?;
    let stream = OutputStream::parse(&stream_text)
        .ok_or_else(|| frame_err(format!("output.stream '{stream_text}' is not a stream")))?;
    let data = req_string(p, "data", what)?;
    if data.len() > MAX_OUTPUT_DATA_BYTES {
        return Err(frame_err(format!(
            "output.data is larger than {MAX_OUTPUT_DATA_BYTES} bytes"
        )));
    }
    Ok(OutputChunk {
        job_id: req_string(p, "job_id", what)?,
        request_id: req_id(p, what)?,
        seq,
        stream,
        data,
        truncated: opt_bool(p, "truncated", what)?,
        dropped_bytes: opt_count(p, "dropped_bytes", what)?.unwrap_or_default(),
    })
}

fn parse_outcome(p: &Map<String, Value>) -> Result<ExecutionOutcome, DecodeError> {
    let what = "response";
    let job_id = req_string(p, "job_id", what)?;
    let request_id = match p.get("request_id") {
        None => return Err(frame_err("response.request_id is missing".into())),
        Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(frame_err("response.request_id is not a string".into())),
    };
    let status_text = req_string(p, "status", what)?;
    let status = OutcomeStatus::parse(&status_text)
        .ok_or_else(|| frame_err(format!("response.status '{status_text}' is not a status")))?;
    let result = match p.get("result") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    let error = match p.get("error") {
        None | Some(Value::Null) => None,
        Some(Value::Object(e)) => Some(OutcomeError {
            message: req_string(e, "message", "error")?,
            error_type: opt_string(e, "type", "error")?,
            code: opt_string(e, "code", "error")?,
            details: match e.get("details") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.clone()),
            },
            traceback: opt_string(e, "traceback", "error")?,
        }),
        Some(_) => return Err(frame_err("response.error is not a map".into())),
    };
    let retry_after_seconds = match p.get("retry_after_seconds") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => {
            return Err(frame_err(
                "response.retry_after_seconds is not a number".into(),
            ))
        }
    };
    let snooze = match p.get("snooze") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(frame_err("response.snooze is not a boolean".into())),
    };
    Ok(ExecutionOutcome {
        job_id,
        request_id,
        status,
        result,
        error,
        retry_after_seconds,
        snooze,
    })
}

fn parse_cancel(p: &Map<String, Value>) -> Result<CancelRequest, DecodeError> {
    let what = "cancel";
    Ok(CancelRequest {
        protocol_version: opt_string(p, "protocol_version", what)?
            .unwrap_or_else(|| PROTOCOL_VERSION.to_string()),
        job_id: req_string(p, "job_id", what)?,
        request_id: opt_string(p, "request_id", what)?,
        hard_kill: match p.get("hard_kill") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(frame_err("cancel.hard_kill is not a boolean".into())),
        },
    })
}

fn parse_hello(p: &Map<String, Value>) -> Result<Hello, DecodeError> {
    let what = "hello";
    let pid = match p.get("pid") {
        None | Some(Value::Null) => None,
        Some(v) => match as_integer(v) {
            Some(n) => Some(n as i64),
            None => return Err(frame_err("hello.pid is not an integer".into())),
        },
    };
    let max_in_flight = match p.get("max_in_flight") {
        None | Some(Value::Null) => None,
        Some(v) => match as_integer(v) {
            Some(n) if n >= 1 => Some(n as u64),
            _ => {
                return Err(frame_err(
                    "hello.max_in_flight is not a positive integer".into(),
                ))
            }
        },
    };
    let features = match p.get("features") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(frame_err("hello.features holds a non-string".into())),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(frame_err("hello.features is not an array".into())),
        None => return Err(frame_err("hello.features is missing".into())),
    };
    let tags = match p.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_TAGS => items
            .iter()
            .map(|v| match v {
                Value::String(s) if is_valid_tag(s) => Ok(s.clone()),
                _ => Err(frame_err("hello.tags holds an invalid tag".into())),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(frame_err(format!(
                "hello.tags is not an array of at most {MAX_TAGS} tags"
            )))
        }
    };
    let distinct: std::collections::HashSet<&String> = tags.iter().collect();
    if distinct.len() != tags.len() {
        return Err(frame_err("hello.tags repeats a tag".into()));
    }
    Ok(Hello {
        protocol_version: req_string(p, "protocol_version", what)?,
        runtime: req_string(p, "runtime", what)?,
        runtime_version: opt_string(p, "runtime_version", what)?,
        pid,
        max_in_flight,
        features,
        tags,
    })
}

fn parse_ping(p: &Map<String, Value>) -> Result<Ping, DecodeError> {
    Ok(Ping {
        nonce: req_string(p, "nonce", "ping")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(extra: Value) -> Value {
        let mut payload = json!({"job_id": "j", "request_id": "r", "status": "retry",
            "result": null, "error": null, "retry_after_seconds": 1});
        payload
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"type": "response", "payload": payload})
    }

    #[test]
    fn snooze_field_is_read_and_written_only_when_true() {
        let Frame::Response(o) = Frame::from_value(response(json!({"snooze": true}))).unwrap()
        else {
            panic!("not a response")
        };
        assert!(o.snooze);
        assert_eq!(o.to_value()["snooze"], true);
        for absent in [json!({}), json!({"snooze": null}), json!({"snooze": false})] {
            let Frame::Response(o) = Frame::from_value(response(absent)).unwrap() else {
                panic!("not a response")
            };
            assert!(!o.snooze);
            assert!(o.to_value().get("snooze").is_none());
        }
        let err = Frame::from_value(response(json!({"snooze": "yes"}))).unwrap_err();
        assert_eq!(err.code(), crate::codec::DecodeErrorCode::InvalidFrame);
    }

    #[test]
    fn integral_seconds_are_written_as_integers() {
        let o = ExecutionOutcome::snooze(30.0).to_value();
        assert_eq!(
            serde_json::to_string(&o["retry_after_seconds"]).unwrap(),
            "30"
        );
        let o = ExecutionOutcome::retry(None, Some(2.5)).to_value();
        assert_eq!(
            serde_json::to_string(&o["retry_after_seconds"]).unwrap(),
            "2.5"
        );
        let o = ExecutionOutcome::retry(None, Some(f64::NAN)).to_value();
        assert_eq!(o["retry_after_seconds"], Value::Null);
    }
}
