"""Typed payloads of runner protocol v2 (see schemas/v2/*.json).

Field order in every dataclass is the schema order, which is also the order ``to_wire`` emits.
Readers treat an absent optional field like ``null`` and ignore unknown fields; ``from_wire``
raises :class:`rrqkit.errors.DecodeError` with code ``invalid_frame`` when a required field is
missing or a field has the wrong JSON type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import DecodeError
from .wiretime import parse_wire_time

PROTOCOL_VERSION: Final = "2"
OUTCOME_STATUSES: Final = frozenset({"success", "retry", "timeout", "error"})
#: Hello tags (RUNNER_PROTOCOL.md §8.6): at most 32, each 1..64 characters of this set.
MAX_TAGS: Final = 32
TAG_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:/=-]{1,64}")
#: Limits of the live frames (§13.2, §13.3): a progress message in characters, its detail in
#: bytes of compact JSON, an output chunk's data in bytes of UTF-8.
MAX_PROGRESS_MESSAGE_CHARS: Final = 1024
MAX_PROGRESS_DETAIL_BYTES: Final = 4096
MAX_OUTPUT_DATA_BYTES: Final = 65536
OUTPUT_STREAMS: Final = frozenset({"handler", "stdout", "stderr"})
#: A request's ``live`` limits when it leaves them out (§13.1).
DEFAULT_PROGRESS_INTERVAL_MS: Final = 200
DEFAULT_OUTPUT_MAX_BYTES: Final = 8 * 1024 * 1024

__all__ = [
    "DEFAULT_OUTPUT_MAX_BYTES",
    "DEFAULT_PROGRESS_INTERVAL_MS",
    "MAX_OUTPUT_DATA_BYTES",
    "MAX_PROGRESS_DETAIL_BYTES",
    "MAX_PROGRESS_MESSAGE_CHARS",
    "MAX_TAGS",
    "OUTCOME_STATUSES",
    "OUTPUT_STREAMS",
    "PROTOCOL_VERSION",
    "CancelRequest",
    "ExecutionContext",
    "ExecutionOutcome",
    "ExecutionRequest",
    "Hello",
    "LiveOptions",
    "OutcomeError",
    "OutputChunk",
    "Ping",
    "ProgressUpdate",
    "normalize_tags",
]

_MISSING: Final = object()


def _bad(where: str, key: str, expected: str) -> DecodeError:
    return DecodeError("invalid_frame", f"{where}.{key} must be {expected}")


def _checked_time(value: str | None, key: str) -> None:
    """A context timestamp must parse as RFC 3339: anything else is ``invalid_frame``
    (RUNNER_PROTOCOL.md §10.6, §11), never a silently missing deadline."""
    if value is not None:
        try:
            parse_wire_time(value)
        except ValueError:
            raise _bad("context", key, "an RFC 3339 timestamp") from None


def _get(data: Mapping[str, Any], key: str) -> Any:
    """Absent and null read the same."""
    return data.get(key)


def _req_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise DecodeError("invalid_frame", f"{where}.{key} is required")
    if not isinstance(value, str):
        raise _bad(where, key, "a string")
    return value


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = _get(data, key)
    if value is None or isinstance(value, str):
        return value
    raise _bad(where, key, "a string or null")


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _req_int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise DecodeError("invalid_frame", f"{where}.{key} is required")
    if not _is_integer(value):
        raise _bad(where, key, "an integer")
    return int(value)


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = _get(data, key)
    if value is None:
        return None
    if not _is_integer(value):
        raise _bad(where, key, "an integer or null")
    return int(value)


def _opt_str_map(data: Mapping[str, Any], key: str, where: str) -> dict[str, str] | None:
    value = _get(data, key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _bad(where, key, "an object of strings or null")
    return dict(value)


def _all_str_values(value: Any) -> bool:
    return type(value) is dict and all(type(item) is str for item in value.values())


def _req_map(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise DecodeError("invalid_frame", f"{where}.{key} is required")
    if not isinstance(value, dict):
        raise _bad(where, key, "an object")
    return value


@dataclass(slots=True)
class ExecutionContext:
    """What the orchestrator knows about the job and this attempt."""

    job_id: str
    attempt: int
    enqueue_time: str
    queue_name: str
    deadline: str | None = None
    trace_context: dict[str, str] | None = None
    correlation_context: dict[str, str] | None = None
    worker_id: str | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ExecutionContext:
        fast = cls._from_common_wire(data)
        if fast is not None:
            return fast
        where = "context"
        enqueue_time = _req_str(data, "enqueue_time", where)
        deadline = _opt_str(data, "deadline", where)
        _checked_time(enqueue_time, "enqueue_time")
        _checked_time(deadline, "deadline")
        return cls(
            job_id=_req_str(data, "job_id", where),
            attempt=_req_int(data, "attempt", where),
            enqueue_time=enqueue_time,
            queue_name=_req_str(data, "queue_name", where),
            deadline=deadline,
            trace_context=_opt_str_map(data, "trace_context", where),
            correlation_context=_opt_str_map(data, "correlation_context", where),
            worker_id=_opt_str(data, "worker_id", where),
        )

    @classmethod
    def _from_common_wire(cls, data: Mapping[str, Any]) -> ExecutionContext | None:
        """The context of every request an orchestrator sends, read without the per-field
        helpers (a request costs tens of microseconds in Python); None for anything else,
        which :meth:`from_wire` reads (and reports) field by field."""
        get = data.get
        job_id, attempt, queue_name = get("job_id"), get("attempt"), get("queue_name")
        enqueue_time, deadline, worker_id = get("enqueue_time"), get("deadline"), get("worker_id")
        trace, correlation = get("trace_context"), get("correlation_context")
        if not (
            type(job_id) is str
            and type(attempt) is int
            and type(queue_name) is str
            and type(enqueue_time) is str
            and (deadline is None or type(deadline) is str)
            and (worker_id is None or type(worker_id) is str)
            and (trace is None or _all_str_values(trace))
            and (correlation is None or _all_str_values(correlation))
        ):
            return None
        try:
            parse_wire_time(enqueue_time)
            if deadline is not None:
                parse_wire_time(deadline)
        except ValueError:
            return None
        return cls(
            job_id,
            attempt,
            enqueue_time,
            queue_name,
            deadline,
            None if trace is None else dict(trace),
            None if correlation is None else dict(correlation),
            worker_id,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "enqueue_time": self.enqueue_time,
            "queue_name": self.queue_name,
            "deadline": self.deadline,
            "trace_context": self.trace_context,
            "correlation_context": self.correlation_context,
            "worker_id": self.worker_id,
        }


@dataclass(slots=True)
class ExecutionRequest:
    """One attempt of one job. ``params`` is always a dict (absent or null reads as ``{}``)."""

    request_id: str
    job_id: str
    function_name: str
    context: ExecutionContext
    params: dict[str, Any] = field(default_factory=dict)
    protocol_version: str = PROTOCOL_VERSION
    #: rrqkit addition (§13.1): which live frames this request may send; None = none.
    live: LiveOptions | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ExecutionRequest:
        get = data.get
        request_id, job_id, function_name = get("request_id"), get("job_id"), get("function_name")
        params, context, version = get("params"), get("context"), get("protocol_version")
        if (
            type(request_id) is str
            and request_id
            and type(job_id) is str
            and job_id
            and type(function_name) is str
            and (params is None or type(params) is dict)
            and type(context) is dict
            and (version is None or type(version) is str)
            and get("live") is None
        ):
            # What orchestrators send: checked inline; anything else is read (and reported)
            # field by field below.
            fast = ExecutionContext._from_common_wire(context)
            if fast is not None:
                return cls(
                    request_id,
                    job_id,
                    function_name,
                    fast,
                    params if params is not None else {},
                    version if version is not None else "2",
                )
        where = "request"
        protocol_version = _opt_str(data, "protocol_version", where)
        request_id = _req_str(data, "request_id", where)
        job_id = _req_str(data, "job_id", where)
        if request_id == "" or job_id == "":
            # The schema's minLength: an empty id cannot correlate an outcome.
            raise _bad(where, "request_id" if request_id == "" else "job_id", "a non-empty string")
        function_name = _req_str(data, "function_name", where)
        params = _get(data, "params")
        if params is not None and not isinstance(params, dict):
            raise _bad(where, "params", "an object or null")
        context = ExecutionContext.from_wire(_req_map(data, "context", where))
        live = _get(data, "live")
        return cls(
            request_id=request_id,
            job_id=job_id,
            function_name=function_name,
            context=context,
            params=params if params is not None else {},
            protocol_version=protocol_version if protocol_version is not None else "2",
            live=None if live is None else LiveOptions.from_wire(live),
        )

    def to_wire(self) -> dict[str, Any]:
        wire = {
            "protocol_version": self.protocol_version,
            "request_id": self.request_id,
            "job_id": self.job_id,
            "function_name": self.function_name,
            "params": self.params,
            "context": self.context.to_wire(),
        }
        # Only when set, so a request without it is byte-for-byte RRQ's.
        if self.live is not None:
            wire["live"] = self.live.to_wire()
        return wire


@dataclass(slots=True)
class LiveOptions:
    """A request's ``live`` (rrqkit addition, §13.1): the live frames its handler may send.

    The orchestrator sets it only on a connection whose hello listed the features. Absent or
    null limits read as their defaults, and are written with their values.
    """

    progress: bool = False
    output: bool = False
    #: at most one ``progress`` frame per this many milliseconds (the latest value wins)
    progress_interval_ms: int = DEFAULT_PROGRESS_INTERVAL_MS
    #: output data bytes this request may send; beyond it data is dropped (one truncated frame)
    output_max_bytes: int = DEFAULT_OUTPUT_MAX_BYTES

    @classmethod
    def from_wire(cls, data: Any) -> LiveOptions:
        where = "request.live"
        if not isinstance(data, dict):
            raise DecodeError("invalid_frame", f"{where} must be an object or null")
        flags: dict[str, bool] = {}
        for key in ("progress", "output"):
            value = _get(data, key)
            if value is not None and not isinstance(value, bool):
                raise _bad(where, key, "a boolean")
            flags[key] = bool(value)
        limits: dict[str, int] = {}
        for key, default in (
            ("progress_interval_ms", DEFAULT_PROGRESS_INTERVAL_MS),
            ("output_max_bytes", DEFAULT_OUTPUT_MAX_BYTES),
        ):
            number = _opt_int(data, key, where)
            if number is not None and number < 0:
                raise _bad(where, key, "an integer >= 0")
            limits[key] = default if number is None else number
        return cls(
            progress=flags["progress"],
            output=flags["output"],
            progress_interval_ms=limits["progress_interval_ms"],
            output_max_bytes=limits["output_max_bytes"],
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "progress": self.progress,
            "output": self.output,
            "progress_interval_ms": self.progress_interval_ms,
            "output_max_bytes": self.output_max_bytes,
        }


@dataclass(slots=True)
class OutcomeError:
    """Why an attempt did not succeed. ``type`` is an open set; reserved values are
    ``handler_not_found``, ``cancelled``, ``timeout`` and ``non_retryable``."""

    message: str
    type: str | None = None
    code: str | None = None
    details: Any = None
    #: rrqkit addition: the raised exception's traceback, at most 8 KiB (§7.1); None if none.
    traceback: str | None = None

    @classmethod
    def from_wire(cls, data: Any) -> OutcomeError:
        if not isinstance(data, dict):
            raise DecodeError("invalid_frame", "response.error must be an object or null")
        where = "response.error"
        return cls(
            message=_req_str(data, "message", where),
            type=_opt_str(data, "type", where),
            code=_opt_str(data, "code", where),
            details=_get(data, "details"),
            traceback=_opt_str(data, "traceback", where),
        )

    def to_wire(self) -> dict[str, Any]:
        wire = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "details": self.details,
        }
        # Written only when present, so an outcome without one is byte-for-byte RRQ's.
        if self.traceback is not None:
            wire["traceback"] = self.traceback
        return wire


@dataclass(slots=True)
class ExecutionOutcome:
    """The one reply to a request.

    Handlers may return one of these (built directly or with :mod:`rrqkit.outcomes`); the
    runtime fills in ``job_id`` and ``request_id`` from the request when they are empty.
    """

    job_id: str | None = None
    request_id: str | None = None
    status: str = "success"
    result: Any = None
    error: OutcomeError | None = None
    retry_after_seconds: float | None = None
    #: rrqkit addition (§7.2): a ``retry`` that does not use an attempt. Written on the wire
    #: only when true, so every other outcome is byte-for-byte RRQ's.
    snooze: bool = False

    def __post_init__(self) -> None:
        if self.status not in OUTCOME_STATUSES:
            raise ValueError(f"invalid outcome status {self.status!r}")

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ExecutionOutcome:
        where = "response"
        job_id = _req_str(data, "job_id", where)
        if "request_id" not in data:
            raise DecodeError("invalid_frame", "response.request_id is required")
        request_id = _opt_str(data, "request_id", where)
        status = _req_str(data, "status", where)
        if status not in OUTCOME_STATUSES:
            raise DecodeError("invalid_frame", f"response.status {status!r} is not a known status")
        raw_error = _get(data, "error")
        retry_after = _get(data, "retry_after_seconds")
        if retry_after is not None and not _is_number(retry_after):
            raise _bad(where, "retry_after_seconds", "a number or null")
        snooze = _get(data, "snooze")
        if snooze is not None and not isinstance(snooze, bool):
            raise _bad(where, "snooze", "a boolean")
        return cls(
            job_id=job_id,
            request_id=request_id,
            status=status,
            result=_get(data, "result"),
            error=None if raw_error is None else OutcomeError.from_wire(raw_error),
            retry_after_seconds=retry_after,
            snooze=bool(snooze),
        )

    def to_wire(self) -> dict[str, Any]:
        wire = {
            "job_id": self.job_id,
            "request_id": self.request_id,
            "status": self.status,
            "result": self.result,
            "error": None if self.error is None else self.error.to_wire(),
            "retry_after_seconds": self.retry_after_seconds,
        }
        if self.snooze:
            wire["snooze"] = True
        return wire


@dataclass(slots=True)
class CancelRequest:
    """Abort one request (``request_id`` set) or every in-flight request of ``job_id``."""

    job_id: str
    request_id: str | None = None
    protocol_version: str = PROTOCOL_VERSION
    hard_kill: bool = False

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CancelRequest:
        where = "cancel"
        protocol_version = _opt_str(data, "protocol_version", where)
        job_id = _req_str(data, "job_id", where)
        request_id = _opt_str(data, "request_id", where)
        hard_kill = _get(data, "hard_kill")
        if hard_kill is not None and not isinstance(hard_kill, bool):
            raise _bad(where, "hard_kill", "a boolean")
        return cls(
            job_id=job_id,
            request_id=request_id,
            protocol_version=protocol_version if protocol_version is not None else "2",
            hard_kill=bool(hard_kill),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"protocol_version": self.protocol_version, "job_id": self.job_id}
        if self.request_id is not None:  # a job-wide cancel omits request_id, as RRQ does
            wire["request_id"] = self.request_id
        wire["hard_kill"] = self.hard_kill
        return wire


@dataclass(slots=True)
class Hello:
    """A runner's announcement (rrqkit extension, only sent when RRQ_RUNNER_HELLO=1)."""

    runtime: str
    features: list[str]
    runtime_version: str | None = None
    pid: int | None = None
    max_in_flight: int | None = None
    protocol_version: str = PROTOCOL_VERSION
    #: capability tags (§8.6), sorted and unique; None or empty = none (then not written)
    tags: list[str] | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Hello:
        where = "hello"
        protocol_version = _req_str(data, "protocol_version", where)
        runtime = _req_str(data, "runtime", where)
        runtime_version = _opt_str(data, "runtime_version", where)
        pid = _opt_int(data, "pid", where)
        max_in_flight = _opt_int(data, "max_in_flight", where)
        features = data.get("features", _MISSING)
        if features is _MISSING or features is None:
            raise DecodeError("invalid_frame", "hello.features is required")
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise _bad(where, "features", "an array of strings")
        tags = _get(data, "tags")
        if tags is not None:
            if not isinstance(tags, list) or len(tags) > MAX_TAGS:
                raise _bad(where, "tags", f"an array of at most {MAX_TAGS} tags")
            for tag in tags:
                if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
                    raise _bad(where, "tags", "tags of 1-64 characters A-Z a-z 0-9 _ . : / = -")
            if len(set(tags)) != len(tags):
                raise _bad(where, "tags", "an array of distinct tags")
        return cls(
            runtime=runtime,
            features=list(features),
            runtime_version=runtime_version,
            pid=pid,
            max_in_flight=max_in_flight,
            protocol_version=protocol_version,
            tags=None if tags is None else list(tags),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "protocol_version": self.protocol_version,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "pid": self.pid,
            "max_in_flight": self.max_in_flight,
            "features": list(self.features),
        }
        if self.tags:
            wire["tags"] = list(self.tags)
        return wire


def normalize_tags(tags: Any) -> list[str]:
    """``tags`` checked (§8.6: at most 32, each 1..64 of ``A-Za-z0-9_.:/=-``), deduplicated and
    sorted. Raises ValueError (TypeError for a non-iterable or a non-string tag)."""
    if isinstance(tags, str):
        raise TypeError("tags must be an iterable of strings, not one string")
    unique: set[str] = set()
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"tag {tag!r} is not a string")
        if not TAG_PATTERN.fullmatch(tag):
            raise ValueError(
                f"invalid tag {tag!r}: 1-64 characters of A-Z a-z 0-9 _ . : / = - expected"
            )
        unique.add(tag)
    if len(unique) > MAX_TAGS:
        raise ValueError(f"{len(unique)} tags: at most {MAX_TAGS} are allowed")
    return sorted(unique)


@dataclass(slots=True)
class Ping:
    """Payload of ``ping`` and ``pong`` frames."""

    nonce: str

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Ping:
        return cls(nonce=_req_str(data, "nonce", "ping"))

    def to_wire(self) -> dict[str, Any]:
        return {"nonce": self.nonce}


def _req_id(data: Mapping[str, Any], where: str) -> str:
    request_id = _req_str(data, "request_id", where)
    if request_id == "":
        raise _bad(where, "request_id", "a non-empty string")
    return request_id


def _progress_value(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= 1:
        raise _bad(where, "progress", "a number from 0 to 1 or null")
    return value  # type: ignore[no-any-return]


@dataclass(slots=True)
class ProgressUpdate:
    """Payload of a ``progress`` frame (rrqkit addition, §13.2; runner → orchestrator).

    Readers do not check the size of ``detail``: writers refuse one over 4096 bytes of JSON.
    """

    job_id: str
    request_id: str
    #: fraction done, 0 to 1; None = unknown (only the message or detail changed)
    progress: float | None = None
    message: str | None = None
    detail: Any = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ProgressUpdate:
        where = "progress"
        job_id = _req_str(data, "job_id", where)
        request_id = _req_id(data, where)
        value = _progress_value(_get(data, "progress"), where)
        message = _opt_str(data, "message", where)
        if message is not None and len(message) > MAX_PROGRESS_MESSAGE_CHARS:
            raise _bad(where, "message", f"at most {MAX_PROGRESS_MESSAGE_CHARS} characters")
        return cls(job_id, request_id, value, message, _get(data, "detail"))

    def to_wire(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "request_id": self.request_id,
            "progress": self.progress,
            "message": self.message,
            "detail": self.detail,
        }


@dataclass(slots=True)
class OutputChunk:
    """Payload of an ``output`` frame (rrqkit addition, §13.3; runner → orchestrator).

    ``seq`` counts a request's output frames from 0. The one frame with ``truncated`` true says
    that ``dropped_bytes`` bytes of output were dropped at the request's ``output_max_bytes``.
    """

    job_id: str
    request_id: str
    seq: int
    stream: str
    data: str
    truncated: bool = False
    dropped_bytes: int = 0

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> OutputChunk:
        where = "output"
        job_id = _req_str(data, "job_id", where)
        request_id = _req_id(data, where)
        seq = _req_int(data, "seq", where)
        if seq < 0:
            raise _bad(where, "seq", "an integer >= 0")
        stream = _req_str(data, "stream", where)
        if stream not in OUTPUT_STREAMS:
            raise _bad(where, "stream", '"handler", "stdout" or "stderr"')
        text = _req_str(data, "data", where)
        if len(text.encode("utf-8", "surrogatepass")) > MAX_OUTPUT_DATA_BYTES:
            raise _bad(where, "data", f"at most {MAX_OUTPUT_DATA_BYTES} bytes of UTF-8")
        truncated = _get(data, "truncated")
        if truncated is not None and not isinstance(truncated, bool):
            raise _bad(where, "truncated", "a boolean")
        dropped = _opt_int(data, "dropped_bytes", where)
        if dropped is not None and dropped < 0:
            raise _bad(where, "dropped_bytes", "an integer >= 0")
        return cls(job_id, request_id, seq, stream, text, bool(truncated), dropped or 0)

    def to_wire(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "request_id": self.request_id,
            "seq": self.seq,
            "stream": self.stream,
            "data": self.data,
            "truncated": self.truncated,
            "dropped_bytes": self.dropped_bytes,
        }
