//! Flow-control enqueue options (issue 22; README "Flow control"): `concurrency_key`,
//! `concurrency_limit`, `start_rate`, `limit` and `ordering_key`, and `requires` (issue 23,
//! routing by capability). The same names, rules and
//! messages as the TypeScript producer (`src/producer/flow-options.ts`) and the Python one;
//! stored as additive job hash fields by enqueue-fields-1.lua, only when given.

use serde_json::Value;

use super::error::ProducerError;
use super::options::{json_integer, EnqueueOptions};
use super::retry::closest;

/// Longest `concurrency_key` / `ordering_key`, in characters.
pub const MAX_FLOW_KEY_CHARS: usize = 256;
/// Longest `limit` name.
pub const MAX_LIMIT_NAME_CHARS: usize = 128;
/// Largest `concurrency_limit`.
pub const MAX_CONCURRENCY_LIMIT: i64 = 100_000;
/// Largest `start_rate.limit`.
pub const MAX_START_RATE_LIMIT: i64 = 1_000_000;
/// Longest `start_rate` period, in ms (one day).
pub const MAX_START_RATE_PERIOD_MS: i64 = 86_400_000;

const START_RATE_KEYS: [&str; 2] = ["limit", "period_seconds"];
const MSG_CONCURRENCY_LIMIT: &str = "concurrency_limit must be an integer from 1 to 100000";
const MSG_RATE_SHAPE: &str = "start_rate must be an object with limit and period_seconds";
const MSG_RATE_LIMIT: &str = "start_rate.limit must be an integer from 1 to 1000000";
const MSG_RATE_PERIOD: &str = "start_rate.period_seconds must be a number > 0 and at most 86400";
const MSG_LIMIT_NAME: &str =
    "limit must be a limit name of 1 to 128 characters from A-Z a-z 0-9 _ . : -";

/// A start rate: at most `limit` starts per `period_seconds`, spread evenly (one start every
/// period / limit; a smooth rate, no bursts). Stored as `"<limit>/<period_ms>"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StartRate {
    /// Starts per period, 1..=1000000.
    pub limit: i64,
    /// The period in seconds: > 0, may be fractional (stored rounded to whole ms, at least 1),
    /// at most 86400.
    pub period_seconds: f64,
}

impl StartRate {
    /// `limit` starts per `period_seconds`.
    pub fn new(limit: i64, period_seconds: f64) -> StartRate {
        StartRate {
            limit,
            period_seconds,
        }
    }

    /// The stored form `"<limit>/<period_ms>"`, or the message of the first bad value.
    fn stored(&self) -> Result<String, ProducerError> {
        if !(1..=MAX_START_RATE_LIMIT).contains(&self.limit) {
            return Err(ProducerError::invalid_argument(MSG_RATE_LIMIT));
        }
        Ok(format!(
            "{}/{}",
            self.limit,
            period_ms(self.period_seconds)?
        ))
    }

    /// From `{"limit": .., "period_seconds": ..}`, checked in the TS producer's order.
    fn from_json(v: &Value) -> Result<StartRate, ProducerError> {
        let Value::Object(m) = v else {
            return Err(ProducerError::invalid_argument(MSG_RATE_SHAPE));
        };
        if let Some(key) = m.keys().find(|k| !START_RATE_KEYS.contains(&k.as_str())) {
            let hint = closest(key, &START_RATE_KEYS)
                .map(|near| format!(" — did you mean '{near}'?"))
                .unwrap_or_default();
            return Err(ProducerError::invalid_argument(format!(
                "unknown key 'start_rate.{key}'; valid keys are: limit, period_seconds{hint}"
            )));
        }
        let present = |k: &str| m.get(k).filter(|v| !v.is_null());
        let (Some(limit), Some(period)) = (present("limit"), present("period_seconds")) else {
            let missing = if present("limit").is_none() {
                "limit"
            } else {
                "period_seconds"
            };
            return Err(ProducerError::invalid_argument(format!(
                "start_rate.{missing} is required"
            )));
        };
        let limit = json_integer(limit)
            .filter(|n| (1..=MAX_START_RATE_LIMIT).contains(n))
            .ok_or_else(|| ProducerError::invalid_argument(MSG_RATE_LIMIT))?;
        let period_seconds = period
            .as_f64()
            .ok_or_else(|| ProducerError::invalid_argument(MSG_RATE_PERIOD))?;
        let rate = StartRate::new(limit, period_seconds);
        rate.stored()?;
        Ok(rate)
    }
}

/// The period in whole ms, half up (as JavaScript's Math.round), at least 1.
fn period_ms(seconds: f64) -> Result<i64, ProducerError> {
    let ms = (seconds * 1000.0).round();
    if !(seconds.is_finite() && seconds > 0.0 && ms <= MAX_START_RATE_PERIOD_MS as f64) {
        return Err(ProducerError::invalid_argument(MSG_RATE_PERIOD));
    }
    Ok((ms as i64).max(1))
}

fn key_message(label: &str) -> String {
    format!("{label} must be a string of 1 to {MAX_FLOW_KEY_CHARS} characters")
}

fn check_key(value: &str, label: &str) -> Result<(), ProducerError> {
    let n = value.chars().count();
    if (1..=MAX_FLOW_KEY_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(ProducerError::invalid_argument(key_message(label)))
    }
}

fn check_limit_name(value: &str) -> Result<(), ProducerError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_LIMIT_NAME_CHARS
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ProducerError::invalid_argument(MSG_LIMIT_NAME))
    }
}

fn check_concurrency_limit(n: i64) -> Result<(), ProducerError> {
    if (1..=MAX_CONCURRENCY_LIMIT).contains(&n) {
        Ok(())
    } else {
        Err(ProducerError::invalid_argument(MSG_CONCURRENCY_LIMIT))
    }
}

/// The option names, in the order they are checked.
pub(crate) const FLOW_OPTION_NAMES: [&str; 6] = [
    "concurrency_key",
    "concurrency_limit",
    "start_rate",
    "limit",
    "ordering_key",
    "requires",
];

/// Most tags one job may require.
pub const MAX_REQUIRED_TAGS: usize = 16;

/// A capability tag: 1 to 64 of `A-Z a-z 0-9 _ . : / = -`.
fn is_tag(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/=-".contains(&b))
}

fn no_tag(shown: &str) -> ProducerError {
    ProducerError::invalid_argument(format!(
        "requires: {shown} is no tag (1 to 64 of A-Z a-z 0-9 _ . : / = -)"
    ))
}

fn too_many_tags(n: usize) -> ProducerError {
    ProducerError::invalid_argument(format!(
        "requires holds {n} tags; at most {MAX_REQUIRED_TAGS} are allowed"
    ))
}

/// `requires` from JSON, checked as the TS producer checks it (the same words).
fn requires_from_json(v: &Value) -> Result<Vec<String>, ProducerError> {
    let Value::Array(items) = v else {
        return Err(ProducerError::invalid_argument(format!(
            "requires must be an array of tags, got {v}"
        )));
    };
    if items.len() > MAX_REQUIRED_TAGS {
        return Err(too_many_tags(items.len()));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(s) if is_tag(s) => Ok(s.clone()),
            other => Err(no_tag(&other.to_string())),
        })
        .collect()
}

/// The stored `requires`: the JSON array of the tags sorted and deduplicated, or None when
/// there are none.
fn requires_stored(tags: &[String]) -> Result<Option<String>, ProducerError> {
    if tags.len() > MAX_REQUIRED_TAGS {
        return Err(too_many_tags(tags.len()));
    }
    if let Some(bad) = tags.iter().find(|t| !is_tag(t)) {
        return Err(no_tag(&Value::String(bad.clone()).to_string()));
    }
    let mut sorted: Vec<&String> = tags.iter().collect();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        serde_json::to_string(&sorted).expect("strings encode"),
    ))
}

/// Sets the flow-control option `name` of `o` from JSON (null = absent), checked whole (type
/// and range) so the first bad option reported is the TS producer's. The caller passes the
/// names in [`FLOW_OPTION_NAMES`] order.
pub(crate) fn set_from_json(
    o: &mut EnqueueOptions,
    name: &str,
    v: &Value,
) -> Result<(), ProducerError> {
    let string = |label: &str, msg: String| -> Result<String, ProducerError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| ProducerError::invalid_argument(msg.clone()))
            .and_then(|s| {
                if label == "limit" {
                    check_limit_name(&s)?;
                } else {
                    check_key(&s, label)?;
                }
                Ok(s)
            })
    };
    match name {
        "concurrency_key" => {
            o.concurrency_key = Some(string(name, key_message(name))?);
        }
        "ordering_key" => o.ordering_key = Some(string(name, key_message(name))?),
        "limit" => o.limit = Some(string(name, MSG_LIMIT_NAME.to_string())?),
        "concurrency_limit" => {
            let n = json_integer(v)
                .ok_or_else(|| ProducerError::invalid_argument(MSG_CONCURRENCY_LIMIT))?;
            check_concurrency_limit(n)?;
            o.concurrency_limit = Some(n);
        }
        "start_rate" => o.start_rate = Some(StartRate::from_json(v)?),
        "requires" => o.requires = Some(requires_from_json(v)?),
        _ => unreachable!("not a flow-control option: {name}"),
    }
    Ok(())
}

/// The flow-control options of `o` as the hash fields they write (`concurrency_key`,
/// `concurrency_limit`, `start_rate`, `limit_name`, `ordering_key`), each only when given.
/// A cap or a rate needs a key to apply to (`concurrency_key` or `limit`).
pub(crate) fn flow_control_fields(
    o: &EnqueueOptions,
) -> Result<Vec<(String, String)>, ProducerError> {
    let mut fields = Vec::new();
    let mut push = |name: &str, value: String| fields.push((name.to_string(), value));
    if let Some(k) = &o.concurrency_key {
        check_key(k, "concurrency_key")?;
        push("concurrency_key", k.clone());
    }
    if let Some(n) = o.concurrency_limit {
        check_concurrency_limit(n)?;
        push("concurrency_limit", n.to_string());
    }
    if let Some(rate) = &o.start_rate {
        push("start_rate", rate.stored()?);
    }
    if let Some(name) = &o.limit {
        check_limit_name(name)?;
        push("limit_name", name.clone());
    }
    if let Some(k) = &o.ordering_key {
        check_key(k, "ordering_key")?;
        push("ordering_key", k.clone());
    }
    if let Some(tags) = &o.requires {
        if let Some(stored) = requires_stored(tags)? {
            push("requires", stored);
        }
    }
    let keyed = o.concurrency_key.is_some() || o.limit.is_some();
    if !keyed && o.concurrency_limit.is_some() {
        return Err(ProducerError::invalid_argument(
            "concurrency_limit needs concurrency_key or limit",
        ));
    }
    if !keyed && o.start_rate.is_some() {
        return Err(ProducerError::invalid_argument(
            "start_rate needs concurrency_key or limit",
        ));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_rounding() {
        assert_eq!(period_ms(0.0001).unwrap(), 1);
        assert_eq!(period_ms(0.0004).unwrap(), 1);
        assert_eq!(period_ms(2.0006).unwrap(), 2001);
        assert_eq!(period_ms(86400.0).unwrap(), 86_400_000);
        assert!(period_ms(86401.0).is_err());
        assert!(period_ms(f64::NAN).is_err());
        assert!(period_ms(f64::INFINITY).is_err());
        assert!(period_ms(0.0).is_err());
    }

    #[test]
    fn requires_checked_and_stored_sorted() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            requires_stored(&tags(&["z", "gpu", "gpu"]))
                .unwrap()
                .as_deref(),
            Some(r#"["gpu","z"]"#)
        );
        assert_eq!(requires_stored(&[]).unwrap(), None);
        let err = requires_stored(&tags(&["has space"])).unwrap_err();
        assert!(err
            .to_string()
            .contains(r#"requires: "has space" is no tag"#));
        let many: Vec<String> = (0..17).map(|i| format!("t{i}")).collect();
        assert!(requires_stored(&many)
            .unwrap_err()
            .to_string()
            .contains("at most 16"));
        let err = requires_from_json(&serde_json::json!("gpu")).unwrap_err();
        assert!(err
            .to_string()
            .contains(r#"requires must be an array of tags, got "gpu""#));
        let err = requires_from_json(&serde_json::json!([5])).unwrap_err();
        assert!(err.to_string().contains("requires: 5 is no tag"));
    }

    #[test]
    fn limit_names() {
        assert!(check_limit_name("api.v2:eu-1_x").is_ok());
        assert!(check_limit_name("a b").is_err());
        assert!(check_limit_name("é").is_err());
        assert!(check_limit_name(&"x".repeat(129)).is_err());
    }
}
