"""The runner's fast paths (issue 25) and their fallbacks decode, encode and behave alike.

orjson and uvloop come with the ``fast`` extra; without them (or with ``RRQKIT_JSON=stdlib`` /
``RRQKIT_EVENT_LOOP=asyncio``) the standard library's paths run. Both are checked here: the
codec by switching its orjson module off, the runner process by its environment.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from rrqkit import codec
from rrqkit.errors import DecodeError
from rrqkit.models import ExecutionOutcome
from rrqkit.timeutil import parse_rfc3339
from rrqkit.wiretime import parse_wire_time

from helpers import CONFORMANCE_CMD, new_id, request, rfc3339, running

orjson = pytest.importorskip("orjson", reason="the fast extra is not installed")


@pytest.fixture(params=["orjson", "stdlib"])
def json_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "stdlib":
        monkeypatch.setattr(codec, "_orjson", None)
    else:
        monkeypatch.setattr(codec, "_orjson", orjson)
    yield request.param


@dataclasses.dataclass
class _Point:
    x: int


class _Text(str):
    pass


PLAIN_VALUES: list[Any] = [
    {"i": 1, "s": "é ✓ 𝄞", "f": 1.5, "g": 2.0, "n": None, "b": [True, False], "e": {}},
    [1, -(2**63), 2**64 - 1, 0.1, 1e300, -0.0, "", []],
    {"nested": [[[{"a": [1, 2, {"b": None}]}]]]},
    "just a string",
    12,
]
# Values the fast paths must leave to the careful one (conversions or errors of their own).
SPECIAL_VALUES: list[Any] = [
    {"big": 2**64},
    {"tuple": (1, 2)},
    {1: "int key", None: "null key", False: "bool key", 2.5: "float key"},
    {"sub": _Text("a str subclass")},
    {"surrogate": "\ud800"},
]
ERROR_VALUES: list[Any] = [
    {"nan": math.nan},
    {"inf": [math.inf]},
    {"dataclass": _Point(1)},
    {"set": {1}},
    {"bytes": b"x"},
    {(1, 2): "tuple key"},
]


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("value", PLAIN_VALUES + SPECIAL_VALUES)
@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_fast_and_careful_encodings_carry_the_same_data(
    json_path: str, encoding: codec.Encoding, value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def roundtrip() -> Any:
        try:
            return codec.decode_body(codec.encode_body(value, encoding), encoding)
        except (TypeError, ValueError, OverflowError) as exc:  # e.g. 2**64 in msgpack
            return type(exc)

    fast = roundtrip()
    monkeypatch.setattr(codec, "_orjson", None)
    assert fast == roundtrip()


@pytest.mark.parametrize("value", PLAIN_VALUES + SPECIAL_VALUES + ERROR_VALUES)
@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_success_frames_are_the_generic_frames(
    json_path: str, encoding: codec.Encoding, value: Any
) -> None:
    outcome = ExecutionOutcome("job-1", "req-1", "success", value)
    fast = codec.success_frame("job-1", "req-1", value, encoding)
    try:
        generic: bytes | type[Exception] = codec.frame("response", outcome, encoding)
    except (TypeError, ValueError, OverflowError) as exc:
        generic = type(exc)
    if fast is not None:  # None: the generic frame (or its error) is used
        assert fast == generic


def test_msgpack_integral_floats_are_integers_on_either_path() -> None:
    body = codec.encode_body({"a": 2.0, "b": [3.0, 0.5]}, "msgpack")
    assert msgpack.unpackb(body) == {"a": 2, "b": [3, 0.5]}
    assert isinstance(msgpack.unpackb(body)["a"], int)
    plain = codec.encode_body({"a": 2, "b": [3, 0.5]}, "msgpack")
    assert plain == body


@pytest.mark.parametrize("value", ERROR_VALUES)
@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_values_outside_json_fail_alike(
    json_path: str, encoding: codec.Encoding, value: Any
) -> None:
    with pytest.raises((TypeError, ValueError)):
        codec.encode_body(value, encoding)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_nesting_limit_on_either_path(json_path: str, encoding: codec.Encoding) -> None:
    ok = _nested(codec.MAX_NESTING_DEPTH)
    assert codec.decode_body(codec.encode_body(ok, encoding), encoding) == ok
    with pytest.raises(ValueError, match="nested deeper"):
        codec.encode_body(_nested(codec.MAX_NESTING_DEPTH + 1), encoding)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested deeper"):
        codec.encode_body(cyclic, encoding)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"a": NaN}', "malformed_payload"),
        (b'{"a": Infinity}', "malformed_payload"),
        (b'{"a": 1', "malformed_payload"),
        (b'{"a": "\xff"}', "invalid_utf8"),
        (b"[" * 101 + b"]" * 101, "malformed_payload"),
        (b"\xef\xbb\xbf{}", "malformed_payload"),
    ],
)
def test_json_decoding_errors_are_the_same(json_path: str, body: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as caught:
        codec.decode_body(body, "json")
    assert caught.value.code == code


@pytest.mark.parametrize(
    "body",
    [
        b'{"big": 18446744073709551616, "neg": -9223372036854775809}',
        b'{"lone": "\\ud800", "pair": "\\ud834\\udd1e"}',
        b'{"huge": 1e400, "dup": 1, "dup": 2}',
        b' [1.0, -0, 0.1, "\\u00e9"] ',
    ],
)
def test_json_values_orjson_refuses_decode_as_the_stdlib_does(json_path: str, body: bytes) -> None:
    import json

    assert repr(codec.decode_body(body, "json")) == repr(json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb({"k": b"bin"}, use_bin_type=True),
        msgpack.packb({1: "int key"}),
        msgpack.packb({"f": math.nan}),
        msgpack.packb([msgpack.ExtType(5, b"x")]),
        msgpack.packb(_nested(codec.MAX_NESTING_DEPTH + 1)),
    ],
)
def test_msgpack_outside_the_json_model_is_malformed(body: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        codec.decode_body(body, "msgpack")
    assert caught.value.code == "malformed_payload"


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-07T08:54:04Z",
        "2026-12-07T08:54:04.1Z",
        "2026-12-07T08:54:04.123Z",
        "2026-12-07T08:54:04.123456789+00:00",
        "2026-12-07T08:54:60Z",  # a leap second
        "2024-02-29T23:59:59.999Z",
        "2026-12-07T08:54:04.1234567891Z",  # beyond nanoseconds: truncated
        "2026-12-07T08:54:04+02:00",
        "2026-12-07 08:54:04z",
        "2026-12-07T08:54:04",
    ],
)
def test_wire_times_parse_as_the_reference_does(value: str) -> None:
    assert parse_wire_time(value) == parse_rfc3339(value)
    assert parse_wire_time(value) == parse_rfc3339(value)  # from the minute cache


@pytest.mark.parametrize(
    "value",
    ["2026-13-07T08:54:04Z", "2026-02-30T08:54:04Z", "2026-12-07T08:54:61Z", "2026-12-07", ""],
)
def test_bad_wire_times_fail_as_the_reference_does(value: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(value)
    with pytest.raises(ValueError):
        parse_wire_time(value)


# ------------------------------------------------------------------------------------------
# The runner process on either loop and JSON codec

FALLBACKS = {
    "fast": {"RRQKIT_EVENT_LOOP": "uvloop", "RRQKIT_JSON": "auto"},
    "fallback": {"RRQKIT_EVENT_LOOP": "asyncio", "RRQKIT_JSON": "stdlib"},
}


@pytest.mark.parametrize("mode", list(FALLBACKS))
@pytest.mark.parametrize(
    ("transport", "encoding"), [("unix", "json"), ("stdio", "json"), ("tcp", "msgpack")]
)
def test_runner_on_either_loop(mode: str, transport: str, encoding: codec.Encoding) -> None:
    if mode == "fast":
        pytest.importorskip("uvloop")
    with running(transport, encoding, env=FALLBACKS[mode]) as runner:
        conn = runner.connect()
        expected = "uvloop loop, orjson" if mode == "fast" else "asyncio loop, json"
        assert expected in runner.stderr_text
        # a burst of 64 (the in-flight limit): the outcomes of one loop turn share writes, each
        # still arrives once
        for _ in range(3):
            ids = [conn.send_request("echo", {"i": i, "s": "é"}) for i in range(64)]
            responses = conn.responses(ids)
            assert [responses[r]["result"] for r in ids] == [{"i": i, "s": "é"} for i in range(64)]
        assert conn.ping() >= 0
        # the deadline timer answers before the handler could (it would answer success)
        slow = conn.send_request("sleep", {"ms": 5000}, deadline=rfc3339(0.2))
        assert conn.response(slow, timeout=10)["status"] == "timeout"
        job = new_id("job")
        cancelled = conn.send_request("sleep", {"ms": 5000}, job_id=job)
        conn.cancel(job)
        assert conn.response(cancelled)["error"]["type"] == "cancelled"


def test_unknown_event_loop_choice_stops_the_runner() -> None:
    with running("unix", "json", env={"RRQKIT_EVENT_LOOP": "tokio"}) as runner:
        assert runner.wait(15) == 2
        assert "RRQKIT_EVENT_LOOP" in runner.stderr_text


@pytest.mark.parametrize("mode", list(FALLBACKS))
def test_stdio_on_regular_files(mode: str, tmp_path: Path) -> None:
    """Files are not pipes: served by threads on either loop (uvloop aborts on them)."""
    if mode == "fast":
        pytest.importorskip("uvloop")
    env = {**os.environ, **FALLBACKS[mode]}
    body = codec.encode_frame({"type": "request", "payload": request("echo", {"a": 1})}, "json")
    (tmp_path / "in.bin").write_bytes(body)
    with (tmp_path / "in.bin").open("rb") as stdin, (tmp_path / "out.bin").open("wb") as stdout:
        # stdin a file: read to its end, which aborts what is in flight, and exit 0
        done = subprocess.run([*CONFORMANCE_CMD, "--stdio"], stdin=stdin, stdout=stdout, env=env)
    assert done.returncode == 0
    out_path = tmp_path / "out2.bin"
    with out_path.open("wb") as stdout:
        runner = subprocess.Popen(
            [*CONFORMANCE_CMD, "--stdio"], stdin=subprocess.PIPE, stdout=stdout, env=env
        )
        assert runner.stdin is not None
        runner.stdin.write(body)
        runner.stdin.flush()
        deadline = time.monotonic() + 15
        while len(out_path.read_bytes()) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        runner.stdin.close()
        assert runner.wait(15) == 0
    [response] = codec.FrameDecoder("json").feed(out_path.read_bytes())
    assert response.raw["payload"]["result"] == {"a": 1}
