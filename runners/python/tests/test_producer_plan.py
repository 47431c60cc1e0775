"""The producer's plan: the short path of an enqueue without options writes exactly what the
general path writes, and its encoders match the reference ones (canonical_json,
format_rfc3339, uuid4)."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

from rrqkit.canonical import canonical_json
from rrqkit.config import ProducerConfig
from rrqkit.errors import ProducerError
from rrqkit.producer_encode import checked_params, new_job_id, stamp
from rrqkit.producer_plan import build_plan
from rrqkit.timeutil import format_rfc3339

PARAMS: list[Any] = [
    {},
    {"i": 1},
    {"z": 1, "a": [1.5, "é", None, True, False], "m": {"y": {"x": [[], {}]}}},
    {"float": 2.0, "big": 1e21, "small": 1e-7},  # integral floats: the full path
    {"tuple": (1, 2), "ctl": 'a\nb\u0001"\\'},
    {"n": 10**30, "neg": -0.5},
]


@pytest.mark.parametrize("params", PARAMS)
def test_params_text_is_canonical_json(params: dict[str, Any]) -> None:
    assert checked_params(None, "fn", params)[1] == canonical_json(params)


@pytest.mark.parametrize(
    "params",
    [{"n": math.inf}, {1: "x"}, {"b": b"x"}, {"s": "\ud800"}],
    ids=["inf", "int-key", "bytes", "surrogate"],
)
def test_params_refusals_are_the_full_paths(params: dict[Any, Any]) -> None:
    with pytest.raises(ProducerError) as fast:
        checked_params(None, "fn", params)
    with pytest.raises(ProducerError) as full:
        canonical_json(params)
    assert (fast.value.code, fast.value.message) == (full.value.code, full.value.message)


def test_too_deep_params_are_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ProducerError, match="nest deeper"):
        checked_params(None, "fn", deep)


@pytest.mark.parametrize(
    "ns",
    [
        0,
        1_700_000_000_000_000_000,
        1_700_000_000_123_000_000,
        1_700_000_000_123_456_000,
        1_700_000_000_123_456_789,
        -86_400_000_000_001,
        253_402_300_799_999_999_999,
    ],
)
def test_stamp_is_format_rfc3339(ns: int) -> None:
    assert stamp(ns) == format_rfc3339(ns)
    assert stamp(ns + 1) == format_rfc3339(ns + 1)  # the cached second, another fraction


def test_job_ids_are_uuid4() -> None:
    ids = {new_job_id() for _ in range(1000)}  # several refills of the random pool
    assert len(ids) == 1000
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, job_id)


@pytest.mark.parametrize("mappings", [{}, {"tenant": "params.t"}])
def test_plain_path_writes_what_the_general_path_writes(
    monkeypatch: pytest.MonkeyPatch, mappings: dict[str, str]
) -> None:
    import rrqkit.producer_plan as plan_module

    monkeypatch.setattr(plan_module, "now_ns", lambda: 1_700_000_000_123_456_789)
    monkeypatch.setattr(plan_module, "new_job_id", lambda: "fixed-id")
    config = ProducerConfig.from_mapping(
        {"queue_name": "q", "max_retries": 7, "correlation_mappings": mappings}
    )
    params = {"t": "acme", "n": [1, 2.5]}
    plain = build_plan(config, None, "fn", params, None, {}, None)
    # any option takes the general path; this one changes nothing
    general = build_plan(config, None, "fn", params, {"queue_name": "q"}, {}, None)
    assert plain == general
    assert plain.args[13] == ('{"tenant":"acme"}' if mappings else "")


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    import os

    new_job_id()  # the parent's pool holds unused random bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then exit at once
        os.write(write, new_job_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != new_job_id()
