//! The inline rules: what rrqkit's orchestrator decides after an attempt
//! (src/orchestrator/decisions.ts and src/policy), for jobs run in process.
//!
//! `max_retries` is the total number of attempts (RRQ's meaning): the job's `retry.max_attempts`,
//! else its `max_retries` option, else the producer config's (`default_max_retries`, RRQ: 5).
//! Errors of type `non_retryable` or `invalid_params` (or listed in the policy's
//! `non_retryable_error_types`) fail at once; a timeout fails at once unless `retry_timeouts`;
//! a snooze runs the job again without counting an attempt, up to `max_snoozes` (100); a missing
//! handler fails at once. Delays (backoff, `retry_after`, snooze) are returned, never slept.

use crate::producer::{Backoff, RetryPolicy};
use crate::protocol::{ExecutionOutcome, OutcomeStatus};

/// Error types that always fail the job at once (as the orchestrator's built-in list).
pub const BUILT_IN_NON_RETRYABLE: [&str; 2] = ["non_retryable", "invalid_params"];
/// The orchestrator's snooze cap when the policy sets none.
pub const DEFAULT_MAX_SNOOZES: i64 = 100;
/// `base_retry_delay_seconds` default of rrq.toml.
pub const DEFAULT_BASE_RETRY_DELAY_SECONDS: f64 = 5.0;
/// `max_retry_delay_seconds` default of rrq.toml.
pub const DEFAULT_MAX_RETRY_DELAY_SECONDS: f64 = 3600.0;

/// Messages a runner uses for its own deadline expiry; reported as the orchestrator's.
const DEADLINE_MESSAGES: [&str; 3] = [
    "Job execution timed out",
    "Job execution timed out.",
    "Job deadline exceeded",
];

/// What happens after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// `COMPLETED` with this result.
    Complete(serde_json::Value),
    /// Run again after `delay_seconds` (not slept); the attempt counted.
    Retry { delay_seconds: f64, error: String },
    /// Run again after `delay_seconds` without counting the attempt.
    Snooze { delay_seconds: f64 },
    /// `FAILED` (the orchestrator's DLQ) with `last_error`.
    Fail { error: String },
}

/// The job's side of a decision: its attempts so far and the policy it runs under.
#[derive(Debug, Clone)]
pub struct JobState<'a> {
    /// Attempts already counted before this one (`current_retries`).
    pub attempts_before: u32,
    /// Snoozes so far.
    pub snoozes: u32,
    /// The job's max_retries (option, else the config default).
    pub max_retries: i64,
    /// The job's `retry` option, if any.
    pub policy: Option<&'a RetryPolicy>,
    /// The job's timeout in seconds (for the timeout message).
    pub timeout_seconds: i64,
}

impl JobState<'_> {
    fn max_attempts(&self) -> i64 {
        self.policy
            .and_then(|p| p.max_attempts)
            .unwrap_or(self.max_retries)
    }

    fn non_retryable(&self, error_type: &str) -> bool {
        BUILT_IN_NON_RETRYABLE.contains(&error_type)
            || self
                .policy
                .and_then(|p| p.non_retryable_error_types.as_ref())
                .is_some_and(|types| types.iter().any(|t| t == error_type))
    }

    fn retry_timeouts(&self) -> bool {
        self.policy.and_then(|p| p.retry_timeouts).unwrap_or(false)
    }

    fn max_snoozes(&self) -> i64 {
        self.policy
            .and_then(|p| p.max_snoozes)
            .unwrap_or(DEFAULT_MAX_SNOOZES)
    }
}

/// Seconds before retry number `k` (1-based), without jitter: exponential
/// `min(delay · 2^(k−1), max)` (exponent capped at 30), fixed `delay`, or list `delays[min(k, len) − 1]`.
pub fn backoff_seconds(policy: Option<&RetryPolicy>, k: u32) -> f64 {
    let n = k.max(1);
    let p = policy.cloned().unwrap_or_default();
    let delay = p.delay_seconds.unwrap_or(DEFAULT_BASE_RETRY_DELAY_SECONDS);
    let backoff = match (p.backoff, &p.delays) {
        (Some(b), _) => b,
        (None, Some(_)) => Backoff::List,
        (None, None) => Backoff::Exponential,
    };
    match (backoff, &p.delays) {
        (Backoff::List, Some(delays)) if !delays.is_empty() => {
            delays[(n as usize).min(delays.len()) - 1]
        }
        (Backoff::Fixed, _) => delay,
        _ => {
            let max = p
                .max_delay_seconds
                .unwrap_or(DEFAULT_MAX_RETRY_DELAY_SECONDS);
            (delay * 2f64.powi((n - 1).min(30) as i32)).min(max)
        }
    }
}

fn retry_or_fail(job: &JobState<'_>, error: String, explicit_delay: Option<f64>) -> Decision {
    if i64::from(job.attempts_before) + 1 >= job.max_attempts() {
        return Decision::Fail { error };
    }
    let delay_seconds =
        explicit_delay.unwrap_or_else(|| backoff_seconds(job.policy, job.attempts_before + 1));
    Decision::Retry {
        delay_seconds,
        error,
    }
}

/// The orchestrator's decision for `outcome` (decisions.ts `decide`; `retry_for_seconds` is
/// not applied: no time passes in process).
pub fn decide(job: &JobState<'_>, outcome: &ExecutionOutcome) -> Decision {
    let message = outcome
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .filter(|m| !m.is_empty());
    let error_type = outcome.error.as_ref().and_then(|e| e.error_type.clone());
    match outcome.status {
        OutcomeStatus::Success => {
            Decision::Complete(outcome.result.clone().unwrap_or(serde_json::Value::Null))
        }
        OutcomeStatus::Retry if outcome.snooze => {
            if i64::from(job.snoozes) + 1 > job.max_snoozes() {
                return Decision::Fail {
                    error: format!("Job snoozed more than {} times", job.max_snoozes()),
                };
            }
            let delay = outcome.retry_after_seconds.filter(|s| *s >= 0.0);
            Decision::Snooze {
                delay_seconds: delay.unwrap_or(0.0),
            }
        }
        OutcomeStatus::Retry => retry_or_fail(
            job,
            message.unwrap_or_else(|| "Job requested retry".into()),
            outcome.retry_after_seconds,
        ),
        OutcomeStatus::Timeout => {
            let error = match message {
                Some(m) if !DEADLINE_MESSAGES.contains(&m.as_str()) => m,
                _ => timed_out_message(job.timeout_seconds),
            };
            if job.retry_timeouts() {
                retry_or_fail(job, error, None)
            } else {
                Decision::Fail { error }
            }
        }
        OutcomeStatus::Error => {
            let error = message.unwrap_or_else(|| "Job failed".into());
            match error_type.as_deref() {
                Some("handler_not_found") => Decision::Fail { error },
                Some(t) if job.non_retryable(t) => Decision::Fail {
                    error: format!("{error} (not retried: error type '{t}' is non-retryable)"),
                },
                _ => retry_or_fail(job, error, None),
            }
        }
    }
}

/// RRQ's timeout message, e.g. `Job timed out after 1s.`
pub fn timed_out_message(seconds: i64) -> String {
    format!("Job timed out after {seconds}s.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(attempts_before: u32, max_retries: i64) -> JobState<'static> {
        JobState {
            attempts_before,
            snoozes: 0,
            max_retries,
            policy: None,
            timeout_seconds: 1,
        }
    }

    #[test]
    fn errors_retry_until_the_attempts_are_used() {
        let failed = ExecutionOutcome::error("boom");
        let d = decide(&job(0, 3), &failed);
        assert_eq!(
            d,
            Decision::Retry {
                delay_seconds: 5.0,
                error: "boom".into()
            }
        );
        assert!(
            matches!(decide(&job(1, 3), &failed), Decision::Retry { delay_seconds, .. } if delay_seconds == 10.0)
        );
        assert_eq!(
            decide(&job(2, 3), &failed),
            Decision::Fail {
                error: "boom".into()
            }
        );
    }

    #[test]
    fn non_retryable_and_timeouts_fail_at_once() {
        let o = ExecutionOutcome::error("bad").with_error_type("non_retryable");
        assert_eq!(
            decide(&job(0, 5), &o),
            Decision::Fail {
                error: "bad (not retried: error type 'non_retryable' is non-retryable)".into()
            }
        );
        let t = ExecutionOutcome::timeout(None);
        assert_eq!(
            decide(&job(0, 5), &t),
            Decision::Fail {
                error: "Job timed out after 1s.".into()
            }
        );
        let policy = RetryPolicy {
            retry_timeouts: Some(true),
            ..Default::default()
        };
        let mut j = job(0, 5);
        j.policy = Some(&policy);
        assert!(matches!(decide(&j, &t), Decision::Retry { .. }));
    }

    #[test]
    fn backoff_kinds() {
        assert_eq!(backoff_seconds(None, 3), 20.0);
        let fixed = RetryPolicy {
            backoff: Some(Backoff::Fixed),
            delay_seconds: Some(0.5),
            ..Default::default()
        };
        assert_eq!(backoff_seconds(Some(&fixed), 4), 0.5);
        let list = RetryPolicy {
            delays: Some(vec![1.0, 2.0]),
            ..Default::default()
        };
        assert_eq!(backoff_seconds(Some(&list), 5), 2.0);
    }
}
