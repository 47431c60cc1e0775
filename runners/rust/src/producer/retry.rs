//! The `retry` enqueue option: a per-job retry policy, stored as the job hash's `retry_policy`
//! field (issue 20, design §B).
//!
//! The rules and messages are those of the TypeScript validator (`src/policy/spec.ts`), the
//! one validator of the producer option, the hash field and the `[rrq.functions."<name>"]`
//! tables, so every binding accepts and refuses the same objects with the same words. The
//! stored value is the canonical JSON of the policy's given fields (the encoding of
//! `job_params`), so all producers store the same bytes.

use serde_json::{Map, Value};

use super::error::ProducerError;
use super::options::json_integer;
use crate::canonical::canonical_json;

/// The keys of a retry policy, in the order the validator reads them.
pub const RETRY_POLICY_KEYS: [&str; 10] = [
    "max_attempts",
    "backoff",
    "delay_seconds",
    "max_delay_seconds",
    "jitter",
    "delays",
    "retry_timeouts",
    "non_retryable_error_types",
    "retry_for_seconds",
    "max_snoozes",
];

/// How the delay before a retry grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// `delay_seconds · 2^(k−1)`, capped at `max_delay_seconds` (RRQ's default).
    Exponential,
    /// `delay_seconds` every time.
    Fixed,
    /// Retry k waits `delays[min(k, len) − 1]`.
    List,
}

impl Backoff {
    /// `exponential`, `fixed` or `list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backoff::Exponential => "exponential",
            Backoff::Fixed => "fixed",
            Backoff::List => "list",
        }
    }

    fn parse(s: &str) -> Option<Backoff> {
        Some(match s {
            "exponential" => Backoff::Exponential,
            "fixed" => Backoff::Fixed,
            "list" => Backoff::List,
            _ => return None,
        })
    }
}

/// A job's retry policy (the `retry` option). Every field is optional: an absent one falls
/// back to the function's policy in `rrq.toml`, then to the global defaults.
///
/// ```
/// use rrqkit::producer::{Backoff, RetryPolicy};
/// let policy = RetryPolicy {
///     max_attempts: Some(4),
///     backoff: Some(Backoff::Fixed),
///     delay_seconds: Some(0.2),
///     non_retryable_error_types: Some(vec!["CardDeclined".into()]),
///     ..Default::default()
/// };
/// assert_eq!(
///     policy.to_json_string(),
///     r#"{"backoff":"fixed","delay_seconds":0.2,"max_attempts":4,"non_retryable_error_types":["CardDeclined"]}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts (RRQ's meaning of `max_retries`), ≥ 1. Also written as `max_retries`.
    pub max_attempts: Option<i64>,
    /// Giving `delays` without a backoff means [`Backoff::List`].
    pub backoff: Option<Backoff>,
    /// Exponential base, or the fixed delay, in seconds (≥ 0).
    pub delay_seconds: Option<f64>,
    /// Cap of the exponential delay (≥ 0).
    pub max_delay_seconds: Option<f64>,
    /// In [0, 1]: the delay is multiplied by a random factor in [1 − jitter, 1].
    pub jitter: Option<f64>,
    /// Backoff "list": non-empty, each ≥ 0.
    pub delays: Option<Vec<f64>>,
    /// Whether a timeout is retried (default false: it goes to the DLQ, as in RRQ).
    pub retry_timeouts: Option<bool>,
    /// Runner `error.type`s that go to the DLQ at once (non-empty strings).
    pub non_retryable_error_types: Option<Vec<String>>,
    /// No retry is scheduled later than the first start plus this many seconds (> 0).
    pub retry_for_seconds: Option<f64>,
    /// How often the job may snooze before it goes to the DLQ (≥ 0).
    pub max_snoozes: Option<i64>,
}

fn number(f: f64) -> Value {
    // NaN and infinities have no JSON form: they show as null and fail validation.
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

impl RetryPolicy {
    /// The given fields as a JSON object (keys in validator order; absent fields left out).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(v) = self.max_attempts {
            m.insert("max_attempts".into(), Value::from(v));
        }
        if let Some(v) = self.backoff {
            m.insert("backoff".into(), Value::String(v.as_str().into()));
        }
        for (key, v) in [
            ("delay_seconds", self.delay_seconds),
            ("max_delay_seconds", self.max_delay_seconds),
            ("jitter", self.jitter),
        ] {
            if let Some(v) = v {
                m.insert(key.into(), number(v));
            }
        }
        if let Some(v) = &self.delays {
            m.insert(
                "delays".into(),
                Value::Array(v.iter().copied().map(number).collect()),
            );
        }
        if let Some(v) = self.retry_timeouts {
            m.insert("retry_timeouts".into(), Value::Bool(v));
        }
        if let Some(v) = &self.non_retryable_error_types {
            m.insert(
                "non_retryable_error_types".into(),
                Value::Array(v.iter().cloned().map(Value::String).collect()),
            );
        }
        if let Some(v) = self.retry_for_seconds {
            m.insert("retry_for_seconds".into(), number(v));
        }
        if let Some(v) = self.max_snoozes {
            m.insert("max_snoozes".into(), Value::from(v));
        }
        Value::Object(m)
    }

    /// The `retry_policy` hash field: canonical JSON of [`RetryPolicy::to_json`].
    pub fn to_json_string(&self) -> String {
        canonical_json(&self.to_json())
    }

    /// Every problem of this policy, each naming its key path (`retry.<key>`).
    pub fn problems(&self) -> Vec<String> {
        check_retry_policy(&self.to_json(), "retry")
    }

    /// Reads a policy object (the producer adapter's `options.retry`). Unknown keys, wrong
    /// types and out-of-range values are `invalid_argument`, the message naming each key
    /// (e.g. `retry.jitter must be a number between 0 and 1, got 2`; several joined by `; `).
    pub fn from_json(value: &Value) -> Result<RetryPolicy, ProducerError> {
        let problems = check_retry_policy(value, "retry");
        if !problems.is_empty() {
            // All of them, as the TypeScript producer reports them.
            return Err(ProducerError::invalid_argument(problems.join("; ")));
        }
        let m = value.as_object().expect("checked: an object");
        let num = |k: &str| m.get(k).and_then(Value::as_f64);
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(RetryPolicy {
            max_attempts: m.get("max_attempts").and_then(json_integer),
            backoff: m
                .get("backoff")
                .and_then(Value::as_str)
                .and_then(Backoff::parse),
            delay_seconds: num("delay_seconds"),
            max_delay_seconds: num("max_delay_seconds"),
            jitter: num("jitter"),
            delays: m
                .get("delays")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_f64).collect()),
            retry_timeouts: m.get("retry_timeouts").and_then(Value::as_bool),
            non_retryable_error_types: m.get("non_retryable_error_types").map(strings),
            retry_for_seconds: num("retry_for_seconds"),
            max_snoozes: m.get("max_snoozes").and_then(json_integer),
        })
    }
}

/// What a value of `key` must be, or `None` when it is valid.
fn must_be(key: &str, v: &Value) -> Option<&'static str> {
    let num = v.as_f64().filter(|f| f.is_finite());
    let int = json_integer(v);
    let ok = match key {
        "max_attempts" => int.is_some_and(|n| n >= 1),
        "backoff" => v.as_str().and_then(Backoff::parse).is_some(),
        "delay_seconds" | "max_delay_seconds" => num.is_some_and(|f| f >= 0.0),
        "jitter" => num.is_some_and(|f| (0.0..=1.0).contains(&f)),
        "delays" => v.as_array().is_some_and(|a| {
            !a.is_empty() && a.iter().all(|d| d.as_f64().is_some_and(|f| f >= 0.0))
        }),
        "retry_timeouts" => v.is_boolean(),
        "non_retryable_error_types" => v
            .as_array()
            .is_some_and(|a| a.iter().all(|t| t.as_str().is_some_and(|s| !s.is_empty()))),
        "retry_for_seconds" => num.is_some_and(|f| f > 0.0),
        "max_snoozes" => int.is_some_and(|n| n >= 0),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match key {
        "max_attempts" => "an integer >= 1",
        "backoff" => r#"one of "exponential", "fixed", "list""#,
        "delay_seconds" | "max_delay_seconds" => "a number >= 0",
        "jitter" => "a number between 0 and 1",
        "delays" => "a non-empty array of numbers >= 0",
        "retry_timeouts" => "true or false",
        "non_retryable_error_types" => "an array of non-empty strings",
        "retry_for_seconds" => "a number > 0",
        _ => "an integer >= 0",
    })
}

/// A value as the TypeScript messages show it (`JSON.stringify`; integral numbers bare).
fn shown(v: &Value) -> String {
    canonical_json(v)
}

/// Every problem of a retry policy object, each naming its key path (`where` first); empty
/// when it is valid. Unknown keys are problems too, with a did-you-mean. The same rules and
/// words as `checkRetryPolicy` of `src/policy/spec.ts`.
pub fn check_retry_policy(raw: &Value, r#where: &str) -> Vec<String> {
    let Value::Object(m) = raw else {
        return vec![format!("{where} must be an object (a table)")];
    };
    let mut problems = Vec::new();
    let mut sorted = RETRY_POLICY_KEYS;
    sorted.sort_unstable();
    let valid = sorted.join(", ");
    for key in m.keys() {
        if !RETRY_POLICY_KEYS.contains(&key.as_str()) {
            let hint = closest(key, &RETRY_POLICY_KEYS)
                .map(|near| format!(" — did you mean '{near}'?"))
                .unwrap_or_default();
            problems.push(format!(
                "unknown key '{where}.{key}'; valid keys are: {valid}{hint}"
            ));
        }
    }
    let mut backoff_ok = None;
    let mut delays_ok = false;
    for key in RETRY_POLICY_KEYS {
        let Some(v) = m.get(key) else { continue };
        match must_be(key, v) {
            None => match key {
                "backoff" => backoff_ok = v.as_str(),
                "delays" => delays_ok = true,
                _ => {}
            },
            Some(words) => {
                problems.push(format!("{where}.{key} must be {words}, got {}", shown(v)))
            }
        }
    }
    match backoff_ok {
        Some("list") if !m.contains_key("delays") => {
            problems.push(format!(r#"{where}.delays is required with backoff "list""#));
        }
        Some(b) if b != "list" && delays_ok => {
            problems.push(format!(
                r#"{where}.delays is only used with backoff "list" (got "{b}")"#
            ));
        }
        _ => {}
    }
    problems
}

/// The entry of `known` nearest to `key` when it is a plausible typo of it.
pub(crate) fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (key.chars().count() / 4).clamp(1, 3);
    let lower: Vec<char> = key.to_lowercase().chars().collect();
    let mut best: Option<(&str, usize)> = None;
    for &name in known {
        let d = edit_distance(&lower, &name.chars().collect::<Vec<_>>());
        if d <= limit && best.is_none_or(|(_, b)| d < b) {
            best = Some((name, d));
        }
    }
    best.map(|(name, _)| name)
}

/// Edit distance counting an adjacent transposition as one edit ("retires" → "retries").
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn first(v: Value) -> String {
        check_retry_policy(&v, "retry").remove(0)
    }

    #[test]
    fn messages_name_the_key() {
        assert_eq!(
            first(json!({"jitter": 2})),
            "retry.jitter must be a number between 0 and 1, got 2"
        );
        assert_eq!(
            first(json!({"max_attempts": 0})),
            "retry.max_attempts must be an integer >= 1, got 0"
        );
        assert_eq!(
            first(json!({"max_attempts": 1.5})),
            "retry.max_attempts must be an integer >= 1, got 1.5"
        );
        assert_eq!(
            first(json!({"backoff": "linear"})),
            r#"retry.backoff must be one of "exponential", "fixed", "list", got "linear""#
        );
        assert_eq!(
            first(json!({"delays": []})),
            "retry.delays must be a non-empty array of numbers >= 0, got []"
        );
        assert_eq!(
            first(json!({"non_retryable_error_types": ["a", ""]})),
            r#"retry.non_retryable_error_types must be an array of non-empty strings, got ["a",""]"#
        );
        assert_eq!(
            first(json!({"retry_for_seconds": 0})),
            "retry.retry_for_seconds must be a number > 0, got 0"
        );
        assert_eq!(
            first(json!({"max_snoozes": null})),
            "retry.max_snoozes must be an integer >= 0, got null"
        );
        assert_eq!(
            first(json!({"retry_timeouts": "yes"})),
            r#"retry.retry_timeouts must be true or false, got "yes""#
        );
        assert_eq!(
            first(json!({"max_attemps": 3})),
            "unknown key 'retry.max_attemps'; valid keys are: backoff, delay_seconds, delays, \
             jitter, max_attempts, max_delay_seconds, max_snoozes, non_retryable_error_types, \
             retry_for_seconds, retry_timeouts — did you mean 'max_attempts'?"
        );
        assert_eq!(first(json!([1])), "retry must be an object (a table)");
        assert_eq!(
            first(json!({"backoff": "list"})),
            r#"retry.delays is required with backoff "list""#
        );
        assert_eq!(
            first(json!({"backoff": "fixed", "delays": [1]})),
            r#"retry.delays is only used with backoff "list" (got "fixed")"#
        );
        assert!(check_retry_policy(&json!({"delays": [1, 2.5]}), "retry").is_empty());
        assert!(check_retry_policy(&json!({}), "retry").is_empty());
    }

    #[test]
    fn json_round_trip_is_canonical() {
        let raw = json!({"max_attempts": 4.0, "delays": [0.5, 1.0], "jitter": 0.25,
            "retry_timeouts": true, "non_retryable_error_types": ["E"], "max_snoozes": 0});
        let p = RetryPolicy::from_json(&raw).unwrap();
        assert_eq!(p.max_attempts, Some(4));
        assert_eq!(
            p.backoff, None,
            "as given: delays alone mean list, but are stored alone"
        );
        assert_eq!(
            p.to_json_string(),
            r#"{"delays":[0.5,1],"jitter":0.25,"max_attempts":4,"max_snoozes":0,"non_retryable_error_types":["E"],"retry_timeouts":true}"#
        );
        assert_eq!(p.to_json_string(), canonical_json(&raw));
        let bad = RetryPolicy {
            jitter: Some(f64::NAN),
            ..Default::default()
        };
        assert_eq!(
            bad.problems(),
            vec!["retry.jitter must be a number between 0 and 1, got null"]
        );
    }
}
