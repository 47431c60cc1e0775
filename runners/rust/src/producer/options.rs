//! Enqueue options, their validation (PRODUCER.md §6) and the write plan (§3–§4).

use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::config::ProducerConfig;
use super::error::{ProducerError, ProducerErrorCode};
use super::flow::{self, StartRate, FLOW_OPTION_NAMES};
use super::normalize_queue_name;
use super::retry::RetryPolicy;
use crate::canonical::{canonical_json, canonical_number, format_timestamp, parse_timestamp};
use crate::codec::{nests_deeper_than, MAX_PARAMS_DEPTH};

/// Largest encoded `job_params`: the 16 MiB frame cap minus 64 KiB.
pub const MAX_PARAMS_BYTES: usize = 16_711_680;

/// Options of one enqueue. Every field is optional; `None` takes the producer default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnqueueOptions {
    pub queue_name: Option<String>,
    pub job_id: Option<String>,
    /// Idempotency key (stored as `rrq:idempotency:<unique_key>`).
    pub unique_key: Option<String>,
    pub unique_ttl_seconds: Option<i64>,
    pub max_retries: Option<i64>,
    pub job_timeout_seconds: Option<i64>,
    pub result_ttl_seconds: Option<i64>,
    pub trace_context: Option<IndexMap<String, String>>,
    pub defer_until: Option<DateTime<Utc>>,
    pub defer_by_seconds: Option<f64>,
    /// Overrides "now" (mainly for tests and replays).
    pub enqueue_time: Option<DateTime<Utc>>,
    pub rate_limit_key: Option<String>,
    pub rate_limit_seconds: Option<f64>,
    pub debounce_key: Option<String>,
    pub debounce_seconds: Option<f64>,
    /// The job's retry policy, stored as the hash field `retry_policy` (canonical JSON);
    /// `max_attempts` is also written as `max_retries`, so RRQ's orchestrator applies the same
    /// count. Giving `max_retries` too, with a different value, is an error.
    pub retry: Option<RetryPolicy>,
    /// Run the job only if it starts by then: later it ends `FAILED` without running (hash
    /// field `expires_at`; truncated to microseconds). Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// [`EnqueueOptions::expires_at`] as seconds (> 0) after the enqueue time, by this
    /// producer's clock. Not together with `expires_at`.
    pub expires_in: Option<f64>,
    /// Flow control: jobs with the same key share a concurrency cap and a start rate
    /// (1..=256 characters; hash field `concurrency_key`).
    pub concurrency_key: Option<String>,
    /// At most this many jobs of the key run at once (1..=100000); needs `concurrency_key` or
    /// `limit`.
    pub concurrency_limit: Option<i64>,
    /// Starts per period for the key (smooth); needs `concurrency_key` or `limit`. Stored as
    /// `"<limit>/<period_ms>"`.
    pub start_rate: Option<StartRate>,
    /// Name of a `[rrq.limits.<name>]` table of rrq.toml (1..=128 of `A-Za-z0-9_.:-`; hash
    /// field `limit_name`).
    pub limit: Option<String>,
    /// A session: jobs of one key run one at a time, in enqueue order (1..=256 characters).
    pub ordering_key: Option<String>,
    /// Routing by capability (issue 23): tags the runner must offer; the job runs only on a
    /// runner process whose hello lists them all and waits, without an attempt, while none is
    /// connected. Each tag 1..=64 of `A-Za-z0-9_.:/=-`, at most 16; stored sorted and
    /// deduplicated as the JSON array `requires` (an empty list stores nothing).
    pub requires: Option<Vec<String>>,
}

/// One item of [`super::Producer::enqueue_many`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnqueueItem {
    pub function_name: String,
    pub params: Map<String, Value>,
    pub options: EnqueueOptions,
}

/// An integral JSON number as i64 (integral floats accepted, as in JavaScript).
pub(crate) fn json_integer(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None;
    }
    let f = n.as_f64()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

impl EnqueueOptions {
    /// Parses snake_case options from JSON (null = absent). Returns the options and
    /// `options.params` when present. Unknown names and wrong types are `invalid_argument`.
    pub fn from_json(value: &Value) -> Result<(EnqueueOptions, Option<Value>), ProducerError> {
        let map = match value {
            Value::Null => return Ok((EnqueueOptions::default(), None)),
            Value::Object(m) => m,
            _ => return Err(ProducerError::invalid_argument("options must be an object")),
        };
        let mut o = EnqueueOptions::default();
        let mut params = None;
        for (name, v) in map {
            if v.is_null() || FLOW_OPTION_NAMES.contains(&name.as_str()) {
                continue;
            }
            let s = |what: &str| -> Result<String, ProducerError> {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ProducerError::invalid_argument(format!("{what} must be a string"))
                })
            };
            let int = |msg: &str| -> Result<i64, ProducerError> {
                json_integer(v).ok_or_else(|| ProducerError::invalid_argument(msg))
            };
            let num = |msg: &str| -> Result<f64, ProducerError> {
                v.as_f64()
                    .ok_or_else(|| ProducerError::invalid_argument(msg))
            };
            let time = |what: &str| -> Result<DateTime<Utc>, ProducerError> {
                v.as_str().and_then(parse_timestamp).ok_or_else(|| {
                    ProducerError::invalid_argument(format!("{what} must be an RFC 3339 timestamp"))
                })
            };
            match name.as_str() {
                "params" => params = Some(v.clone()),
                "queue_name" => o.queue_name = Some(s("queue_name")?),
                "job_id" => o.job_id = Some(s("job_id")?),
                "unique_key" => o.unique_key = Some(s("unique_key")?),
                "rate_limit_key" => o.rate_limit_key = Some(s("rate_limit_key")?),
                "debounce_key" => o.debounce_key = Some(s("debounce_key")?),
                "unique_ttl_seconds" => {
                    o.unique_ttl_seconds = Some(int(MSG_UNIQUE_TTL)?);
                }
                "max_retries" => o.max_retries = Some(int(MSG_MAX_RETRIES)?),
                "job_timeout_seconds" => o.job_timeout_seconds = Some(int(MSG_JOB_TIMEOUT)?),
                "result_ttl_seconds" => o.result_ttl_seconds = Some(int(MSG_RESULT_TTL)?),
                "defer_by_seconds" => o.defer_by_seconds = Some(num(MSG_DEFER_BY)?),
                "rate_limit_seconds" => o.rate_limit_seconds = Some(num(MSG_RATE_SECONDS)?),
                "debounce_seconds" => o.debounce_seconds = Some(num(MSG_DEBOUNCE_SECONDS)?),
                "defer_until" => o.defer_until = Some(time("defer_until")?),
                "expires_at" => o.expires_at = Some(time("expires_at")?),
                "expires_in" => o.expires_in = Some(num(MSG_EXPIRES_IN)?),
                "retry" => o.retry = Some(RetryPolicy::from_json(v)?),
                "enqueue_time" => o.enqueue_time = Some(time("enqueue_time")?),
                "trace_context" => {
                    let Value::Object(m) = v else {
                        return Err(ProducerError::invalid_argument(MSG_TRACE));
                    };
                    let mut out = IndexMap::new();
                    for (k, val) in m {
                        let Value::String(sv) = val else {
                            return Err(ProducerError::invalid_argument(MSG_TRACE));
                        };
                        out.insert(k.clone(), sv.clone());
                    }
                    o.trace_context = Some(out);
                }
                other => {
                    return Err(ProducerError::invalid_argument(format!(
                        "unknown option '{other}'"
                    )))
                }
            }
        }
        // Flow control in the TS producer's order, so a call with several bad ones names the
        // same first one in every binding.
        for name in FLOW_OPTION_NAMES {
            if let Some(v) = map.get(name).filter(|v| !v.is_null()) {
                flow::set_from_json(&mut o, name, v)?;
            }
        }
        Ok((o, params))
    }

    fn has_rate_limit(&self) -> bool {
        self.rate_limit_key.is_some() || self.rate_limit_seconds.is_some()
    }

    fn has_debounce(&self) -> bool {
        self.debounce_key.is_some() || self.debounce_seconds.is_some()
    }
}

impl EnqueueItem {
    /// From `{function_name, params, options}` as the producer adapter receives it. `params`
    /// may also be given as `options.params`; absent or null means `{}`.
    pub fn from_json(value: &Value) -> Result<EnqueueItem, ProducerError> {
        let Value::Object(m) = value else {
            return Err(ProducerError::invalid_argument(
                "an enqueue item must be an object",
            ));
        };
        let function_name = match m.get("function_name") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(ProducerError::invalid_argument(
                    "function_name must be a string",
                ))
            }
        };
        let (options, option_params) =
            EnqueueOptions::from_json(m.get("options").unwrap_or(&Value::Null))?;
        let positional = m.get("params").filter(|v| !v.is_null());
        let params = match (positional, option_params.as_ref()) {
            (Some(a), Some(b)) if a != b => {
                return Err(ProducerError::invalid_argument(
                    "params given both as an argument and in options",
                ))
            }
            (Some(p), _) | (None, Some(p)) => p.clone(),
            (None, None) => Value::Object(Map::new()),
        };
        let Value::Object(params) = params else {
            return Err(ProducerError::new(
                ProducerErrorCode::InvalidParams,
                "params must be a JSON object",
            ));
        };
        Ok(EnqueueItem {
            function_name,
            params,
            options,
        })
    }
}

const MSG_MAX_RETRIES: &str = "max_retries must be a non-negative integer";
const MSG_JOB_TIMEOUT: &str = "job_timeout_seconds must be a positive integer";
const MSG_RESULT_TTL: &str = "result_ttl_seconds must be an integer";
const MSG_UNIQUE_TTL: &str = "unique_ttl_seconds must be a positive integer";
const MSG_DEFER_BY: &str = "defer_by_seconds must be a finite number >= 0";
const MSG_DEFER_BOTH: &str = "defer_until and defer_by_seconds are mutually exclusive; give one";
const MSG_RATE_SECONDS: &str = "rate_limit_seconds must be a finite number > 0";
const MSG_DEBOUNCE_SECONDS: &str = "debounce_seconds must be a finite number > 0";
const MSG_EXPIRES_IN: &str = "expires_in must be a finite number > 0";
const MSG_EXPIRES_BOTH: &str = "expires_at and expires_in are mutually exclusive; give one";
/// An `expires_at` (given, or computed from `expires_in`) not after now.
pub const MSG_EXPIRES_PAST: &str = "expires_at is in the past";
const MSG_TRACE: &str = "trace_context must be a map of string to string";
/// Message of a plain enqueue that both rate-limit and debounce options.
pub const MSG_CONFLICT: &str = "rate_limit and debounce options are mutually exclusive";
/// A unique key cannot guard a rate-limited or debounced enqueue (PRODUCER.md §6).
pub const MSG_UNIQUE_CONFLICT: &str =
    "unique_key cannot be combined with rate_limit or debounce options";

/// Which operation is validating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requested {
    Enqueue,
    RateLimit,
    Debounce,
    Bulk,
}

/// The guard an enqueue runs under.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Guard {
    None,
    Idempotency { key: String, ttl: i64 },
    RateLimit { key: String, ttl: i64 },
    Debounce { key: String, ttl: i64 },
}

/// Everything one enqueue writes, validated and encoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub job_id: String,
    pub function_name: String,
    pub job_params: String,
    pub enqueue_time: String,
    pub next_scheduled_run_time: String,
    pub max_retries: i64,
    pub job_timeout_seconds: i64,
    pub result_ttl_seconds: i64,
    pub queue_key: String,
    pub trace_context: String,
    pub correlation_context: String,
    pub score: i64,
    pub guard: Guard,
    /// rrqkit's additive hash fields (`retry_policy`, `expires_at`, the flow-control fields)
    /// as name/value pairs; empty when no such option is given, so the hash is byte-for-byte
    /// RRQ's.
    pub extra_fields: Vec<(String, String)>,
}

impl Plan {
    /// ARGV of the job fields (1..12 of enqueue-3.lua), then trace, correlation, score.
    pub fn job_args(&self) -> Vec<String> {
        vec![
            self.job_id.clone(),
            self.function_name.clone(),
            self.job_params.clone(),
            self.enqueue_time.clone(),
            "PENDING".to_string(),
            "0".to_string(),
            self.next_scheduled_run_time.clone(),
            self.max_retries.to_string(),
            self.job_timeout_seconds.to_string(),
            self.result_ttl_seconds.to_string(),
            self.queue_key.clone(),
            "null".to_string(),
            self.trace_context.clone(),
            self.correlation_context.clone(),
            self.score.to_string(),
        ]
    }
}

fn non_blank(name: &str, v: &Option<String>) -> Result<(), ProducerError> {
    if let Some(s) = v {
        if s.trim().is_empty() {
            return Err(ProducerError::invalid_argument(format!(
                "{name} cannot be empty"
            )));
        }
    }
    Ok(())
}

fn positive_finite(v: Option<f64>, msg: &str) -> Result<(), ProducerError> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(ProducerError::invalid_argument(msg)),
        _ => Ok(()),
    }
}

fn ceil_seconds(x: f64) -> i64 {
    x.ceil() as i64
}

fn prefixed(prefix: &str, key: &str) -> String {
    if key.starts_with(prefix) {
        key.to_string()
    } else {
        format!("{prefix}{key}")
    }
}

/// Validates one enqueue and computes what it writes.
pub(crate) fn plan(
    config: &ProducerConfig,
    function_name: &str,
    params: &Map<String, Value>,
    options: &EnqueueOptions,
    requested: Requested,
    now: DateTime<Utc>,
) -> Result<Plan, ProducerError> {
    if function_name.trim().is_empty() {
        return Err(ProducerError::invalid_argument(
            "function_name cannot be empty",
        ));
    }
    let o = options;
    non_blank("queue_name", &o.queue_name)?;
    non_blank("job_id", &o.job_id)?;
    non_blank("unique_key", &o.unique_key)?;
    non_blank("rate_limit_key", &o.rate_limit_key)?;
    non_blank("debounce_key", &o.debounce_key)?;
    if matches!(o.max_retries, Some(n) if n < 0) {
        return Err(ProducerError::invalid_argument(MSG_MAX_RETRIES));
    }
    if matches!(o.job_timeout_seconds, Some(n) if n <= 0) {
        return Err(ProducerError::invalid_argument(MSG_JOB_TIMEOUT));
    }
    if matches!(o.unique_ttl_seconds, Some(n) if n <= 0) {
        return Err(ProducerError::invalid_argument(MSG_UNIQUE_TTL));
    }
    if let Some(x) = o.defer_by_seconds {
        if !(x.is_finite() && x >= 0.0) {
            return Err(ProducerError::invalid_argument(MSG_DEFER_BY));
        }
    }
    if o.defer_until.is_some() && o.defer_by_seconds.is_some() {
        return Err(ProducerError::new(
            ProducerErrorCode::ConflictingOptions,
            MSG_DEFER_BOTH,
        ));
    }
    positive_finite(o.expires_in, MSG_EXPIRES_IN)?;
    if o.expires_at.is_some() && o.expires_in.is_some() {
        return Err(ProducerError::new(
            ProducerErrorCode::ConflictingOptions,
            MSG_EXPIRES_BOTH,
        ));
    }
    let mut max_retries = o.max_retries.unwrap_or(config.max_retries);
    let mut extra_fields = Vec::new();
    if let Some(policy) = &o.retry {
        let problems = policy.problems();
        if !problems.is_empty() {
            return Err(ProducerError::invalid_argument(problems.join("; ")));
        }
        if let Some(attempts) = policy.max_attempts {
            if matches!(o.max_retries, Some(n) if n != attempts) {
                return Err(ProducerError::new(
                    ProducerErrorCode::ConflictingOptions,
                    format!(
                        "max_retries ({}) and retry.max_attempts ({attempts}) differ; give one",
                        o.max_retries.unwrap_or_default()
                    ),
                ));
            }
            max_retries = attempts;
        }
        extra_fields.push(("retry_policy".to_string(), policy.to_json_string()));
    }
    positive_finite(o.rate_limit_seconds, MSG_RATE_SECONDS)?;
    positive_finite(o.debounce_seconds, MSG_DEBOUNCE_SECONDS)?;
    if o.has_rate_limit() && o.has_debounce() {
        return Err(ProducerError::new(
            ProducerErrorCode::ConflictingOptions,
            MSG_CONFLICT,
        ));
    }
    if o.unique_key.is_some() && (o.has_rate_limit() || o.has_debounce()) {
        return Err(ProducerError::new(
            ProducerErrorCode::ConflictingOptions,
            MSG_UNIQUE_CONFLICT,
        ));
    }
    match (&o.rate_limit_key, o.rate_limit_seconds) {
        (Some(_), None) => {
            return Err(ProducerError::invalid_argument(
                "rate_limit_seconds is required with rate_limit_key",
            ))
        }
        (None, Some(_)) => {
            return Err(ProducerError::invalid_argument(
                "rate_limit_key is required with rate_limit_seconds",
            ))
        }
        _ => {}
    }
    match (&o.debounce_key, o.debounce_seconds) {
        (Some(_), None) => {
            return Err(ProducerError::invalid_argument(
                "debounce_seconds is required with debounce_key",
            ))
        }
        (None, Some(_)) => {
            return Err(ProducerError::invalid_argument(
                "debounce_key is required with debounce_seconds",
            ))
        }
        _ => {}
    }
    match requested {
        Requested::RateLimit if o.has_debounce() => {
            return Err(ProducerError::new(
                ProducerErrorCode::ConflictingOptions,
                MSG_CONFLICT,
            ))
        }
        Requested::RateLimit if !o.has_rate_limit() => {
            return Err(ProducerError::invalid_argument(
                "rate_limit_key and rate_limit_seconds are required",
            ))
        }
        Requested::Debounce if o.has_rate_limit() => {
            return Err(ProducerError::new(
                ProducerErrorCode::ConflictingOptions,
                MSG_CONFLICT,
            ))
        }
        Requested::Debounce if !o.has_debounce() => {
            return Err(ProducerError::invalid_argument(
                "debounce_key and debounce_seconds are required",
            ))
        }
        Requested::Bulk if o.has_rate_limit() || o.has_debounce() => {
            return Err(ProducerError::invalid_argument(
                "enqueue_many items cannot use rate_limit or debounce options",
            ))
        }
        _ => {}
    }

    // Params: a map by type; check the depth a runner can receive, encode and check the size.
    let params_value = Value::Object(params.clone());
    if nests_deeper_than(&params_value, MAX_PARAMS_DEPTH) {
        return Err(ProducerError::new(
            ProducerErrorCode::InvalidParams,
            format!(
                "params nest deeper than {MAX_PARAMS_DEPTH} levels; a runner could not receive them"
            ),
        ));
    }
    let job_params = canonical_json(&params_value);
    if job_params.len() > MAX_PARAMS_BYTES {
        return Err(ProducerError::new(
            ProducerErrorCode::PayloadTooLarge,
            format!(
                "params are {} bytes when encoded; the limit is {MAX_PARAMS_BYTES}",
                job_params.len()
            ),
        ));
    }

    // Given times are truncated to microseconds (PRODUCER.md §4, as RRQ 0.11.1 does), so the
    // same option writes the same timestamp in every binding.
    let real_now = now;
    let now = o.enqueue_time.map_or(now, |t| t.trunc_subsecs(6));
    let run_at = if let Some(window) = o.debounce_seconds {
        now + ChronoDuration::nanoseconds((window * 1e9).round() as i64)
    } else if let Some(t) = o.defer_until {
        t.trunc_subsecs(6)
    } else if let Some(by) = o.defer_by_seconds.filter(|x| *x > 0.0) {
        now + ChronoDuration::milliseconds((by * 1000.0).ceil() as i64)
    } else {
        now
    };

    // Both from this producer's clock, not from a given enqueue_time (as the TS producer).
    let expires_at = match (o.expires_at, o.expires_in) {
        (Some(t), _) => {
            let t = t.trunc_subsecs(6);
            if t <= real_now {
                return Err(ProducerError::invalid_argument(MSG_EXPIRES_PAST));
            }
            Some(t)
        }
        (None, Some(secs)) => Some(
            ChronoDuration::try_milliseconds((secs * 1000.0).ceil() as i64)
                .and_then(|d| real_now.trunc_subsecs(3).checked_add_signed(d))
                .ok_or_else(|| ProducerError::invalid_argument(MSG_EXPIRES_IN))?,
        ),
        (None, None) => None,
    };
    if let Some(t) = expires_at {
        extra_fields.push(("expires_at".to_string(), format_timestamp(&t)));
    }
    extra_fields.extend(flow::flow_control_fields(o)?);

    let queue_key = match &o.queue_name {
        Some(q) => normalize_queue_name(q),
        None => normalize_queue_name(&config.queue_name),
    };
    let trace_context = match &o.trace_context {
        Some(t) if !t.is_empty() => canonical_json(&string_map_value(t)),
        _ => String::new(),
    };
    let correlation = extract_correlation_context(
        &config.correlation_mappings,
        params,
        o.trace_context.as_ref(),
    );
    let correlation_context = if correlation.is_empty() {
        String::new()
    } else {
        canonical_json(&string_map_value(&correlation))
    };

    let guard = if let (Some(key), Some(secs)) = (&o.rate_limit_key, o.rate_limit_seconds) {
        Guard::RateLimit {
            key: prefixed("rrq:rate_limit:", key),
            ttl: ceil_seconds(secs),
        }
    } else if let (Some(key), Some(secs)) = (&o.debounce_key, o.debounce_seconds) {
        Guard::Debounce {
            key: prefixed("rrq:debounce:", key),
            ttl: ceil_seconds(secs),
        }
    } else if let Some(key) = &o.unique_key {
        let base = o
            .unique_ttl_seconds
            .unwrap_or(config.idempotency_ttl_seconds);
        let delay_ms = (run_at - now).num_milliseconds();
        let delay_s = if delay_ms > 0 {
            (delay_ms + 999) / 1000
        } else {
            0
        };
        Guard::Idempotency {
            key: format!("rrq:idempotency:{key}"),
            ttl: base.max(delay_s),
        }
    } else {
        Guard::None
    };

    Ok(Plan {
        job_id: o
            .job_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        function_name: function_name.to_string(),
        job_params,
        enqueue_time: format_timestamp(&now),
        next_scheduled_run_time: format_timestamp(&run_at),
        max_retries,
        job_timeout_seconds: o.job_timeout_seconds.unwrap_or(config.job_timeout_seconds),
        result_ttl_seconds: o.result_ttl_seconds.unwrap_or(config.result_ttl_seconds),
        queue_key,
        trace_context,
        correlation_context,
        score: run_at.timestamp_millis(),
        guard,
        extra_fields,
    })
}

fn string_map_value(m: &IndexMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

const MAX_CORRELATION_KEYS: usize = 16;
const MAX_CORRELATION_KEY_BYTES: usize = 64;
const MAX_CORRELATION_VALUE_BYTES: usize = 256;

/// The correlation context of PRODUCER.md §4.
pub fn extract_correlation_context(
    mappings: &IndexMap<String, String>,
    params: &Map<String, Value>,
    trace_context: Option<&IndexMap<String, String>>,
) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for (attr, path) in mappings {
        if out.len() >= MAX_CORRELATION_KEYS {
            break;
        }
        if attr.len() > MAX_CORRELATION_KEY_BYTES {
            continue;
        }
        let value = match trace_context.and_then(|t| t.get(attr)) {
            Some(v) if !v.is_empty() => Some(v.clone()),
            _ => lookup_path(params, path),
        };
        if let Some(v) = value {
            out.insert(attr.clone(), truncate_utf8(&v, MAX_CORRELATION_VALUE_BYTES));
        }
    }
    out
}

fn lookup_path(params: &Map<String, Value>, path: &str) -> Option<String> {
    let path = path.strip_prefix("params.").unwrap_or(path);
    if path.is_empty() {
        return None;
    }
    let mut segments = path.split('.');
    let mut current = params.get(segments.next()?)?;
    for seg in segments {
        current = current.as_object()?.get(seg)?;
    }
    match current {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(canonical_number(n)),
        _ => None,
    }
}

fn truncate_utf8(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn correlation_rules() {
        let mut m = IndexMap::new();
        m.insert("tenant".to_string(), "params.tenant.id".to_string());
        m.insert("order".to_string(), "order_id".to_string());
        m.insert("flag".to_string(), "flag".to_string());
        m.insert("empty".to_string(), "empty".to_string());
        m.insert("x".repeat(65), "order_id".to_string());
        m.insert("long".to_string(), "long".to_string());
        let params = json!({"tenant": {"id": "acme"}, "order_id": 42.0, "flag": true, "empty": "", "long": "é".repeat(200)});
        let mut trace = IndexMap::new();
        trace.insert("order".to_string(), "from-trace".to_string());
        let c = extract_correlation_context(&m, params.as_object().unwrap(), Some(&trace));
        assert_eq!(c.get("tenant").unwrap(), "acme");
        assert_eq!(c.get("order").unwrap(), "from-trace");
        assert_eq!(c.get("flag").unwrap(), "true");
        assert!(!c.contains_key("empty"));
        assert_eq!(c.get("long").unwrap().len(), 256);
        assert_eq!(c.len(), 4);
        let c = extract_correlation_context(&m, params.as_object().unwrap(), None);
        assert_eq!(c.get("order").unwrap(), "42");
    }

    #[test]
    fn run_at_and_ttl() {
        let cfg = ProducerConfig::default();
        let now = t("2026-01-01T12:00:00Z");
        let o = EnqueueOptions {
            defer_by_seconds: Some(1.0005),
            unique_key: Some("k".into()),
            unique_ttl_seconds: Some(1),
            ..Default::default()
        };
        let p = plan(&cfg, "f", &Map::new(), &o, Requested::Enqueue, now).unwrap();
        assert_eq!(p.next_scheduled_run_time, "2026-01-01T12:00:01.001+00:00");
        assert_eq!(p.score, now.timestamp_millis() + 1001);
        assert_eq!(
            p.guard,
            Guard::Idempotency {
                key: "rrq:idempotency:k".into(),
                ttl: 2
            }
        );
        let o = EnqueueOptions {
            debounce_key: Some("d".into()),
            debounce_seconds: Some(1.5),
            ..Default::default()
        };
        let p = plan(&cfg, "f", &Map::new(), &o, Requested::Debounce, now).unwrap();
        assert_eq!(p.next_scheduled_run_time, "2026-01-01T12:00:01.500+00:00");
        assert_eq!(
            p.guard,
            Guard::Debounce {
                key: "rrq:debounce:d".into(),
                ttl: 2
            }
        );
    }

    #[test]
    fn given_times_truncated_to_microseconds() {
        let cfg = ProducerConfig::default();
        let o = EnqueueOptions {
            enqueue_time: Some(t("2026-01-01T12:00:00.123456789Z")),
            defer_until: Some(t("2026-01-01T12:30:00.987654321Z")),
            ..Default::default()
        };
        let p = plan(&cfg, "f", &Map::new(), &o, Requested::Enqueue, Utc::now()).unwrap();
        assert_eq!(p.enqueue_time, "2026-01-01T12:00:00.123456+00:00");
        assert_eq!(
            p.next_scheduled_run_time,
            "2026-01-01T12:30:00.987654+00:00"
        );
    }

    #[test]
    fn option_parsing() {
        let (o, p) = EnqueueOptions::from_json(&json!({"queue_name": "q", "max_retries": 3.0, "params": {"a": 1}, "defer_until": "2026-01-01T12:00:00"})).unwrap();
        assert_eq!(o.queue_name.as_deref(), Some("q"));
        assert_eq!(o.max_retries, Some(3));
        assert_eq!(p, Some(json!({"a": 1})));
        assert!(o.defer_until.is_some());
        let e = EnqueueOptions::from_json(&json!({"bogus": 1})).unwrap_err();
        assert_eq!(e.message(), "unknown option 'bogus'");
        let e = EnqueueOptions::from_json(&json!({"max_retries": 1.5})).unwrap_err();
        assert_eq!(e.message(), MSG_MAX_RETRIES);
    }
}
