"""The producer: enqueue jobs into Redis exactly as RRQ 0.11 does (PRODUCER.md).

Every enqueue runs one of the shared Lua scripts (``rrqkit/lua/*.lua``, byte-identical copies of
``src/store/lua``), so all writes of one enqueue are atomic. Validation happens before any I/O:
a call that fails validation writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

from .canonical import canonical_json, normalize_json
from .codec import MAX_PARAMS_DEPTH, nests_deeper_than
from .config import (
    ProducerConfig,
    as_int,
    load_toml,
    normalize_queue_name,
    redact_dsn,
    resolve_config_path,
)
from .errors import BulkEnqueueError, ProducerError
from .flow_options import FLOW_OPTION_NAMES, flow_control_fields
from .middleware import (
    PendingEnqueue,
    check_producer_middleware,
    run_after_enqueue,
    run_before_enqueue,
)
from .retry_policy import check_retry_policy, retry_policy_json
from .timeutil import format_rfc3339, now_ns, to_epoch_ns

if TYPE_CHECKING:
    from .contracts import JobCatalog

__all__ = [
    "CANCEL_REFUSALS",
    "MAX_PARAMS_BYTES",
    "CancelResult",
    "JobResult",
    "Producer",
    "load_toml_catalog",
]

JOB_PREFIX: Final = "rrq:job:"
#: Jobs per enqueue-batch-n.lua call in ``enqueue_many``: one call is all-or-nothing; bigger
#: batches are split so one script does not hold Redis for long.
BULK_CHUNK_SIZE: Final = 500
IDEMPOTENCY_PREFIX: Final = "rrq:idempotency:"
RATE_LIMIT_PREFIX: Final = "rrq:rate_limit:"
DEBOUNCE_PREFIX: Final = "rrq:debounce:"
EVENTS_PREFIX: Final = "rrq:events:job:"
#: 16 MiB frame cap minus 64 KiB for the envelope.
MAX_PARAMS_BYTES: Final = 16 * 1024 * 1024 - 64 * 1024
JOB_STATUSES: Final = frozenset(
    {"PENDING", "ACTIVE", "COMPLETED", "FAILED", "RETRYING", "CANCELLED"}
)
TERMINAL_STATUSES: Final = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
_CORRELATION_MAX_KEYS: Final = 16
_CORRELATION_MAX_KEY_BYTES: Final = 64
_CORRELATION_MAX_VALUE_BYTES: Final = 256

OPTION_NAMES: Final = frozenset(
    {
        "params",
        "queue_name",
        "job_id",
        "unique_key",
        "unique_ttl_seconds",
        "max_retries",
        "job_timeout_seconds",
        "result_ttl_seconds",
        "trace_context",
        "defer_until",
        "defer_by_seconds",
        "enqueue_time",
        "rate_limit_key",
        "rate_limit_seconds",
        "debounce_key",
        "debounce_seconds",
        # job control (issue 20): additive hash fields, written only when given
        "retry",
        "expires_at",
        "expires_in",
        # flow control (issue 22): concurrency_key, concurrency_limit, start_rate, limit,
        # ordering_key; additive hash fields, written only when given
        *FLOW_OPTION_NAMES,
    }
)

Mode = Literal["enqueue", "rate_limit", "debounce"]


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What :meth:`Producer.cancel` did.

    ``cancelled`` is True when this call cancelled the job (waiting in its queue, or running on
    an rrqkit orchestrator, which is then told to stop the handler). ``status`` is the job's
    status after the call: ``"CANCELLED"`` when cancelled, its unchanged status when it could
    not be cancelled, None when there is no such job. ``reason`` says why not (one of
    :data:`CANCEL_REFUSALS`' names; None when cancelled).
    """

    cancelled: bool
    status: str | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The adapter's reply form: ``reason`` only when there is one."""
        out: dict[str, Any] = {"cancelled": self.cancelled, "status": self.status}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


#: job-cancel-2.lua's refusal codes and their names, the same in every producer and the data
#: API (src/control/cancel.ts): not_found (no such job), not_waiting (its status allows no
#: cancel), no_queue (a waiting job whose hash names no queue), not_in_queue (a waiting job
#: missing from its queue: being claimed right now), running_unfenced (running on RRQ's own
#: orchestrator, which does not fence its writes: its late success would overwrite the cancel).
CANCEL_REFUSALS: Final = {
    0: "not_waiting",
    -1: "not_found",
    -2: "no_queue",
    -3: "not_in_queue",
    -4: "running_unfenced",
}


_FINAL: Final = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


def _field_int(text: str | None) -> int:
    """A hash field or stream value as an int (0 when missing or not an integer)."""
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def _output_entry(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """One entry of an output stream (``rrq:output:<job>:<run>``) as :meth:`Producer.tail`
    yields it."""
    kind = fields.get("k")
    if kind == "truncated":
        return {"id": entry_id, "kind": "truncated", "dropped": _field_int(fields.get("dropped"))}
    if kind == "closed":
        return {"id": entry_id, "kind": "closed", "status": fields.get("status", "")}
    shown = "err" if kind == "err" else "log" if kind == "log" else "out"
    return {"id": entry_id, "kind": shown, "data": fields.get("d", "")}


def _lua(name: str) -> str:
    return resources.files("rrqkit").joinpath("lua", name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A job's latest progress (live jobs, issue 23), as its handler last reported it."""

    #: 0..1, or None when only a message was reported
    progress: float | None
    message: str | None
    #: any JSON value the handler attached, or None
    detail: Any
    #: when the orchestrator stored it (RFC 3339)
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "progress": self.progress,
            "message": self.message,
            "detail": self.detail,
            "at": self.at,
        }


def _progress_of(data: Mapping[str, str]) -> JobProgress | None:
    """The progress fields of a job hash (as the TS producer reads them), or None."""
    at = data.get("progress_at")
    if not at:
        return None
    import json

    raw = data.get("progress")
    try:
        value: float | None = float(raw) if raw else None
    except ValueError:
        value = None
    if value is not None and not math.isfinite(value):
        value = None
    detail: Any = None
    if data.get("progress_detail"):
        try:
            detail = json.loads(data["progress_detail"])
        except ValueError:
            detail = data["progress_detail"]
    return JobProgress(value, data.get("progress_message") or None, detail, at)


@dataclass(slots=True)
class JobResult:
    """A job's state as seen by a producer."""

    status: str
    result: Any = None
    last_error: str | None = None
    #: rrqkit live jobs: the handler's latest progress; None when it reported none
    progress: JobProgress | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"status": self.status, "result": self.result, "last_error": self.last_error}
        # only when present, so the snapshots of jobs without progress are unchanged
        if self.progress is not None:
            out["progress"] = self.progress.to_dict()
        return out


@dataclass(slots=True)
class _Plan:
    mode: Mode
    job_id: str
    keys: list[str]
    args: list[str]
    #: rrqkit's additive hash fields (retry_policy, expires_at, the flow-control fields) as
    #: name/value pairs
    extra: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Validation helpers


def _invalid(message: str) -> ProducerError:
    return ProducerError("invalid_argument", message)


def _name(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{label} must be a string")
    if not value.strip():
        raise _invalid(f"{label} cannot be empty")
    return value


def _int(value: Any, label: str, minimum: int | None, description: str) -> int:
    number = as_int(value)
    if number is None or (minimum is not None and number < minimum):
        raise _invalid(f"{label} must be {description}")
    return number


def _finite(value: Any, label: str, *, positive: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > 0 if positive else value >= 0):
        return float(value)
    bound = "> 0" if positive else ">= 0"
    raise _invalid(f"{label} must be a finite number {bound}")


def _timestamp(value: Any, label: str) -> int:
    """Epoch ns of a timestamp option, truncated to microseconds as RRQ's producer does."""
    if isinstance(value, datetime | str):
        try:
            epoch_ns = to_epoch_ns(value)
        except (ValueError, OverflowError):
            pass
        else:
            return epoch_ns - epoch_ns % 1000
    raise _invalid(f"{label} must be an RFC 3339 timestamp")


def _trace_context(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _invalid("trace_context must be a map of string to string")
    return dict(value)


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


def _correlation_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return canonical_json(value)
    return None


def _correlation_context(
    mappings: Mapping[str, str], params: Mapping[str, Any], trace: Mapping[str, str]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for attribute, path in mappings.items():
        if len(out) >= _CORRELATION_MAX_KEYS:
            break
        if not attribute or len(attribute.encode("utf-8")) > _CORRELATION_MAX_KEY_BYTES:
            continue
        value: str | None
        if attribute in trace:
            value = trace[attribute] or None
        else:
            node: Any = params
            remainder = path[len("params.") :] if path.startswith("params.") else path
            for segment in remainder.split("."):
                node = node.get(segment) if isinstance(node, Mapping) else None
                if node is None:
                    break
            value = _correlation_value(node)
        if value is not None:
            out[attribute] = _truncate_utf8(value, _CORRELATION_MAX_VALUE_BYTES)
    return out


def _job_control_fields(
    opts: Mapping[str, Any], now: int, max_retries: int
) -> tuple[list[str], int]:
    """The ``retry`` and ``expires_at``/``expires_in`` options (issue 20) as the additive hash
    fields they write (``retry_policy``, ``expires_at``, as name/value pairs, nothing when not
    given), and the ``max_retries`` to store: ``retry.max_attempts`` when given, so RRQ's
    orchestrator applies the same count. ``now`` is this process's clock (epoch ns)."""
    extra: list[str] = []
    if "retry" in opts:
        policy = opts["retry"]
        problems = check_retry_policy(policy, "retry")
        if problems:
            raise _invalid("; ".join(problems))
        attempts = policy.get("max_attempts")
        if attempts is not None:
            attempts = int(attempts)
            if "max_retries" in opts and max_retries != attempts:
                raise ProducerError(
                    "conflicting_options",
                    f"max_retries ({max_retries}) and retry.max_attempts ({attempts}) differ; "
                    "give one",
                )
            max_retries = attempts
        extra += ["retry_policy", retry_policy_json(policy)]
    if "expires_at" in opts and "expires_in" in opts:
        raise ProducerError(
            "conflicting_options", "expires_at and expires_in are mutually exclusive; give one"
        )
    expires_ns: int | None = None
    if "expires_at" in opts:
        expires_ns = _timestamp(opts["expires_at"], "expires_at")
        if expires_ns <= now_ns():
            raise _invalid("expires_at is in the past")
    elif "expires_in" in opts:
        expires_in = _finite(opts["expires_in"], "expires_in", positive=True)
        # by this process's clock (PRODUCER.md §3.3), also when enqueue_time is given
        expires_ns = now + math.ceil(expires_in * 1000) * 1_000_000
    if expires_ns is not None:
        extra += ["expires_at", format_rfc3339(expires_ns)]
    return extra, max_retries


def load_toml_catalog(path: str | os.PathLike[str] | None = None) -> JobCatalog | None:
    """The job catalog the resolved ``rrq.toml`` names in ``job_catalog`` (a directory,
    relative to the file), or None when it names none. A catalog that cannot be loaded is
    ``ProducerError`` code ``invalid_config`` (its message lists every problem)."""
    from .contracts import CatalogError, catalog_path_from_toml, load_job_catalog

    resolved = resolve_config_path(path)
    try:
        directory = catalog_path_from_toml(resolved)
        return None if directory is None else load_job_catalog(directory)
    except CatalogError as exc:
        raise ProducerError("invalid_config", f"job_catalog: {exc.message}") from None


def _pending(
    function_name: Any,
    params: Any,
    options: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> PendingEnqueue:
    """The mutable job the middleware hooks see: copies of the params and of the options
    mapping merged with the keyword options. Only what the hooks need to get a job at all is
    checked here (the shapes of the name, params and options); everything else is checked on
    the final job, after the hooks."""
    name = _name(function_name, "function_name")
    if options is not None and not isinstance(options, Mapping):
        raise _invalid("options must be a mapping")
    merged = dict(options or {})
    for key, value in extra.items():
        if key in merged:
            raise _invalid(f"option '{key}' given twice")
        merged[key] = value
    option_params = merged.pop("params", None)
    if option_params is not None:
        if params is not None:
            raise _invalid("params given both as an argument and as an option")
        params = option_params
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ProducerError("invalid_params", "params must be a JSON object")
    return PendingEnqueue(name, dict(params), merged)


def _bulk_message(reason: str, written: list[str], total: int) -> str:
    """A failed bulk enqueue's message: the reason, then exactly what was written."""
    is_oom = "OOM" in reason or "OutOfMemoryError" in reason
    oom = "Redis is out of memory (maxmemory reached, noeviction); " if is_oom else ""
    if not written:
        return f"{oom}{reason}; none of the {total} jobs was written"
    return (
        f"{oom}{reason}; {len(written)} of the {total} jobs were written (the first "
        f"{len(written) // BULK_CHUNK_SIZE} chunk(s) of {BULK_CHUNK_SIZE}; ids in written_ids), "
        "the rest were not"
    )


def _redact(message: str, dsn: str) -> str:
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        message = message.replace(password, "***")
    return message


# --------------------------------------------------------------------------------------------


class Producer:
    """Enqueue jobs and read their status.

    ``config`` is a :class:`ProducerConfig` or a mapping with its keys (``redis_dsn``,
    ``queue_name``, ``max_retries``, ``job_timeout_seconds``, ``result_ttl_seconds``,
    ``idempotency_ttl_seconds``, ``correlation_mappings``); omitted keys take the defaults.
    ``redis`` may be an existing ``redis.asyncio.Redis`` client (it must decode responses).

    Omitted settings take RRQ's built-in defaults; ``rrq.toml`` is read only by
    :meth:`from_toml`. With a ``catalog`` (:func:`rrqkit.contracts.load_job_catalog`) every
    enqueue of a catalogued function checks its params against the contract first and raises
    ``ProducerError`` code ``invalid_params`` (with ``function_name`` and ``field``) without
    writing anything; functions not in the catalog are not checked. When Redis cannot be
    reached a call fails within ``redis_connect_timeout_seconds`` (default 5) with
    ``ProducerError`` code ``redis_unavailable``, naming the DSN without its password.

    :meth:`use` adds middleware around every enqueue (:mod:`rrqkit.middleware`).
    """

    def __init__(
        self,
        config: ProducerConfig | Mapping[str, Any] | None = None,
        *,
        redis: Any = None,
        catalog: JobCatalog | None = None,
    ) -> None:
        if config is None:
            config = ProducerConfig()
        elif not isinstance(config, ProducerConfig):
            config = ProducerConfig.from_mapping(config)
        self.config: ProducerConfig = config
        #: The job contracts params are checked against (None: nothing is checked).
        self.catalog: JobCatalog | None = catalog
        self._redis: Any = redis
        self._owns_redis = redis is None
        self._scripts: dict[str, Any] = {}
        self._middleware: list[object] = []
        # Whether the current client has answered once; until then the first call is bounded
        # by the connect timeout (redis-py bounds the TCP connect only, not the handshake).
        self._reachable = False

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str] | None = None) -> Producer:
        """Build a producer from ``rrq.toml`` (explicit path, ``RRQ_CONFIG``, ``./rrq.toml``),
        with the job catalog its ``job_catalog`` key names (relative to the file), if any; an
        unusable catalog is ``invalid_config``."""
        config = load_toml(path)
        return cls(config, catalog=load_toml_catalog(path))

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        client, self._redis = self._redis, None
        self._scripts.clear()
        if client is not None and self._owns_redis:
            await client.aclose()

    # -- redis -----------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as aioredis

            dsn = self.config.redis_dsn
            if dsn.startswith("redis+unix://"):
                dsn = "unix://" + dsn[len("redis+unix://") :]
            self._redis = aioredis.from_url(
                dsn,
                decode_responses=True,
                socket_connect_timeout=self.config.redis_connect_timeout_seconds,
            )
            self._owns_redis = True
        return self._redis

    def _script(self, name: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._client().register_script(_lua(name))
            self._scripts[name] = script
        return script

    def _redis_error(self, exc: BaseException) -> ProducerError:
        message = _redact(f"{type(exc).__name__}: {exc}", self.config.redis_dsn)
        return ProducerError("redis_error", message)

    def _unavailable(self, reason: str) -> ProducerError:
        timeout = self.config.redis_connect_timeout_seconds
        message = (
            f"cannot connect to Redis at {redact_dsn(self.config.redis_dsn)}: {reason} "
            f"(connect timeout {timeout:g} s; set redis_connect_timeout_seconds in rrq.toml or "
            "RRQ_REDIS_CONNECT_TIMEOUT to change it)"
        )
        return ProducerError("redis_unavailable", _redact(message, self.config.redis_dsn))

    async def _ensure_reachable(self) -> None:
        """Bounds the first round trip of a client (connect and handshake) by the timeout."""
        if self._reachable:
            return
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        timeout = self.config.redis_connect_timeout_seconds
        try:
            await asyncio.wait_for(self._client().ping(), timeout)
        except TimeoutError:
            raise self._unavailable("no reply to the Redis handshake") from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self._unavailable(str(exc) or type(exc).__name__) from None
        except RedisError as exc:
            raise self._redis_error(exc) from None
        self._reachable = True

    async def _call(self, coro: Any) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError

        try:
            await self._ensure_reachable()
            return await coro
        except (RedisConnectionError, OSError) as exc:
            self._reachable = False
            raise self._unavailable(str(exc) or type(exc).__name__) from None
        except RedisError as exc:
            raise self._redis_error(exc) from None
        finally:
            # Not awaited when the reachability check failed: close it quietly.
            if asyncio.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED":
                coro.close()

    # -- planning (pure: validation and encoding, no I/O) --------------------------------------

    def _options(
        self,
        params: Any,
        options: Mapping[str, Any] | None,
        extra: Mapping[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        merged: dict[str, Any] = {}
        if options is not None:
            if not isinstance(options, Mapping):
                raise _invalid("options must be a mapping")
            merged.update(options)
        for key, value in extra.items():
            if key in merged:
                raise _invalid(f"option '{key}' given twice")
            merged[key] = value
        for key in merged:
            if key not in OPTION_NAMES:
                raise _invalid(f"unknown option '{key}'")
        option_params = merged.pop("params", None)
        if option_params is not None:
            if params is not None:
                raise _invalid("params given both as an argument and as an option")
            params = option_params
        return params, {k: v for k, v in merged.items() if v is not None}

    def _plan(
        self,
        function_name: Any,
        params: Any,
        options: Mapping[str, Any] | None,
        extra: Mapping[str, Any],
        mode: Mode | None,
    ) -> _Plan:
        _name(function_name, "function_name")
        params, opts = self._options(params, options, extra)

        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ProducerError("invalid_params", "params must be a JSON object")
        if nests_deeper_than(params, MAX_PARAMS_DEPTH):
            raise ProducerError(
                "invalid_params",
                f"params nest deeper than {MAX_PARAMS_DEPTH} levels; a runner could not "
                "receive them",
            )
        job_params = canonical_json(params, "params")
        size = len(job_params.encode("utf-8"))
        if size > MAX_PARAMS_BYTES:
            raise ProducerError(
                "payload_too_large",
                f"params are {size} bytes when encoded; the limit is {MAX_PARAMS_BYTES}",
            )
        if self.catalog is not None:
            problem = self.catalog.check_params(function_name, normalize_json(params))
            if problem is not None:
                raise ProducerError(
                    "invalid_params",
                    problem.message,
                    function_name=problem.function_name,
                    field=problem.field,
                )

        cfg = self.config
        queue_key = cfg.queue_name
        if "queue_name" in opts:
            queue_key = normalize_queue_name(_name(opts["queue_name"], "queue_name"))
        job_id = _name(opts["job_id"], "job_id") if "job_id" in opts else str(uuid.uuid4())
        unique_key = _name(opts["unique_key"], "unique_key") if "unique_key" in opts else None
        unique_ttl = (
            _int(opts["unique_ttl_seconds"], "unique_ttl_seconds", 1, "a positive integer")
            if "unique_ttl_seconds" in opts
            else None
        )
        max_retries = (
            _int(opts["max_retries"], "max_retries", 0, "a non-negative integer")
            if "max_retries" in opts
            else cfg.max_retries
        )
        job_timeout = (
            _int(opts["job_timeout_seconds"], "job_timeout_seconds", 1, "a positive integer")
            if "job_timeout_seconds" in opts
            else cfg.job_timeout_seconds
        )
        result_ttl = (
            _int(opts["result_ttl_seconds"], "result_ttl_seconds", None, "an integer")
            if "result_ttl_seconds" in opts
            else cfg.result_ttl_seconds
        )
        trace = _trace_context(opts["trace_context"]) if "trace_context" in opts else {}
        defer_by = (
            _finite(opts["defer_by_seconds"], "defer_by_seconds", positive=False)
            if "defer_by_seconds" in opts
            else None
        )
        defer_until = (
            _timestamp(opts["defer_until"], "defer_until") if "defer_until" in opts else None
        )
        if defer_until is not None and defer_by is not None:
            raise ProducerError(
                "conflicting_options",
                "defer_until and defer_by_seconds are mutually exclusive; give one",
            )
        enqueue_ns = (
            _timestamp(opts["enqueue_time"], "enqueue_time") if "enqueue_time" in opts else None
        )
        rate_key = (
            _name(opts["rate_limit_key"], "rate_limit_key") if "rate_limit_key" in opts else None
        )
        rate_seconds = (
            _finite(opts["rate_limit_seconds"], "rate_limit_seconds", positive=True)
            if "rate_limit_seconds" in opts
            else None
        )
        debounce_key = (
            _name(opts["debounce_key"], "debounce_key") if "debounce_key" in opts else None
        )
        debounce_seconds = (
            _finite(opts["debounce_seconds"], "debounce_seconds", positive=True)
            if "debounce_seconds" in opts
            else None
        )

        wants_rate = rate_key is not None or rate_seconds is not None
        wants_debounce = debounce_key is not None or debounce_seconds is not None
        if wants_rate and wants_debounce:
            raise ProducerError(
                "conflicting_options", "rate_limit and debounce options are mutually exclusive"
            )
        if mode is None:
            mode = "rate_limit" if wants_rate else "debounce" if wants_debounce else "enqueue"
        elif mode == "enqueue" and (wants_rate or wants_debounce):
            raise _invalid("enqueue_many does not accept rate_limit or debounce options")
        elif (mode == "rate_limit" and wants_debounce) or (mode == "debounce" and wants_rate):
            raise ProducerError(
                "conflicting_options", "rate_limit and debounce options are mutually exclusive"
            )
        if unique_key is not None and mode != "enqueue":
            raise ProducerError(
                "conflicting_options",
                "unique_key cannot be combined with rate_limit or debounce options",
            )
        if mode == "rate_limit":
            if rate_key is None:
                raise _invalid(
                    "rate_limit_key is required with rate_limit_seconds"
                    if rate_seconds is not None
                    else "rate_limit_key is required"
                )
            if rate_seconds is None:
                raise _invalid("rate_limit_seconds is required with rate_limit_key")
        if mode == "debounce":
            if debounce_key is None:
                raise _invalid(
                    "debounce_key is required with debounce_seconds"
                    if debounce_seconds is not None
                    else "debounce_key is required"
                )
            if debounce_seconds is None:
                raise _invalid("debounce_seconds is required with debounce_key")

        now = enqueue_ns if enqueue_ns is not None else now_ns()
        # expires_in counts from the clock, not from a given enqueue_time (as TS)
        clock = now if enqueue_ns is None else now_ns()
        control, max_retries = _job_control_fields(opts, clock, max_retries)
        control += flow_control_fields(opts)
        if mode == "debounce":
            assert debounce_seconds is not None
            run_at = now + math.ceil(debounce_seconds * 1000) * 1_000_000
        elif defer_until is not None:
            run_at = defer_until
        elif defer_by is not None and defer_by > 0:
            run_at = now + math.ceil(defer_by * 1000) * 1_000_000
        else:
            run_at = now
        score = str(run_at // 1_000_000)

        correlation = _correlation_context(cfg.correlation_mappings, params, trace)
        fields = [
            job_id,
            function_name,
            job_params,
            format_rfc3339(now),
            "PENDING",
            "0",
            format_rfc3339(run_at),
            str(max_retries),
            str(job_timeout),
            str(result_ttl),
            queue_key,
            "null",
            canonical_json(trace, "trace_context", code="invalid_argument") if trace else "",
            canonical_json(correlation, "correlation_context") if correlation else "",
            score,
        ]
        if mode == "enqueue":
            idem_key = IDEMPOTENCY_PREFIX  # "no key": stays inside rrq:* for ACL users
            idem_ttl = 0
            if unique_key is not None:
                idem_key = IDEMPOTENCY_PREFIX + unique_key
                idem_ttl = unique_ttl if unique_ttl is not None else cfg.idempotency_ttl_seconds
                ahead = run_at - now
                if ahead > 0:
                    idem_ttl = max(idem_ttl, -(-ahead // 1_000_000_000))
            return _Plan(
                mode,
                job_id,
                [JOB_PREFIX + job_id, queue_key, idem_key],
                [*fields, str(idem_ttl)],
                control,
            )
        if mode == "rate_limit":
            assert rate_key is not None and rate_seconds is not None
            key = (
                rate_key if rate_key.startswith(RATE_LIMIT_PREFIX) else RATE_LIMIT_PREFIX + rate_key
            )
            return _Plan(
                mode,
                job_id,
                [JOB_PREFIX + job_id, queue_key, key],
                [*fields, str(math.ceil(rate_seconds))],
                control,
            )
        assert debounce_key is not None and debounce_seconds is not None
        key = (
            debounce_key
            if debounce_key.startswith(DEBOUNCE_PREFIX)
            else DEBOUNCE_PREFIX + debounce_key
        )
        return _Plan(
            mode,
            job_id,
            [queue_key, key],
            [JOB_PREFIX, *fields, str(math.ceil(debounce_seconds))],
            control,
        )

    _SCRIPT_FOR: Final = {
        "enqueue": "enqueue-3.lua",
        "rate_limit": "enqueue-rate-limited-3.lua",
        "debounce": "enqueue-debounced-2.lua",
    }

    def _interpret(self, plan: _Plan, reply: Any) -> str | None:
        code, job_id = int(reply[0]), reply[1]
        if code in (0, 1):
            return str(job_id)
        if code == -1:
            raise ProducerError("duplicate_job_id", "job_id already exists")
        if code == 2 and plan.mode == "rate_limit":
            return None
        raise ProducerError("redis_error", f"unexpected enqueue status {code}")

    async def _run(self, plan: _Plan) -> str | None:
        script = self._script(self._SCRIPT_FOR[plan.mode])
        if not plan.extra:
            reply = await self._call(script(keys=plan.keys, args=plan.args))
        else:
            reply = (
                await self._call(
                    self._transaction([(script, plan.keys, plan.args), self._fields_call(plan)])
                )
            )[0]
        return self._interpret(plan, reply)

    def _fields_call(self, plan: _Plan) -> tuple[Any, list[str], list[str]]:
        """The enqueue-fields-1.lua call that adds ``plan.extra`` (retry_policy, expires_at,
        the flow-control fields) to the job the plan's enqueue script writes. The enqueue
        scripts stay RRQ's verbatim; this one runs right after them in the same MULTI ... EXEC,
        so nothing can claim the job in between, and writes only to the job this call wrote
        (not to an idempotent hit's). With ``ordering_key`` it also records the job's place in
        its session (``rrq:fc:order:<key>``)."""
        fields = plan.args[1:] if plan.mode == "debounce" else plan.args
        function_name, job_params, queue = fields[1], fields[2], fields[10]
        if plan.mode == "debounce":
            key, target = plan.keys[1], "debounce"
        else:
            key, target = plan.keys[0], "job"
        return (
            self._script("enqueue-fields-1.lua"),
            [key],
            [target, function_name, job_params, queue, *plan.extra],
        )

    async def _transaction(self, calls: Sequence[tuple[Any, list[str], list[str]]]) -> list[Any]:
        """Runs the script calls in one MULTI ... EXEC; their replies, in order."""
        async with self._client().pipeline(transaction=True) as pipe:
            for script, keys, args in calls:
                await script(keys=keys, args=args, client=pipe)
            return list(await pipe.execute())

    async def _prepare(
        self,
        function_name: Any,
        params: Any,
        options: Mapping[str, Any] | None,
        extra: Mapping[str, Any],
        mode: Mode | None,
    ) -> tuple[PendingEnqueue | None, _Plan]:
        """The plan of one enqueue: without middleware straight from the arguments; with some,
        from the job the before-hooks leave (validation runs on that final job)."""
        if not self._middleware:
            return None, self._plan(function_name, params, options, extra, mode)
        job = _pending(function_name, params, options, extra)
        await run_before_enqueue(self._middleware, job)
        return job, self._plan(job.function_name, job.params, job.options, {}, mode)

    async def _after(self, job: PendingEnqueue | None, job_id: str | None) -> None:
        if job is not None and job_id is not None:
            await run_after_enqueue(self._middleware, job, job_id)

    # -- public API ------------------------------------------------------------------------

    def use(self, middleware: object) -> Producer:
        """Add a middleware around every enqueue (single, rate-limited, debounced, bulk) and
        return the producer. ``middleware`` has a ``before_enqueue(job)`` and/or an
        ``after_enqueue(job, job_id)`` method, each sync or ``async`` (see
        :class:`~rrqkit.middleware.ProducerMiddleware`):

        - before-hooks run in registration order on a :class:`~rrqkit.middleware.PendingEnqueue`
          (``function_name``, ``params``, ``options``) and may change its params and options;
          validation (options, the catalog) runs after them on the final job;
        - ``raise EnqueueVetoed(reason)`` in one refuses the enqueue: ProducerError code
          ``enqueue_vetoed``, message ``enqueue of <fn> vetoed: <reason>``; any other exception
          propagates unchanged; either way nothing is written and later hooks do not run;
        - after-hooks run in reverse registration order once the job was written, with its id
          (a debounce update's existing id); not for a rate-limited drop. An exception from an
          after-hook reaches the caller although the job IS written.

        Raises ProducerError ``invalid_argument`` for an object with neither hook."""
        check_producer_middleware(middleware)
        self._middleware.append(middleware)
        return self

    async def enqueue(
        self,
        function_name: str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """Enqueue a job; returns its id (an existing id for an idempotent hit or a debounce
        update). Options may be a mapping, keyword arguments, or both. With rate-limit options
        a dropped call raises ProducerError(``rate_limited``)."""
        job, plan = await self._prepare(function_name, params, options, kwargs, None)
        job_id = await self._run(plan)
        if job_id is None:
            raise ProducerError("rate_limited", "enqueue was rate-limited")
        await self._after(job, job_id)
        return job_id

    async def enqueue_with_rate_limit(
        self,
        function_name: str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str | None:
        """Enqueue unless a job with the same ``rate_limit_key`` was enqueued in the last
        ``rate_limit_seconds``; returns None when limited."""
        job, plan = await self._prepare(function_name, params, options, kwargs, "rate_limit")
        job_id = await self._run(plan)
        await self._after(job, job_id)
        return job_id

    async def enqueue_with_debounce(
        self,
        function_name: str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """Trailing-edge debounce on ``debounce_key``: the job runs ``debounce_seconds`` after
        the last call, with the last call's function, params and options."""
        job, plan = await self._prepare(function_name, params, options, kwargs, "debounce")
        job_id = await self._run(plan)
        assert job_id is not None
        await self._after(job, job_id)
        return job_id

    async def enqueue_many(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """Enqueue several jobs, all or nothing. Each item is
        ``{"function_name", "params", "options"}`` (no rate-limit or debounce options). All
        items are validated before anything is written (a job id repeated in ``items`` is
        ``duplicate_job_id``; params that break their contract are ``invalid_params`` with a
        message that starts with ``items[<index>]: ``); then one script call per
        ``BULK_CHUNK_SIZE`` (500) items writes each chunk whole or not at all: Redis out of
        memory, or a job id that already exists, leaves the chunk unwritten. A failure raises
        :class:`BulkEnqueueError`, whose ``written_ids`` are exactly the jobs earlier chunks
        wrote (none for up to 500 items).

        With middleware (:meth:`use`) every item's before-hooks run, in item order, before any
        item is validated; a veto or an error fails the whole call with nothing written. The
        after-hooks run per written item, in item order (also for the items a failing call did
        write, before its BulkEnqueueError is raised: that error wins over a hook's)."""
        plans: list[_Plan] = []
        jobs: list[PendingEnqueue] = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise _invalid(f"item {index} must be a mapping")
            unknown = set(item) - {"function_name", "params", "options"}
            if unknown:
                raise _invalid(f"unknown item key '{sorted(unknown)[0]}' in item {index}")
            fn, params, options = item.get("function_name"), item.get("params"), item.get("options")
            if self._middleware:
                jobs.append(_pending(fn, params, options, {}))
            else:
                plans.append(self._bulk_plan(index, fn, params, options))
        if self._middleware:
            # Every item's before-hooks run before anything is checked or written: all or nothing.
            for job in jobs:
                await run_before_enqueue(self._middleware, job)
            plans = [
                self._bulk_plan(index, job.function_name, job.params, job.options)
                for index, job in enumerate(jobs)
            ]
        seen: set[str] = set()
        for plan in plans:
            if plan.job_id in seen:
                raise ProducerError("duplicate_job_id", f"job_id '{plan.job_id}' is repeated")
            seen.add(plan.job_id)
        try:
            written = await self._write_bulk(plans)
        except BulkEnqueueError as exc:
            # The bulk error says what was written; it wins over an after-hook's error.
            with contextlib.suppress(Exception):
                for job, job_id in zip(jobs, exc.written_ids, strict=False):
                    await run_after_enqueue(self._middleware, job, job_id)
            raise
        for job, job_id in zip(jobs, written, strict=False):
            await run_after_enqueue(self._middleware, job, job_id)
        return written

    def _bulk_plan(self, index: int, function_name: Any, params: Any, options: Any) -> _Plan:
        try:
            return self._plan(function_name, params, options, {}, "enqueue")
        except ProducerError as exc:
            if exc.field is None:
                raise
            # a contract failure names its item, so the caller can find it in the batch
            raise ProducerError(
                exc.code,
                f"items[{index}]: {exc.message}",
                function_name=exc.function_name,
                field=exc.field,
            ) from None

    async def _write_bulk(self, plans: list[_Plan]) -> list[str]:
        """Writes the validated ``plans`` one chunk per script call; their ids in order."""
        script = self._script("enqueue-batch-n.lua")
        written: list[str] = []
        for start in range(0, len(plans), BULK_CHUNK_SIZE):
            chunk = plans[start : start + BULK_CHUNK_SIZE]
            keys = [key for plan in chunk for key in plan.keys]
            args = [arg for plan in chunk for arg in plan.args]
            fields_calls = [self._fields_call(plan) for plan in chunk if plan.extra]
            try:
                if fields_calls:
                    replies = (
                        await self._call(self._transaction([(script, keys, args), *fields_calls]))
                    )[0]
                else:
                    replies = await self._call(script(keys=keys, args=args))
            except ProducerError as exc:
                raise BulkEnqueueError(
                    exc.code, _bulk_message(exc.message, written, len(plans)), list(written)
                ) from None
            duplicates = [
                plan.job_id
                for plan, reply in zip(chunk, replies, strict=True)
                if int(reply[0]) == -1
            ]
            if duplicates:
                more = f" and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""
                reason = "job_id already exists: " + ", ".join(duplicates[:10]) + more
                raise BulkEnqueueError(
                    "duplicate_job_id", _bulk_message(reason, written, len(plans)), list(written)
                )
            written.extend(str(reply[1]) for reply in replies)
        return written

    async def get_job_status(self, job_id: str) -> JobResult | None:
        """The job's status, result and last error; None when the job hash does not exist."""
        _name(job_id, "job_id")
        data = await self._call(self._client().hgetall(JOB_PREFIX + job_id))
        if not data:
            return None
        status = data.get("status")
        raw = data.get("result")
        result: Any = None
        if raw is not None and raw != "" and raw.lower() != "null":
            import json

            try:
                result = json.loads(raw)
            except ValueError:
                result = raw
        return JobResult(
            status=status if status in JOB_STATUSES else "UNKNOWN",
            result=result,
            last_error=data.get("last_error"),
            progress=_progress_of(data),
        )

    async def tail(
        self,
        job_id: str,
        attempt: int | None = None,
        cursor: str = "0",
        block_ms: int = 1000,
    ) -> AsyncIterator[dict[str, Any]]:
        """Follow the output a job's attempt streams (live jobs, README "Live jobs"), as the TS
        producer's ``tail``: yields each entry as it is written, ``{"id", "kind": "out" | "err"
        | "log", "data"}``, ``{"id", "kind": "truncated", "dropped"}``, and ends after
        ``{"id", "kind": "closed", "status"}`` (or when the job is final, gone or on a later
        attempt and its output stays quiet). Without ``attempt``: the latest attempt, waiting
        for the first to start."""
        _name(job_id, "job_id")
        client = self._client()
        key = JOB_PREFIX + job_id
        run = attempt or 0
        while run < 1:
            runs, status = await self._call(client.hmget(key, "runs", "status"))
            run = _field_int(runs)
            if run >= 1:
                break
            if status is None or status in _FINAL:
                return
            await asyncio.sleep(min(block_ms, 250) / 1000)
        stream = f"rrq:output:{job_id}:{run}"
        ending = False
        while True:
            reply = await self._call(
                client.xread({stream: cursor or "0"}, count=1000, block=block_ms)
            )
            entries = reply[0][1] if reply else []
            for entry_id, fields in entries:
                cursor = entry_id
                entry = _output_entry(entry_id, fields)
                yield entry
                if entry["kind"] == "closed":
                    return
            if entries:
                ending = False
                continue
            # a quiet stream: the closed marker follows the outcome, so a final job gets one
            # more wait before the end (an attempt whose worker died never gets its marker)
            if ending:
                return
            runs, status = await self._call(client.hmget(key, "runs", "status"))
            later = _field_int(runs) > run
            if status is None or later or status in _FINAL:
                ending = True

    async def cancel(self, job_id: str) -> CancelResult:
        """Cancel a job, waiting or running, with the shared script ``job-cancel-2.lua``.

        A job waiting in its queue (PENDING or RETRYING) is removed from it. A job running on an
        rrqkit orchestrator (ACTIVE with a lease) ends CANCELLED at once: its attempt's later
        writes are refused by the fence, and its orchestrator is told to stop the handler (the
        runner sees a ``cancel`` frame; a Python handler gets ``asyncio.CancelledError``). A job
        running on RRQ's own orchestrator cannot be cancelled safely and is refused. Either
        way the job gets ``status=CANCELLED`` and is not retried. A refusal is a result
        (``cancelled`` False), not an error; only Redis failures raise."""
        _name(job_id, "job_id")
        completion = now_ns()
        completion -= completion % 1000  # microseconds, as the enqueue timestamps
        reply = await self._call(
            self._script("job-cancel-2.lua")(
                keys=[JOB_PREFIX + job_id, EVENTS_PREFIX + job_id],
                args=[job_id, format_rfc3339(completion), str(self.config.result_ttl_seconds)],
            )
        )
        code, status = int(reply[0]), str(reply[1])
        if code == 1:
            return CancelResult(cancelled=True, status="CANCELLED")
        reason = CANCEL_REFUSALS.get(code)
        if reason is None:
            raise ProducerError("redis_error", f"unexpected cancel status {code}")
        return CancelResult(cancelled=False, status=None if code == -1 else status, reason=reason)

    async def wait_for_completion(
        self,
        job_id: str,
        timeout_seconds: float = 30,
        block_interval_seconds: float = 0.25,
    ) -> JobResult | None:
        """Wait until the job is COMPLETED, FAILED or CANCELLED; None on timeout."""
        _name(job_id, "job_id")
        timeout = _finite(timeout_seconds, "timeout_seconds", positive=True)
        interval = _finite(block_interval_seconds, "block_interval_seconds", positive=False)
        deadline = time.monotonic() + timeout
        stream = EVENTS_PREFIX + job_id
        last_id = "$"
        client = self._client()
        while True:
            status = await self.get_job_status(job_id)
            if status is not None and status.status in TERMINAL_STATUSES:
                return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            block = min(interval, remaining) if interval > 0 else remaining
            block_ms = max(1, int(block * 1000))
            reply = await self._call(client.xread({stream: last_id}, count=1, block=block_ms))
            if reply:
                entries = reply[0][1]
                if entries:
                    last_id = entries[-1][0]
            else:
                await asyncio.sleep(0)
