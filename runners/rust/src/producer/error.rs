//! The producer error and its codes (PRODUCER.md §6).

use std::fmt;

/// Stable error codes shared by every rrqkit producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProducerErrorCode {
    InvalidArgument,
    InvalidParams,
    PayloadTooLarge,
    ConflictingOptions,
    DuplicateJobId,
    RateLimited,
    /// A producer middleware's before-hook refused the job ([`ProducerError::vetoed`]).
    EnqueueVetoed,
    ConfigNotFound,
    InvalidConfig,
    RedisError,
    /// No connection to Redis came up within the connect timeout (refused, unreachable, or
    /// no reply to the handshake).
    RedisUnavailable,
}

impl ProducerErrorCode {
    /// The code string, e.g. `invalid_argument`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProducerErrorCode::InvalidArgument => "invalid_argument",
            ProducerErrorCode::InvalidParams => "invalid_params",
            ProducerErrorCode::PayloadTooLarge => "payload_too_large",
            ProducerErrorCode::ConflictingOptions => "conflicting_options",
            ProducerErrorCode::DuplicateJobId => "duplicate_job_id",
            ProducerErrorCode::RateLimited => "rate_limited",
            ProducerErrorCode::EnqueueVetoed => "enqueue_vetoed",
            ProducerErrorCode::ConfigNotFound => "config_not_found",
            ProducerErrorCode::InvalidConfig => "invalid_config",
            ProducerErrorCode::RedisError => "redis_error",
            ProducerErrorCode::RedisUnavailable => "redis_unavailable",
        }
    }
}

impl fmt::Display for ProducerErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure of the producer: a [`ProducerErrorCode`] and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProducerError {
    kind: ProducerErrorCode,
    message: String,
    written_ids: Vec<String>,
    function_name: Option<String>,
    field: Option<String>,
}

impl ProducerError {
    pub fn new(kind: ProducerErrorCode, message: impl Into<String>) -> Self {
        ProducerError {
            kind,
            message: message.into(),
            written_ids: Vec::new(),
            function_name: None,
            field: None,
        }
    }

    /// A veto, for a producer middleware's before-hook to return: code `enqueue_vetoed`. The
    /// producer returns it with the function name, message `enqueue of <fn> vetoed: <reason>`
    /// ([`ProducerError::function_name`], [`ProducerError::reason`]); nothing is written.
    ///
    /// ```
    /// let e = rrqkit::ProducerError::vetoed("tenant is frozen");
    /// assert_eq!(e.code(), "enqueue_vetoed");
    /// assert_eq!(e.reason(), Some("tenant is frozen"));
    /// ```
    pub fn vetoed(reason: impl Into<String>) -> Self {
        Self::new(
            ProducerErrorCode::EnqueueVetoed,
            format!("enqueue vetoed: {}", reason.into()),
        )
    }

    /// The veto of `function_name`'s enqueue (what the producer returns).
    pub(crate) fn vetoed_named(function_name: &str, reason: &str) -> Self {
        let mut err = Self::new(
            ProducerErrorCode::EnqueueVetoed,
            format!("enqueue of {function_name} vetoed: {reason}"),
        );
        err.function_name = Some(function_name.to_string());
        err
    }

    /// For `enqueue_vetoed`: the reason the middleware gave; `None` for every other error.
    pub fn reason(&self) -> Option<&str> {
        if self.kind != ProducerErrorCode::EnqueueVetoed {
            return None;
        }
        // Not a field of its own: it would make every producer `Result` bigger.
        let prefix = match &self.function_name {
            Some(f) => format!("enqueue of {f} vetoed: "),
            None => "enqueue vetoed: ".to_string(),
        };
        self.message.strip_prefix(&prefix)
    }

    /// `invalid_params` for params that break their job's contract: the message, function name
    /// and field of the problem the catalog found.
    #[cfg(feature = "contracts")]
    pub fn from_problem(problem: crate::contracts::ParamsProblem) -> Self {
        let mut err = Self::new(ProducerErrorCode::InvalidParams, problem.message);
        err.function_name = Some(problem.function_name);
        err.field = Some(problem.field);
        err
    }

    /// For `invalid_params` from a job contract: the function whose contract the params break;
    /// for `enqueue_vetoed`: the function whose enqueue was refused.
    pub fn function_name(&self) -> Option<&str> {
        self.function_name.as_deref()
    }

    /// For `invalid_params` from a job contract: a JSON Pointer into the params of the first
    /// failing location (`/to`, `/items/0/qty`, `""` for the params object itself); `None` for
    /// every other error.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The same error with `prefix` before its message (`items[3]: ` for a bulk item).
    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// For a failed `enqueue_many`: exactly the jobs that were written (the whole chunks of
    /// `BULK_CHUNK_SIZE` before the failing one, in order); empty otherwise. The failing chunk
    /// and the ones after it wrote nothing, except that when the failing call's reply was lost
    /// (`redis_unavailable`) that chunk may have been written.
    pub fn written_ids(&self) -> &[String] {
        &self.written_ids
    }

    pub(crate) fn with_written_ids(mut self, ids: Vec<String>) -> Self {
        self.written_ids = ids;
        self
    }

    /// The code string of PRODUCER.md §6 (`invalid_argument`, `redis_error`, ...).
    pub fn code(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The code as an enum.
    pub fn kind(&self) -> ProducerErrorCode {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ProducerErrorCode::InvalidArgument, message)
    }

    pub(crate) fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ProducerErrorCode::InvalidConfig, message)
    }

    /// A Redis failure, with any password in `secret_dsn` removed from the message.
    pub(crate) fn redis(err: &redis::RedisError, secret_dsn: &str) -> Self {
        let message = hide_password(format!("redis error: {err}"), secret_dsn);
        Self::new(ProducerErrorCode::RedisError, message)
    }

    /// No connection came up: `redis_unavailable`, naming the DSN without its password.
    pub(crate) fn unavailable(reason: &str, secret_dsn: &str, timeout_seconds: f64) -> Self {
        let message = format!(
            "cannot connect to Redis at {}: {reason} (connect timeout {timeout_seconds} s; set \
             redis_connect_timeout_seconds in rrq.toml or RRQ_REDIS_CONNECT_TIMEOUT to change it)",
            redact_dsn(secret_dsn)
        );
        Self::new(
            ProducerErrorCode::RedisUnavailable,
            hide_password(message, secret_dsn),
        )
    }
}

fn hide_password(message: String, secret_dsn: &str) -> String {
    match dsn_password(secret_dsn) {
        Some(password) if !password.is_empty() => message.replace(&password, "***"),
        _ => message,
    }
}

/// The DSN with its user and password replaced by `***` (and any `password=`/`pass=` query
/// value), for messages.
pub fn redact_dsn(dsn: &str) -> String {
    let mut shown = dsn.to_string();
    if let Some((scheme, rest)) = dsn.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            shown = format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    for key in ["password=", "pass="] {
        if let Some(i) = shown.find(key) {
            let start = i + key.len();
            let end = shown[start..]
                .find('&')
                .map(|j| start + j)
                .unwrap_or(shown.len());
            shown.replace_range(start..end, "***");
        }
    }
    shown
}

/// The password part of a `redis://user:password@host` DSN, if any.
pub(crate) fn dsn_password(dsn: &str) -> Option<String> {
    let rest = dsn.split_once("://")?.1;
    let userinfo = rest.split('/').next()?.rsplit_once('@')?.0;
    Some(
        userinfo
            .split_once(':')
            .map(|(_, p)| p)
            .unwrap_or(userinfo)
            .to_string(),
    )
}
