"""The inline rules: what rrqkit's orchestrator decides after each attempt, in process.

A transcription of ``src/orchestrator/decisions.ts`` and ``src/policy`` (docs/testing.md):

- ``max_retries`` is the total number of attempts (RRQ's meaning); the job's ``retry`` policy's
  ``max_attempts``, then its function's policy, then the job's ``max_retries``, then
  ``default_max_retries`` (5) decide it.
- An ``error`` whose type is ``non_retryable`` or ``invalid_params`` (or is listed in the
  policy's ``non_retryable_error_types``) fails the job at once; ``handler_not_found`` too.
- A ``retry`` outcome with ``snooze`` runs the job again without counting an attempt, up to
  ``max_snoozes`` (100); then the job fails.
- A ``timeout`` fails the job unless ``retry_timeouts`` is set; then it is retried like an error.
- Backoff is RRQ's exponential ``min(base · 2^(k−1), max)`` (base 5 s, max 3600 s) unless the
  policy says ``fixed`` or ``list``; no retry is scheduled past ``retry_for_seconds``.

Delays are never slept: a decision carries them, and the producers record them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..models import ExecutionOutcome

__all__ = [
    "DEFAULT_MAX_EXECUTIONS",
    "Decision",
    "InlineDefaults",
    "Policy",
    "backoff_seconds",
    "decide",
    "resolve_policy",
]

#: ``drain()`` stops with an error after this many executions (a job that keeps enqueueing).
DEFAULT_MAX_EXECUTIONS: Final = 10_000

_BUILT_IN_NON_RETRYABLE: Final = frozenset({"non_retryable", "invalid_params"})
_DEADLINE_MESSAGES: Final = frozenset(
    {"Job execution timed out", "Job execution timed out.", "Job deadline exceeded"}
)


@dataclass(frozen=True, slots=True)
class InlineDefaults:
    """The orchestrator settings the inline rules use (rrq.toml's names and defaults).

    ``function_policies`` are the ``[rrq.functions."<name>"]`` tables, by function name.
    """

    default_max_retries: int = 5
    base_retry_delay_seconds: float = 5
    max_retry_delay_seconds: float = 3600
    max_snoozes: int = 100
    function_policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_executions: int = DEFAULT_MAX_EXECUTIONS


@dataclass(frozen=True, slots=True)
class Policy:
    """A job's resolved retry policy (``EffectivePolicy`` of src/policy/resolve.ts)."""

    max_attempts: int | None
    backoff: str
    delay_seconds: float
    max_delay_seconds: float
    jitter: float
    delays: tuple[float, ...] | None
    retry_timeouts: bool
    non_retryable_error_types: frozenset[str]
    retry_for_seconds: float | None
    max_snoozes: int


def _overlay(base: Policy, spec: Mapping[str, Any]) -> Policy:
    delays = spec.get("delays")
    backoff = spec.get("backoff") or ("list" if delays is not None else base.backoff)
    types = spec.get("non_retryable_error_types")

    def pick(key: str, current: Any) -> Any:
        value = spec.get(key)
        return current if value is None else value

    return Policy(
        max_attempts=pick("max_attempts", base.max_attempts),
        backoff=backoff,
        delay_seconds=pick("delay_seconds", base.delay_seconds),
        max_delay_seconds=pick("max_delay_seconds", base.max_delay_seconds),
        jitter=pick("jitter", base.jitter),
        delays=tuple(delays) if delays is not None else base.delays,
        retry_timeouts=pick("retry_timeouts", base.retry_timeouts),
        non_retryable_error_types=(
            frozenset(types) if types is not None else base.non_retryable_error_types
        ),
        retry_for_seconds=pick("retry_for_seconds", base.retry_for_seconds),
        max_snoozes=pick("max_snoozes", base.max_snoozes),
    )


def resolve_policy(
    defaults: InlineDefaults, function_name: str, retry_policy: str | Mapping[str, Any] | None
) -> Policy:
    """The job's ``retry_policy`` (the stored JSON or the option) over its function's policy
    (exact name, else the part after ``runner#``) over the global defaults."""
    policy = Policy(
        max_attempts=None,
        backoff="exponential",
        delay_seconds=defaults.base_retry_delay_seconds,
        max_delay_seconds=defaults.max_retry_delay_seconds,
        jitter=0,
        delays=None,
        retry_timeouts=False,
        non_retryable_error_types=frozenset(),
        retry_for_seconds=None,
        max_snoozes=defaults.max_snoozes,
    )
    functions = defaults.function_policies
    spec = functions.get(function_name)
    if spec is None and "#" in function_name:
        spec = functions.get(function_name.split("#", 1)[1])
    if spec is not None:
        policy = _overlay(policy, spec)
    if isinstance(retry_policy, str):
        retry_policy = json.loads(retry_policy) if retry_policy else None
    if retry_policy:
        policy = _overlay(policy, retry_policy)
    return policy


def backoff_seconds(policy: Policy, k: int) -> float:
    """Seconds before retry number ``k`` (1-based), jitter included (``policyBackoffSeconds``)."""
    n = max(k, 1)
    if policy.backoff == "list" and policy.delays:
        delay = float(policy.delays[min(n, len(policy.delays)) - 1])
    elif policy.backoff == "fixed":
        delay = float(policy.delay_seconds)
    else:
        delay = min(policy.delay_seconds * 2 ** min(n - 1, 30), policy.max_delay_seconds)
    return delay * (1 - policy.jitter * random.random()) if policy.jitter > 0 else delay


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens after one attempt: ``complete``, ``retry`` / ``snooze`` after
    ``delay_seconds`` (not slept), or ``failed`` (the orchestrator's DLQ)."""

    kind: Literal["complete", "retry", "snooze", "failed"]
    result: Any = None
    delay_seconds: float = 0
    error: str | None = None
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptState:
    """The job as a decision sees it: ``current_retries`` before this attempt, the hash's
    ``max_retries``, snoozes so far and the (virtual) seconds since its first start."""

    current_retries: int
    max_retries: int | None
    snoozes: int
    elapsed_seconds: float
    timeout_seconds: int


def _retry_or_fail(
    state: AttemptState,
    policy: Policy,
    defaults: InlineDefaults,
    error: str,
    error_type: str | None,
    explicit_delay: float | None = None,
) -> Decision:
    max_attempts = policy.max_attempts
    if max_attempts is None:
        max_attempts = (
            state.max_retries if state.max_retries is not None else defaults.default_max_retries
        )
    if state.current_retries + 1 >= max_attempts:
        return Decision("failed", error=error, error_type=error_type)
    delay = (
        explicit_delay
        if explicit_delay is not None
        else backoff_seconds(policy, state.current_retries + 1)
    )
    budget = policy.retry_for_seconds
    if budget is not None and state.elapsed_seconds + delay > budget:
        message = f"{error} (retry budget of {budget:g}s exhausted)"
        return Decision("failed", error=message, error_type=error_type)
    return Decision("retry", delay_seconds=delay, error=error, error_type=error_type)


def decide(
    outcome: ExecutionOutcome, state: AttemptState, policy: Policy, defaults: InlineDefaults
) -> Decision:
    """The outcome table of ``decide()`` in src/orchestrator/decisions.ts."""
    if outcome.status == "success":
        return Decision("complete", result=outcome.result)
    message = outcome.error.message if outcome.error is not None else None
    error_type = (outcome.error.type if outcome.error is not None else None) or None
    if outcome.status == "retry":
        if outcome.snooze:
            if state.snoozes + 1 > policy.max_snoozes:
                error = f"Job snoozed more than {policy.max_snoozes} times"
                return Decision("failed", error=error, error_type=error_type)
            seconds = outcome.retry_after_seconds
            delay = float(seconds) if seconds is not None and seconds >= 0 else 0.0
            return Decision("snooze", delay_seconds=delay)
        return _retry_or_fail(
            state,
            policy,
            defaults,
            message or "Job requested retry",
            error_type,
            outcome.retry_after_seconds,
        )
    if outcome.status == "timeout":
        error = (
            f"Job timed out after {state.timeout_seconds}s."
            if not message or message in _DEADLINE_MESSAGES
            else message
        )
        if policy.retry_timeouts:
            return _retry_or_fail(state, policy, defaults, error, error_type or "timeout")
        return Decision("failed", error=error, error_type=error_type or "timeout")
    if error_type == "handler_not_found":
        return Decision("failed", error=message or "Handler not found", error_type=error_type)
    error = message or "Job failed"
    if error_type is not None and (
        error_type in _BUILT_IN_NON_RETRYABLE or error_type in policy.non_retryable_error_types
    ):
        error = f"{error} (not retried: error type '{error_type}' is non-retryable)"
        return Decision("failed", error=error, error_type=error_type)
    return _retry_or_fail(state, policy, defaults, error, error_type)
