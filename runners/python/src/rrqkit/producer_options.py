"""Validation of the producer's call arguments: the option names, each option's checks, and
the derived hash fields (correlation context, job control). Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from .canonical import canonical_json
from .config import as_int
from .errors import ProducerError
from .flow_options import FLOW_OPTION_NAMES
from .middleware import PendingEnqueue
from .retry_policy import check_retry_policy, retry_policy_json
from .timeutil import format_rfc3339, now_ns, to_epoch_ns

__all__ = [
    "OPTION_NAMES",
    "check_finite",
    "check_int",
    "check_name",
    "check_timestamp",
    "check_trace_context",
    "correlation_context",
    "invalid",
    "job_control_fields",
    "merge_options",
    "pending_enqueue",
]

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


def invalid(message: str) -> ProducerError:
    return ProducerError("invalid_argument", message)


def check_name(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{label} must be a string")
    if not value.strip():
        raise invalid(f"{label} cannot be empty")
    return value


def check_int(value: Any, label: str, minimum: int | None, description: str) -> int:
    number = as_int(value)
    if number is None or (minimum is not None and number < minimum):
        raise invalid(f"{label} must be {description}")
    return number


def check_finite(value: Any, label: str, *, positive: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > 0 if positive else value >= 0):
        return float(value)
    bound = "> 0" if positive else ">= 0"
    raise invalid(f"{label} must be a finite number {bound}")


def check_timestamp(value: Any, label: str) -> int:
    """Epoch ns of a timestamp option, truncated to microseconds as RRQ's producer does."""
    if isinstance(value, datetime | str):
        try:
            epoch_ns = to_epoch_ns(value)
        except (ValueError, OverflowError):
            pass
        else:
            return epoch_ns - epoch_ns % 1000
    raise invalid(f"{label} must be an RFC 3339 timestamp")


def check_trace_context(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid("trace_context must be a map of string to string")
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


def correlation_context(
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


def job_control_fields(
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
            raise invalid("; ".join(problems))
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
        expires_ns = check_timestamp(opts["expires_at"], "expires_at")
        if expires_ns <= now_ns():
            raise invalid("expires_at is in the past")
    elif "expires_in" in opts:
        expires_in = check_finite(opts["expires_in"], "expires_in", positive=True)
        # by this process's clock (PRODUCER.md §3.3), also when enqueue_time is given
        expires_ns = now + math.ceil(expires_in * 1000) * 1_000_000
    if expires_ns is not None:
        extra += ["expires_at", format_rfc3339(expires_ns)]
    return extra, max_retries


def pending_enqueue(
    function_name: Any,
    params: Any,
    options: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> PendingEnqueue:
    """The mutable job the middleware hooks see: copies of the params and of the options
    mapping merged with the keyword options. Only what the hooks need to get a job at all is
    checked here (the shapes of the name, params and options); everything else is checked on
    the final job, after the hooks."""
    name = check_name(function_name, "function_name")
    if options is not None and not isinstance(options, Mapping):
        raise invalid("options must be a mapping")
    merged = dict(options or {})
    for key, value in extra.items():
        if key in merged:
            raise invalid(f"option '{key}' given twice")
        merged[key] = value
    option_params = merged.pop("params", None)
    if option_params is not None:
        if params is not None:
            raise invalid("params given both as an argument and as an option")
        params = option_params
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ProducerError("invalid_params", "params must be a JSON object")
    return PendingEnqueue(name, dict(params), merged)


def merge_options(
    params: Any,
    options: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> tuple[Any, dict[str, Any]]:
    merged: dict[str, Any] = {}
    if options is not None:
        if not isinstance(options, Mapping):
            raise invalid("options must be a mapping")
        merged.update(options)
    for key, value in extra.items():
        if key in merged:
            raise invalid(f"option '{key}' given twice")
        merged[key] = value
    for key in merged:
        if key not in OPTION_NAMES:
            raise invalid(f"unknown option '{key}'")
    option_params = merged.pop("params", None)
    if option_params is not None:
        if params is not None:
            raise invalid("params given both as an argument and as an option")
        params = option_params
    return params, {k: v for k, v in merged.items() if v is not None}
