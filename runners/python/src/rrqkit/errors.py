"""Exceptions raised by rrqkit."""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "DECODE_ERROR_CODES",
    "DecodeError",
    "EnqueueVetoed",
    "FrameTooLargeError",
    "NonRetryableError",
    "ProducerError",
    "RetryJob",
    "SnoozeJob",
]

#: The stable decode error codes of RUNNER_PROTOCOL.md §11.
DECODE_ERROR_CODES: Final = frozenset(
    {
        "frame_empty",
        "frame_too_large",
        "frame_truncated",
        "invalid_utf8",
        "malformed_payload",
        "invalid_envelope",
        "unknown_frame_type",
        "invalid_frame",
    }
)


class DecodeError(Exception):
    """A frame could not be decoded. ``code`` is one of :data:`DECODE_ERROR_CODES`; any such
    error is fatal to the connection (the reader closes it without replying)."""

    def __init__(self, code: str, message: str) -> None:
        if code not in DECODE_ERROR_CODES:
            raise ValueError(f"unknown decode error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class FrameTooLargeError(ValueError):
    """Raised by writers asked to send a frame over the 16 MiB cap; nothing is written."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


class RetryJob(Exception):
    """Raise from a handler to ask for another attempt.

    ``retry_after_seconds`` is used verbatim by the orchestrator as the delay before the next
    attempt; without it the orchestrator applies its backoff.
    """

    def __init__(
        self, message: str | None = None, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(message or "")
        self.message = message
        self.retry_after_seconds = retry_after_seconds


class NonRetryableError(Exception):
    """Raise from a handler to fail the job for good: no further attempt.

    The outcome is an ``error`` with the reserved ``error.type`` ``"non_retryable"`` (subclasses
    too), the exception's message and its traceback (RUNNER_PROTOCOL.md §7). rrqkit's
    orchestrator moves the job to the dead-letter queue at once; RRQ's orchestrator does not
    know the type and retries it like any error.
    """


class SnoozeJob(Exception):
    """Raise from a handler to run the job again after ``seconds`` without using an attempt.

    The outcome is a ``retry`` with ``retry_after_seconds = seconds`` and ``snooze: true``.
    rrqkit's orchestrator does not count the attempt (up to ``max_snoozes`` per job); RRQ's
    orchestrator ignores the flag and counts it as an ordinary retry after ``seconds``.
    ``seconds`` must be a finite number >= 0 (a ValueError is raised here otherwise, so the
    mistake shows at the call, not as a strange delay).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = validate_snooze_seconds(seconds)
        super().__init__(f"Job snoozed for {self.seconds} s")


def validate_snooze_seconds(seconds: object) -> float:
    """``seconds`` itself (int or float) when it is a finite number >= 0; ValueError if not."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise ValueError(f"snooze seconds must be a finite number >= 0, got {seconds!r}")
    return seconds


class ProducerError(ValueError):
    """A producer call failed. ``code`` is one of the codes of PRODUCER.md §6
    (``invalid_argument``, ``invalid_params``, ``payload_too_large``, ``conflicting_options``,
    ``invalid_config``, ``config_not_found``, ``duplicate_job_id``, ``rate_limited``,
    ``enqueue_vetoed``, ``redis_error``). Nothing is written when validation fails.

    It subclasses :class:`ValueError` because RRQ's Python client raises ``ValueError``.

    When params break their job's contract (a producer with a ``catalog``), ``code`` is
    ``invalid_params`` and ``function_name`` and ``field`` are set: ``field`` is the JSON
    Pointer into the params of the first failing location (``"/to"``, ``"/items/0/qty"``,
    ``""`` for the params object itself) and ``message`` reads
    ``send_email: params/to 1 is not of type 'string'``. Both are None for every other error.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        function_name: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.function_name = function_name
        self.field = field

    def __repr__(self) -> str:
        extra = ""
        if self.field is not None:
            extra = f", function_name={self.function_name!r}, field={self.field!r}"
        return f"ProducerError(code={self.code!r}, message={self.message!r}{extra})"


class BulkEnqueueError(ProducerError):
    """``enqueue_many`` failed part-way. ``written_ids`` are exactly the jobs that were written:
    the whole chunks of ``BULK_CHUNK_SIZE`` before the failing one, in order (empty for a batch
    of one chunk). The failing chunk and the ones after it wrote nothing, except that when the
    failing call's reply was lost (``redis_unavailable``) that chunk may have been written."""

    def __init__(self, code: str, message: str, written_ids: list[str]) -> None:
        super().__init__(code, message)
        self.written_ids = written_ids


class EnqueueVetoed(ProducerError):
    """Raise (or return) from a producer middleware's ``before_enqueue`` to refuse the enqueue:
    nothing is written and later hooks do not run. The caller gets it with ``code``
    ``enqueue_vetoed``, ``function_name`` set, ``reason`` as given and the message
    ``enqueue of <function_name> vetoed: <reason>``."""

    def __init__(self, reason: str, *, function_name: str | None = None) -> None:
        message = reason
        if function_name is not None:
            message = f"enqueue of {function_name} vetoed: {reason}"
        super().__init__("enqueue_vetoed", message, function_name=function_name)
        self.reason = reason

    def for_function(self, function_name: str) -> EnqueueVetoed:
        """This veto naming ``function_name`` (itself when it already names one)."""
        if self.function_name is not None:
            return self
        return EnqueueVetoed(self.reason, function_name=function_name)

    def __repr__(self) -> str:
        return f"EnqueueVetoed(reason={self.reason!r}, function_name={self.function_name!r})"
