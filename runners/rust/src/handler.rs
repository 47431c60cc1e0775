//! Handler registration and the conversion of what a handler returns into an outcome.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::Value;

use crate::handler_middleware::{self, middleware_fn, HandlerMiddleware, Next};
use crate::protocol::{
    check_snooze_seconds, ExecutionOutcome, ExecutionRequest, OutcomeError, OutcomeStatus,
    DEFAULT_RETRY_MESSAGE, ERROR_TYPE_NON_RETRYABLE, ERROR_TYPE_TIMEOUT, SNOOZE_MESSAGE,
    TIMEOUT_MESSAGE, UNHANDLED_ERROR_MESSAGE,
};
use crate::traceback;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Result type for handlers: any serializable value (or an [`ExecutionOutcome`]) or an error.
pub type HandlerResult<T = Value> = Result<T, HandlerError>;

/// What a handler fails with.
///
/// Any `std::error::Error + Send + Sync + 'static` converts into it (so `?` works): the outcome
/// is `error` with the error's `Display` as message and the last path segment of its type name
/// as `error.type` (e.g. `Error` for `std::io::Error`). `tokio::time::error::Elapsed` converts
/// to a `timeout` outcome. Use [`HandlerError::retry`] to ask for a retry,
/// [`HandlerError::non_retryable`] (or [`HandlerError::into_non_retryable`]) to fail the job
/// without a retry, and [`HandlerError::snooze`] to run it again later without counting the
/// attempt.
///
/// An error made by `?`, `.into()`, [`HandlerError::msg`] or [`HandlerError::typed`] carries an
/// `error.traceback`: the type and message, where it was made, its `source()` chain and a
/// captured backtrace (rules in [`crate::traceback`]).
pub struct HandlerError {
    kind: ErrorKind,
    message: String,
    error_type: Option<String>,
    code: Option<String>,
    details: Option<Value>,
    traceback: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ErrorKind {
    Error,
    Retry(Option<f64>),
    Snooze(f64),
    Timeout,
}

impl HandlerError {
    /// An error with a message, reported with `error.type = "Error"`.
    #[track_caller]
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::typed("Error", message)
    }

    /// An error with an explicit `error.type`.
    #[track_caller]
    pub fn typed(error_type: impl Into<String>, message: impl fmt::Display) -> Self {
        Self::with_sources(error_type.into(), message.to_string(), None)
    }

    #[track_caller]
    fn with_sources(
        error_type: String,
        message: String,
        sources: Option<&(dyn std::error::Error + 'static)>,
    ) -> Self {
        let caller = std::panic::Location::caller();
        // A handler that returns `Err(e)` itself is converted in this file: no useful place.
        let at = (caller.file() != file!()).then_some(caller);
        let traceback = traceback::error_traceback(&error_type, &message, sources, at);
        HandlerError {
            kind: ErrorKind::Error,
            message,
            error_type: Some(error_type),
            code: None,
            details: None,
            traceback: Some(traceback),
        }
    }

    /// Ask for a retry (outcome `retry`), optionally after `after_seconds`.
    pub fn retry(message: Option<&str>, after_seconds: Option<f64>) -> Self {
        HandlerError {
            kind: ErrorKind::Retry(after_seconds),
            message: message.unwrap_or(DEFAULT_RETRY_MESSAGE).to_string(),
            error_type: None,
            code: None,
            details: None,
            traceback: None,
        }
    }

    /// A permanent failure: `error.type = "non_retryable"`, so rrqkit's orchestrator moves the
    /// job to the DLQ after this attempt, with `last_error` saying it was not retried (RRQ's
    /// orchestrator does not know the type and retries it like any error). The traceback is
    /// that of [`HandlerError::typed`]: `non_retryable: <message>` and where it was made.
    ///
    /// ```
    /// # use rrqkit::{HandlerError, HandlerResult};
    /// fn charge(card: &str) -> HandlerResult<()> {
    ///     if card.len() != 16 {
    ///         return Err(HandlerError::non_retryable("card number is invalid"));
    ///     }
    ///     Ok(())
    /// }
    /// ```
    #[track_caller]
    pub fn non_retryable(message: impl fmt::Display) -> Self {
        Self::typed(ERROR_TYPE_NON_RETRYABLE, message)
    }

    /// This error as a permanent failure (`error.type = "non_retryable"`), keeping its
    /// message and traceback, e.g. `parse(&raw).map_err(|e| HandlerError::from(e).into_non_retryable())?`.
    pub fn into_non_retryable(mut self) -> Self {
        self.kind = ErrorKind::Error;
        self.error_type = Some(ERROR_TYPE_NON_RETRYABLE.into());
        self
    }

    /// A snooze: run the job again after `seconds` without counting this attempt (outcome
    /// `retry` with `snooze: true`, as [`ExecutionOutcome::snooze`]).
    ///
    /// # Panics
    ///
    /// When `seconds` is negative, NaN or infinite.
    #[track_caller]
    pub fn snooze(seconds: f64) -> Self {
        check_snooze_seconds(seconds);
        HandlerError {
            kind: ErrorKind::Snooze(seconds),
            message: SNOOZE_MESSAGE.to_string(),
            error_type: None,
            code: None,
            details: None,
            traceback: None,
        }
    }

    /// The language-level timeout error: outcome `timeout`, type `timeout`.
    pub fn timeout(message: Option<&str>) -> Self {
        HandlerError {
            kind: ErrorKind::Timeout,
            message: message.unwrap_or(TIMEOUT_MESSAGE).to_string(),
            error_type: Some(ERROR_TYPE_TIMEOUT.into()),
            code: None,
            details: None,
            traceback: None,
        }
    }

    /// From a boxed error (type name `Error`, since the concrete type is erased).
    #[track_caller]
    pub fn from_boxed(err: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self::with_sources("Error".into(), err.to_string(), err.source())
    }

    /// Adds `error.code`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Adds `error.details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The reported `error.type`.
    pub fn error_type(&self) -> Option<&str> {
        self.error_type.as_deref()
    }

    /// The `error.traceback` this error will report, if any.
    pub fn traceback(&self) -> Option<&str> {
        self.traceback.as_deref()
    }

    /// Replaces `error.traceback` (capped at 8 KiB; `None` sends none).
    pub fn with_traceback(mut self, traceback: Option<&str>) -> Self {
        self.traceback = traceback.map(traceback::cap_traceback);
        self
    }

    /// The outcome this error stands for.
    pub fn into_outcome(self) -> ExecutionOutcome {
        let message = if self.message.is_empty() {
            match self.kind {
                ErrorKind::Error => UNHANDLED_ERROR_MESSAGE.to_string(),
                ErrorKind::Retry(_) => DEFAULT_RETRY_MESSAGE.to_string(),
                ErrorKind::Snooze(_) => SNOOZE_MESSAGE.to_string(),
                ErrorKind::Timeout => TIMEOUT_MESSAGE.to_string(),
            }
        } else {
            self.message
        };
        let error = OutcomeError {
            message,
            error_type: self.error_type,
            code: self.code,
            details: self.details,
            traceback: self.traceback,
        };
        let (status, retry_after_seconds) = match self.kind {
            ErrorKind::Error => (OutcomeStatus::Error, None),
            ErrorKind::Retry(after) => (OutcomeStatus::Retry, after),
            ErrorKind::Snooze(after) => (OutcomeStatus::Retry, Some(after)),
            ErrorKind::Timeout => (OutcomeStatus::Timeout, None),
        };
        ExecutionOutcome {
            job_id: String::new(),
            request_id: None,
            status,
            result: None,
            error: Some(error),
            retry_after_seconds,
            snooze: matches!(self.kind, ErrorKind::Snooze(_)),
        }
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("error_type", &self.error_type)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E> From<E> for HandlerError
where
    E: std::error::Error + Send + Sync + 'static,
{
    #[track_caller]
    fn from(err: E) -> Self {
        if TypeId::of::<E>() == TypeId::of::<tokio::time::error::Elapsed>() {
            return HandlerError::timeout(None);
        }
        HandlerError::with_sources(short_type_name::<E>(), err.to_string(), err.source())
    }
}

/// `a::b::Name<c::D>` → `Name`.
pub fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    let short = base.rsplit("::").next().unwrap_or(base).trim();
    if short.is_empty() {
        "Error".to_string()
    } else {
        short.to_string()
    }
}

/// A successful handler value: an [`ExecutionOutcome`] (used as is) or any `Serialize` value
/// (becomes `success` with that result).
pub trait IntoOutcome {
    fn into_outcome(self) -> ExecutionOutcome;
}

impl IntoOutcome for ExecutionOutcome {
    fn into_outcome(self) -> ExecutionOutcome {
        self
    }
}

impl<T: serde::Serialize> IntoOutcome for T {
    fn into_outcome(self) -> ExecutionOutcome {
        ExecutionOutcome::success(self)
    }
}

/// What a handler future may resolve to: `Result<impl IntoOutcome, impl Into<HandlerError>>`
/// or a bare [`ExecutionOutcome`].
pub trait IntoHandlerOutcome {
    fn into_handler_outcome(self) -> ExecutionOutcome;
}

impl IntoHandlerOutcome for ExecutionOutcome {
    fn into_handler_outcome(self) -> ExecutionOutcome {
        self
    }
}

impl<R, E> IntoHandlerOutcome for Result<R, E>
where
    R: IntoOutcome,
    E: Into<HandlerError>,
{
    fn into_handler_outcome(self) -> ExecutionOutcome {
        match self {
            Ok(v) => v.into_outcome(),
            Err(e) => e.into().into_outcome(),
        }
    }
}

/// A type-erased handler.
pub type HandlerFn = Arc<dyn Fn(ExecutionRequest) -> BoxFuture<ExecutionOutcome> + Send + Sync>;

/// Handlers by function name, and the middleware around them. A later registration
/// replaces an earlier one.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, HandlerFn>,
    middleware: Arc<Vec<HandlerMiddleware>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an async handler under `name`.
    ///
    /// ```no_run
    /// # use rrqkit::{Registry, HandlerError};
    /// let mut registry = Registry::new();
    /// registry.register("echo", |req| async move { Ok::<_, HandlerError>(req.params) });
    /// ```
    pub fn register<F, Fut>(&mut self, name: impl Into<String>, handler: F) -> &mut Self
    where
        F: Fn(ExecutionRequest) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoHandlerOutcome,
    {
        let f: HandlerFn = Arc::new(move |req: ExecutionRequest| {
            let fut = handler(req);
            Box::pin(async move { fut.await.into_handler_outcome() }) as BoxFuture<_>
        });
        self.handlers.insert(name.into(), f);
        self
    }

    /// Registers a handler of a generated params type ([`crate::contracts::JobContract`])
    /// under `P::NAME`. The params are deserialized into `P` first: when they do not fit, the
    /// outcome is an `error` of type `invalid_params` naming the serde error and the handler is
    /// not called. The handler's `P::Result` is serialized as the outcome's result.
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct ResizeImageParams { url: String, width: i64, height: i64 }
    /// # impl rrqkit::contracts::JobContract for ResizeImageParams {
    /// #     const NAME: &'static str = "resize_image";
    /// #     type Result = serde_json::Value;
    /// # }
    /// # use rrqkit::{Registry, HandlerError};
    /// let mut registry = Registry::new();
    /// registry.register_typed(|params: ResizeImageParams, _request| async move {
    ///     Ok::<_, HandlerError>(serde_json::json!({"pixels": params.width * params.height}))
    /// });
    /// ```
    #[cfg(feature = "contracts")]
    pub fn register_typed<P, F, Fut, E>(&mut self, handler: F) -> &mut Self
    where
        P: crate::contracts::JobContract + Send + 'static,
        F: Fn(P, ExecutionRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<P::Result, E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        let f: HandlerFn = Arc::new(move |req: ExecutionRequest| {
            let params = serde_json::from_value::<P>(Value::Object(req.params.clone()));
            match params {
                Ok(params) => {
                    let fut = handler(params, req);
                    Box::pin(async move { fut.await.into_handler_outcome() }) as BoxFuture<_>
                }
                Err(e) => {
                    let outcome = ExecutionOutcome::error(format!("{}: params {e}", P::NAME))
                        .with_error_type(crate::runtime::ERROR_TYPE_INVALID_PARAMS);
                    Box::pin(async move { outcome }) as BoxFuture<_>
                }
            }
        });
        self.handlers.insert(P::NAME.to_string(), f);
        self
    }

    /// Adds a middleware around every handler (first registered = outermost; see
    /// [`crate::handler_middleware`]). Its future resolves to anything a handler's may: the
    /// [`ExecutionOutcome`] `next` returned, a value, or an error.
    ///
    /// ```no_run
    /// # use rrqkit::{HandlerError, OutcomeStatus, Registry};
    /// let mut registry = Registry::new();
    /// registry.middleware(|request, next| async move {
    ///     let name = request.function_name.clone();
    ///     let started = std::time::Instant::now();
    ///     let outcome = next.run(request).await;
    ///     eprintln!("{name}: {:?} in {:?}", outcome.status, started.elapsed());
    ///     if outcome.status == OutcomeStatus::Error {
    ///         let message = outcome.error.map(|e| e.message).unwrap_or_default();
    ///         return Err(HandlerError::non_retryable(message));
    ///     }
    ///     Ok(outcome)
    /// });
    /// ```
    pub fn middleware<F, Fut>(&mut self, middleware: F) -> &mut Self
    where
        F: Fn(ExecutionRequest, Next) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoHandlerOutcome,
    {
        self.use_middleware(middleware_fn(middleware))
    }

    /// Adds an already boxed middleware (see [`Registry::middleware`]).
    pub fn use_middleware(&mut self, middleware: HandlerMiddleware) -> &mut Self {
        Arc::make_mut(&mut self.middleware).push(middleware);
        self
    }

    /// The handler registered under `name` wrapped in the middleware: what the runtime calls
    /// (after its `handler_not_found` and contract checks). [`Registry::get`] is the bare
    /// handler.
    pub fn get_with_middleware(&self, name: &str) -> Option<HandlerFn> {
        let handler = self.handlers.get(name)?.clone();
        Some(handler_middleware::wrap(&self.middleware, handler))
    }

    /// Removes a handler.
    pub fn unregister(&mut self, name: &str) -> bool {
        self.handlers.remove(name).is_some()
    }

    /// The handler registered under `name`.
    pub fn get(&self, name: &str) -> Option<HandlerFn> {
        self.handlers.get(name).cloned()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.handlers.keys().cloned().collect();
        v.sort();
        v
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("handlers", &self.names())
            .field("middleware", &self.middleware.len())
            .finish()
    }
}

/// Polls a future, turning a panic into `Err(message)`.
pub(crate) struct CatchUnwind<F> {
    inner: Pin<Box<F>>,
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(inner: F) -> Self {
        traceback::install_panic_hook(); // so a caught panic's location is known
        CatchUnwind {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(traceback::panic_message(payload.as_ref()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(short_type_name::<std::io::Error>(), "Error");
        assert_eq!(
            short_type_name::<std::num::ParseIntError>(),
            "ParseIntError"
        );
        assert_eq!(short_type_name::<Vec<std::io::Error>>(), "Vec");
    }

    #[test]
    fn conversions() {
        let o = Err::<Value, _>(std::io::Error::other("disk")).into_handler_outcome();
        assert_eq!(o.status, OutcomeStatus::Error);
        let e = o.error.unwrap();
        assert_eq!(e.message, "disk");
        assert_eq!(e.error_type.as_deref(), Some("Error"));
        let o = Ok::<_, HandlerError>(serde_json::json!({"a": 1})).into_handler_outcome();
        assert_eq!(o.status, OutcomeStatus::Success);
        let o = Ok::<_, HandlerError>(ExecutionOutcome::timeout(None)).into_handler_outcome();
        assert_eq!(o.status, OutcomeStatus::Timeout);
        let o = Err::<(), _>(HandlerError::msg("")).into_handler_outcome();
        assert_eq!(o.error.unwrap().message, UNHANDLED_ERROR_MESSAGE);
    }

    #[test]
    fn returned_err_has_type_line_without_a_place() {
        let o = Err::<Value, _>(std::io::Error::other("disk")).into_handler_outcome();
        let tb = o.error.unwrap().traceback.unwrap();
        assert!(tb.starts_with("Error: disk"), "{tb}");
        assert!(!tb.contains("\n  at "), "{tb}"); // backtrace lines are indented further
        assert!(HandlerError::retry(None, None).traceback().is_none());
        assert!(HandlerError::timeout(None).traceback().is_none());
    }

    #[test]
    fn non_retryable_and_snooze() {
        let o = Err::<Value, _>(HandlerError::non_retryable("bad card")).into_handler_outcome();
        assert_eq!(o.status, OutcomeStatus::Error);
        let e = o.error.unwrap();
        assert_eq!(e.message, "bad card");
        assert_eq!(e.error_type.as_deref(), Some(ERROR_TYPE_NON_RETRYABLE));
        let tb = e.traceback.unwrap();
        // (The `at` line is tested in tests/traceback.rs: made in this file, it is left out.)
        assert!(tb.starts_with("non_retryable: bad card"), "{tb}");
        assert!(!o.snooze);

        let o = HandlerError::from(std::io::Error::other("disk"))
            .into_non_retryable()
            .into_outcome();
        let e = o.error.unwrap();
        assert_eq!(e.error_type.as_deref(), Some(ERROR_TYPE_NON_RETRYABLE));
        assert!(e.traceback.unwrap().starts_with("Error: disk"));

        let o = Err::<Value, _>(HandlerError::snooze(1.5)).into_handler_outcome();
        assert_eq!(o, ExecutionOutcome::snooze(1.5));
        assert_eq!(o.status, OutcomeStatus::Retry);
        assert_eq!(o.retry_after_seconds, Some(1.5));
        assert!(o.snooze);
        let e = o.error.unwrap();
        assert_eq!(e.message, SNOOZE_MESSAGE);
        assert_eq!(e.error_type, None);
        assert_eq!(e.traceback, None);
    }

    #[test]
    fn invalid_snooze_seconds_panic() {
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let r = std::panic::catch_unwind(|| HandlerError::snooze(bad));
            assert!(r.is_err(), "{bad}");
            let r = std::panic::catch_unwind(|| ExecutionOutcome::snooze(bad));
            assert!(r.is_err(), "{bad}");
        }
        assert_eq!(ExecutionOutcome::snooze(0.0).retry_after_seconds, Some(0.0));
    }

    #[test]
    fn caught_panic_traceback_names_message_and_place() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let line = line!() + 1;
        let run = CatchUnwind::new(async { panic!("wheels fell off") });
        let message = rt.block_on(run).unwrap_err();
        assert_eq!(message, "wheels fell off");
        let tb = traceback::take_panic_traceback(&message);
        let expected = format!("panicked at {}:{line}:", file!());
        assert!(tb.starts_with(&expected), "{tb}");
        assert!(tb.contains("\nwheels fell off"), "{tb}");
    }
}
