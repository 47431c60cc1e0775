//! The producer's enqueue checks for the fake and inline producers: the option checks of the
//! real producer's plan (src/producer/options.rs, which is private to the producer module, so
//! they are restated here with the same codes and messages) and the catalog check.
//!
//! Not restated: the flow-control options (`concurrency_key`, `start_rate`, `limit`,
//! `ordering_key`, `requires`) are recorded as given, unchecked.

use serde_json::{Map, Value};

use crate::canonical::canonical_json;
use crate::codec::{nests_deeper_than, MAX_PARAMS_DEPTH};
use crate::producer::{
    EnqueueOptions, ProducerError, ProducerErrorCode, MAX_PARAMS_BYTES, MSG_EXPIRES_PAST,
};

/// Which enqueue path is checking (as the producer's `Requested`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    Enqueue,
    RateLimit,
    Debounce,
    Bulk,
}

const MSG_CONFLICT: &str = "rate_limit and debounce options are mutually exclusive";
const MSG_UNIQUE_CONFLICT: &str =
    "unique_key cannot be combined with rate_limit or debounce options";

fn invalid(message: impl Into<String>) -> ProducerError {
    ProducerError::invalid_argument(message)
}

fn conflict(message: impl Into<String>) -> ProducerError {
    ProducerError::new(ProducerErrorCode::ConflictingOptions, message)
}

fn non_blank(name: &str, v: &Option<String>) -> Result<(), ProducerError> {
    match v {
        Some(s) if s.trim().is_empty() => Err(invalid(format!("{name} cannot be empty"))),
        _ => Ok(()),
    }
}

fn positive_finite(v: Option<f64>, msg: &str) -> Result<(), ProducerError> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(invalid(msg)),
        _ => Ok(()),
    }
}

fn has_rate_limit(o: &EnqueueOptions) -> bool {
    o.rate_limit_key.is_some() || o.rate_limit_seconds.is_some()
}

fn has_debounce(o: &EnqueueOptions) -> bool {
    o.debounce_key.is_some() || o.debounce_seconds.is_some()
}

fn check_scalars(function_name: &str, o: &EnqueueOptions) -> Result<(), ProducerError> {
    if function_name.trim().is_empty() {
        return Err(invalid("function_name cannot be empty"));
    }
    non_blank("queue_name", &o.queue_name)?;
    non_blank("job_id", &o.job_id)?;
    non_blank("unique_key", &o.unique_key)?;
    non_blank("rate_limit_key", &o.rate_limit_key)?;
    non_blank("debounce_key", &o.debounce_key)?;
    if matches!(o.max_retries, Some(n) if n < 0) {
        return Err(invalid("max_retries must be a non-negative integer"));
    }
    if matches!(o.job_timeout_seconds, Some(n) if n <= 0) {
        return Err(invalid("job_timeout_seconds must be a positive integer"));
    }
    if matches!(o.unique_ttl_seconds, Some(n) if n <= 0) {
        return Err(invalid("unique_ttl_seconds must be a positive integer"));
    }
    if let Some(x) = o.defer_by_seconds {
        if !(x.is_finite() && x >= 0.0) {
            return Err(invalid("defer_by_seconds must be a finite number >= 0"));
        }
    }
    if o.defer_until.is_some() && o.defer_by_seconds.is_some() {
        return Err(conflict(
            "defer_until and defer_by_seconds are mutually exclusive; give one",
        ));
    }
    positive_finite(o.expires_in, "expires_in must be a finite number > 0")?;
    if o.expires_at.is_some() && o.expires_in.is_some() {
        return Err(conflict(
            "expires_at and expires_in are mutually exclusive; give one",
        ));
    }
    if matches!(o.expires_at, Some(t) if t <= chrono::Utc::now()) {
        return Err(invalid(MSG_EXPIRES_PAST));
    }
    if let Some(policy) = &o.retry {
        let problems = policy.problems();
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        if let (Some(attempts), Some(n)) = (policy.max_attempts, o.max_retries) {
            if n != attempts {
                return Err(conflict(format!(
                    "max_retries ({n}) and retry.max_attempts ({attempts}) differ; give one"
                )));
            }
        }
    }
    Ok(())
}

fn check_guards(o: &EnqueueOptions, path: Path) -> Result<(), ProducerError> {
    positive_finite(
        o.rate_limit_seconds,
        "rate_limit_seconds must be a finite number > 0",
    )?;
    positive_finite(
        o.debounce_seconds,
        "debounce_seconds must be a finite number > 0",
    )?;
    if has_rate_limit(o) && has_debounce(o) {
        return Err(conflict(MSG_CONFLICT));
    }
    if o.unique_key.is_some() && (has_rate_limit(o) || has_debounce(o)) {
        return Err(conflict(MSG_UNIQUE_CONFLICT));
    }
    for (key, seconds, k, s) in [
        (
            o.rate_limit_key.is_some(),
            o.rate_limit_seconds.is_some(),
            "rate_limit_key",
            "rate_limit_seconds",
        ),
        (
            o.debounce_key.is_some(),
            o.debounce_seconds.is_some(),
            "debounce_key",
            "debounce_seconds",
        ),
    ] {
        if key && !seconds {
            return Err(invalid(format!("{s} is required with {k}")));
        }
        if seconds && !key {
            return Err(invalid(format!("{k} is required with {s}")));
        }
    }
    match path {
        Path::RateLimit if has_debounce(o) => Err(conflict(MSG_CONFLICT)),
        Path::RateLimit if !has_rate_limit(o) => Err(invalid(
            "rate_limit_key and rate_limit_seconds are required",
        )),
        Path::Debounce if has_rate_limit(o) => Err(conflict(MSG_CONFLICT)),
        Path::Debounce if !has_debounce(o) => {
            Err(invalid("debounce_key and debounce_seconds are required"))
        }
        Path::Bulk if has_rate_limit(o) || has_debounce(o) => Err(invalid(
            "enqueue_many items cannot use rate_limit or debounce options",
        )),
        _ => Ok(()),
    }
}

fn check_params(params: &Map<String, Value>) -> Result<(), ProducerError> {
    let value = Value::Object(params.clone());
    if nests_deeper_than(&value, MAX_PARAMS_DEPTH) {
        return Err(ProducerError::new(
            ProducerErrorCode::InvalidParams,
            format!(
                "params nest deeper than {MAX_PARAMS_DEPTH} levels; a runner could not receive them"
            ),
        ));
    }
    let size = canonical_json(&value).len();
    if size > MAX_PARAMS_BYTES {
        return Err(ProducerError::new(
            ProducerErrorCode::PayloadTooLarge,
            format!("params are {size} bytes when encoded; the limit is {MAX_PARAMS_BYTES}"),
        ));
    }
    Ok(())
}

/// The real producer's option and params checks for one enqueue.
pub(crate) fn check_enqueue(
    function_name: &str,
    params: &Map<String, Value>,
    options: &EnqueueOptions,
    path: Path,
) -> Result<(), ProducerError> {
    check_scalars(function_name, options)?;
    check_guards(options, path)?;
    check_params(params)
}

/// `invalid_params` when `catalog` has a contract for `function_name` that `params` break.
#[cfg(feature = "contracts")]
pub(crate) fn check_contract(
    catalog: Option<&crate::contracts::JobCatalog>,
    function_name: &str,
    params: &Map<String, Value>,
) -> Result<(), ProducerError> {
    if let Some(catalog) = catalog {
        if catalog.contains(function_name) {
            let value = Value::Object(params.clone());
            if let Some(problem) = catalog.check_params(function_name, &value) {
                return Err(ProducerError::from_problem(problem));
            }
        }
    }
    Ok(())
}
