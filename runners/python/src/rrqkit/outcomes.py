"""Helpers that build :class:`~rrqkit.models.ExecutionOutcome` values.

A handler may return any of these; ``job_id`` and ``request_id`` are left empty and filled in by
the runtime from the request. Returning a plain value is the same as ``success(value)``.
"""

from __future__ import annotations

from typing import Any

from .errors import validate_snooze_seconds
from .models import ExecutionOutcome, OutcomeError
from .tracebacks import cap_traceback

__all__ = [
    "cancelled",
    "error",
    "handler_not_found",
    "non_retryable",
    "retry",
    "snooze",
    "success",
    "timeout",
]


def success(result: Any = None) -> ExecutionOutcome:
    return ExecutionOutcome(status="success", result=result)


def error(
    message: str,
    *,
    type: str | None = None,
    code: str | None = None,
    details: Any = None,
    traceback: str | None = None,
) -> ExecutionOutcome:
    """An ordinary failure: the orchestrator retries with backoff until attempts run out.
    ``traceback`` is capped at 8 KiB (RUNNER_PROTOCOL.md §7.1)."""
    return ExecutionOutcome(
        status="error",
        error=OutcomeError(
            message=message,
            type=type,
            code=code,
            details=details,
            traceback=None if traceback is None else cap_traceback(traceback),
        ),
    )


def retry(message: str | None = None, *, after_seconds: float | None = None) -> ExecutionOutcome:
    """Ask for another attempt, after ``after_seconds`` (verbatim) or the orchestrator's
    backoff."""
    return ExecutionOutcome(
        status="retry",
        error=OutcomeError(message=message) if message is not None else None,
        retry_after_seconds=after_seconds,
    )


def non_retryable(message: str, *, traceback: str | None = None) -> ExecutionOutcome:
    """A permanent failure: rrqkit's orchestrator does not retry it (reserved ``error.type``
    ``non_retryable``). Raising :class:`~rrqkit.NonRetryableError` gives the same outcome."""
    return error(message, type="non_retryable", traceback=traceback)


def snooze(seconds: float) -> ExecutionOutcome:
    """Run the job again after ``seconds`` without using an attempt (``snooze: true``).
    Raising :class:`~rrqkit.SnoozeJob` gives the same outcome. ValueError unless ``seconds``
    is a finite number >= 0."""
    delay = validate_snooze_seconds(seconds)
    if isinstance(delay, float) and delay.is_integer():
        delay = int(delay)  # written as 30, not 30.0, as the Node and Rust runtimes write it
    return ExecutionOutcome(
        status="retry",
        error=OutcomeError(message="Job snoozed"),
        retry_after_seconds=delay,
        snooze=True,
    )


def timeout(message: str | None = None, *, traceback: str | None = None) -> ExecutionOutcome:
    return ExecutionOutcome(
        status="timeout",
        error=OutcomeError(
            message=message or "Job execution timed out",
            type="timeout",
            traceback=None if traceback is None else cap_traceback(traceback),
        ),
    )


def handler_not_found(function_name: str) -> ExecutionOutcome:
    return ExecutionOutcome(
        status="error",
        error=OutcomeError(
            message=f"No handler registered for function '{function_name}'",
            type="handler_not_found",
        ),
    )


def cancelled() -> ExecutionOutcome:
    return ExecutionOutcome(
        status="error", error=OutcomeError(message="Job cancelled", type="cancelled")
    )


_DEFAULT_ERRORS = {
    "retry": ("Job requested retry", None),
    "timeout": ("Job execution timed out", "timeout"),
    "error": ("Job failed", None),
}


def with_default_error(outcome: ExecutionOutcome) -> ExecutionOutcome:
    """Fill in the error a non-success outcome lacks (RUNNER_PROTOCOL.md §7)."""
    default = _DEFAULT_ERRORS.get(outcome.status)
    if outcome.snooze and outcome.status == "retry":
        default = ("Job snoozed", None)
    if outcome.error is None and default is not None:
        outcome.error = OutcomeError(message=default[0], type=default[1])
    return outcome
