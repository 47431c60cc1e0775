"""Exceptions raised by rrqkit."""

from __future__ import annotations

from typing import Final

__all__ = ["DECODE_ERROR_CODES", "DecodeError", "FrameTooLargeError", "ProducerError", "RetryJob"]

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


class ProducerError(ValueError):
    """A producer call failed. ``code`` is one of the codes of PRODUCER.md §6
    (``invalid_argument``, ``invalid_params``, ``payload_too_large``, ``conflicting_options``,
    ``invalid_config``, ``config_not_found``, ``duplicate_job_id``, ``rate_limited``,
    ``redis_error``). Nothing is written when validation fails.

    It subclasses :class:`ValueError` because RRQ's Python client raises ``ValueError``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ProducerError(code={self.code!r}, message={self.message!r})"


class BulkEnqueueError(ProducerError):
    """``enqueue_many`` failed part-way. ``written_ids`` are exactly the jobs that were written:
    the whole chunks of ``BULK_CHUNK_SIZE`` before the failing one, in order (empty for a batch
    of one chunk). The failing chunk and the ones after it wrote nothing, except that when the
    failing call's reply was lost (``redis_unavailable``) that chunk may have been written."""

    def __init__(self, code: str, message: str, written_ids: list[str]) -> None:
        super().__init__(code, message)
        self.written_ids = written_ids
