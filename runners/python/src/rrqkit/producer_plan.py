"""Planning an enqueue: the arguments validated and encoded into the keys and arguments of one
enqueue script call (PRODUCER.md §3, §4). Pure: no I/O.

An enqueue without options (the common call) takes a short path that builds the same fields
without looking at any option; tests/test_producer_plan.py checks both paths agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from .canonical import canonical_json
from .config import ProducerConfig, normalize_queue_name
from .errors import ProducerError
from .flow_options import flow_control_fields
from .producer_encode import MAX_PARAMS_BYTES, checked_params, new_job_id, stamp
from .producer_options import (
    check_finite,
    check_int,
    check_name,
    check_timestamp,
    check_trace_context,
    correlation_context,
    invalid,
    job_control_fields,
    merge_options,
)
from .timeutil import now_ns

if TYPE_CHECKING:
    from .contracts import JobCatalog

__all__ = [
    "BULK_CHUNK_SIZE",
    "DEBOUNCE_PREFIX",
    "EVENTS_PREFIX",
    "IDEMPOTENCY_PREFIX",
    "JOB_PREFIX",
    "MAX_PARAMS_BYTES",
    "RATE_LIMIT_PREFIX",
    "Mode",
    "Plan",
    "build_plan",
    "checked_params",
    "new_job_id",
    "stamp",
]

JOB_PREFIX: Final = "rrq:job:"
#: Jobs per enqueue-batch-n.lua call in ``enqueue_many``: one call is all-or-nothing; bigger
#: batches are split so one script does not hold Redis for long.
BULK_CHUNK_SIZE: Final = 500
IDEMPOTENCY_PREFIX: Final = "rrq:idempotency:"
RATE_LIMIT_PREFIX: Final = "rrq:rate_limit:"
DEBOUNCE_PREFIX: Final = "rrq:debounce:"
EVENTS_PREFIX: Final = "rrq:events:job:"

Mode = Literal["enqueue", "rate_limit", "debounce"]


@dataclass(slots=True)
class Plan:
    """One enqueue script call: which script (``mode``), its keys and arguments."""

    mode: Mode
    job_id: str
    keys: list[str]
    args: list[str]
    #: rrqkit's additive hash fields (retry_policy, expires_at, the flow-control fields) as
    #: name/value pairs
    extra: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Plans


def build_plan(
    config: ProducerConfig,
    catalog: JobCatalog | None,
    function_name: Any,
    params: Any,
    options: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
    mode: Mode | None,
) -> Plan:
    """The validated script call of one enqueue; raises ProducerError before any I/O."""
    if not options and not extra and mode != "rate_limit" and mode != "debounce":
        return _plain_plan(config, catalog, function_name, params)
    return _general_plan(config, catalog, function_name, params, options, extra, mode)


def _plain_plan(
    config: ProducerConfig, catalog: JobCatalog | None, function_name: Any, params: Any
) -> Plan:
    """An enqueue without options: the config's defaults, run now, a fresh id."""
    check_name(function_name, "function_name")
    params, job_params = checked_params(catalog, function_name, params)
    now = now_ns()
    at = stamp(now)
    job_id = new_job_id()
    queue_key = config.queue_name
    mappings = config.correlation_mappings
    correlation = correlation_context(mappings, params, {}) if mappings else None
    args = [
        job_id,
        function_name,
        job_params,
        at,
        "PENDING",
        "0",
        at,
        str(config.max_retries),
        str(config.job_timeout_seconds),
        str(config.result_ttl_seconds),
        queue_key,
        "null",
        "",
        canonical_json(correlation, "correlation_context") if correlation else "",
        str(now // 1_000_000),
        "0",
    ]
    return Plan("enqueue", job_id, [JOB_PREFIX + job_id, queue_key, IDEMPOTENCY_PREFIX], args)


def _general_plan(
    config: ProducerConfig,
    catalog: JobCatalog | None,
    function_name: Any,
    params: Any,
    options: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
    mode: Mode | None,
) -> Plan:
    check_name(function_name, "function_name")
    params, opts = merge_options(params, options, extra)

    params, job_params = checked_params(catalog, function_name, params)

    cfg = config
    queue_key = cfg.queue_name
    if "queue_name" in opts:
        queue_key = normalize_queue_name(check_name(opts["queue_name"], "queue_name"))
    job_id = check_name(opts["job_id"], "job_id") if "job_id" in opts else new_job_id()
    unique_key = check_name(opts["unique_key"], "unique_key") if "unique_key" in opts else None
    unique_ttl = (
        check_int(opts["unique_ttl_seconds"], "unique_ttl_seconds", 1, "a positive integer")
        if "unique_ttl_seconds" in opts
        else None
    )
    max_retries = (
        check_int(opts["max_retries"], "max_retries", 0, "a non-negative integer")
        if "max_retries" in opts
        else cfg.max_retries
    )
    job_timeout = (
        check_int(opts["job_timeout_seconds"], "job_timeout_seconds", 1, "a positive integer")
        if "job_timeout_seconds" in opts
        else cfg.job_timeout_seconds
    )
    result_ttl = (
        check_int(opts["result_ttl_seconds"], "result_ttl_seconds", None, "an integer")
        if "result_ttl_seconds" in opts
        else cfg.result_ttl_seconds
    )
    trace = check_trace_context(opts["trace_context"]) if "trace_context" in opts else {}
    defer_by = (
        check_finite(opts["defer_by_seconds"], "defer_by_seconds", positive=False)
        if "defer_by_seconds" in opts
        else None
    )
    defer_until = (
        check_timestamp(opts["defer_until"], "defer_until") if "defer_until" in opts else None
    )
    if defer_until is not None and defer_by is not None:
        raise ProducerError(
            "conflicting_options",
            "defer_until and defer_by_seconds are mutually exclusive; give one",
        )
    enqueue_ns = (
        check_timestamp(opts["enqueue_time"], "enqueue_time") if "enqueue_time" in opts else None
    )
    rate_key = (
        check_name(opts["rate_limit_key"], "rate_limit_key") if "rate_limit_key" in opts else None
    )
    rate_seconds = (
        check_finite(opts["rate_limit_seconds"], "rate_limit_seconds", positive=True)
        if "rate_limit_seconds" in opts
        else None
    )
    debounce_key = (
        check_name(opts["debounce_key"], "debounce_key") if "debounce_key" in opts else None
    )
    debounce_seconds = (
        check_finite(opts["debounce_seconds"], "debounce_seconds", positive=True)
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
        raise invalid("enqueue_many does not accept rate_limit or debounce options")
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
            raise invalid(
                "rate_limit_key is required with rate_limit_seconds"
                if rate_seconds is not None
                else "rate_limit_key is required"
            )
        if rate_seconds is None:
            raise invalid("rate_limit_seconds is required with rate_limit_key")
    if mode == "debounce":
        if debounce_key is None:
            raise invalid(
                "debounce_key is required with debounce_seconds"
                if debounce_seconds is not None
                else "debounce_key is required"
            )
        if debounce_seconds is None:
            raise invalid("debounce_seconds is required with debounce_key")

    now = enqueue_ns if enqueue_ns is not None else now_ns()
    # expires_in counts from the clock, not from a given enqueue_time (as TS)
    clock = now if enqueue_ns is None else now_ns()
    control, max_retries = job_control_fields(opts, clock, max_retries)
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

    correlation = correlation_context(cfg.correlation_mappings, params, trace)
    fields = [
        job_id,
        function_name,
        job_params,
        stamp(now),
        "PENDING",
        "0",
        stamp(run_at),
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
        return Plan(
            mode,
            job_id,
            [JOB_PREFIX + job_id, queue_key, idem_key],
            [*fields, str(idem_ttl)],
            control,
        )
    if mode == "rate_limit":
        assert rate_key is not None and rate_seconds is not None
        key = rate_key if rate_key.startswith(RATE_LIMIT_PREFIX) else RATE_LIMIT_PREFIX + rate_key
        return Plan(
            mode,
            job_id,
            [JOB_PREFIX + job_id, queue_key, key],
            [*fields, str(math.ceil(rate_seconds))],
            control,
        )
    assert debounce_key is not None and debounce_seconds is not None
    key = (
        debounce_key if debounce_key.startswith(DEBOUNCE_PREFIX) else DEBOUNCE_PREFIX + debounce_key
    )
    return Plan(
        mode,
        job_id,
        [queue_key, key],
        [JOB_PREFIX, *fields, str(math.ceil(debounce_seconds))],
        control,
    )
