"""Unit tests: registry, codec details, timestamps, canonical JSON, address parsing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import msgpack
import pytest

from rrqkit import ExecutionOutcome, Registry, RetryJob
from rrqkit.canonical import canonical_json
from rrqkit.cli import UsageError, parse_tcp_socket
from rrqkit.codec import decode_body, decode_envelope, encode_body, frame
from rrqkit.errors import DecodeError, ProducerError
from rrqkit.timeutil import format_rfc3339, parse_rfc3339, to_epoch_ns

# -- registry --------------------------------------------------------------------------------


async def _handler(request: object) -> None:
    return None


def test_registry_register_and_lookup() -> None:
    registry = Registry()
    registry.register("a", _handler)
    assert registry.get_handler("a") is _handler
    assert registry.get_handler("b") is None
    assert "a" in registry and len(registry) == 1
    assert registry.get_registered_functions() == ["a"] == registry.names


def test_registry_duplicates_and_non_callables() -> None:
    registry = Registry()
    registry.register("a", _handler)
    with pytest.raises(ValueError):
        registry.register("a", _handler)
    registry.register("a", _handler, replace=True)
    with pytest.raises(ValueError):
        registry.register("b", "not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        registry.register(" ", _handler)


def test_registry_unregister_clear_and_decorator() -> None:
    registry = Registry()

    @registry.handler()
    async def first(request: object) -> None: ...

    @registry.handler("named")
    async def second(request: object) -> None: ...

    assert registry.names == ["first", "named"]
    assert registry.unregister("first") is True
    assert registry.unregister("first") is False
    registry.clear()
    assert registry.names == []


def test_retry_job_and_outcome_validation() -> None:
    exc = RetryJob("later", retry_after_seconds=3)
    assert (exc.message, exc.retry_after_seconds) == ("later", 3)
    with pytest.raises(ValueError):
        ExecutionOutcome(status="done")


# -- codec -----------------------------------------------------------------------------------


def test_msgpack_writes_smallest_ints_and_float64() -> None:
    body = encode_body({"a": 1, "b": 2.0, "c": 2.5, "d": -1, "e": 300}, "msgpack")
    assert body == msgpack.packb({"a": 1, "b": 2, "c": 2.5, "d": -1, "e": 300})
    assert b"\xcb" in body  # 2.5 as float 64
    assert msgpack.unpackb(body) == {"a": 1, "b": 2, "c": 2.5, "d": -1, "e": 300}


def test_writers_refuse_non_json_values() -> None:
    for encoding in ("json", "msgpack"):
        with pytest.raises(ValueError):
            encode_body({"x": math.nan}, encoding)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            encode_body({"x": b"bytes"}, encoding)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            encode_body({"x": {1, 2}}, encoding)  # type: ignore[arg-type]


def test_msgpack_outside_json_model_is_malformed() -> None:
    for value in ({"type": "ping", "payload": {"nonce": b"x"}}, {1: "int key"}):
        body = msgpack.packb(value, use_bin_type=True)
        with pytest.raises(DecodeError) as caught:
            decode_body(body, "msgpack")
        assert caught.value.code == "malformed_payload"
    ext = msgpack.packb(msgpack.ExtType(5, b"x"))
    with pytest.raises(DecodeError):
        decode_body(ext, "msgpack")


def test_json_edge_cases() -> None:
    for text, code in [
        (b"\xef\xbb\xbf{}", "malformed_payload"),
        (b"{" * 100_000, "malformed_payload"),
        (b'{"a":Infinity}', "malformed_payload"),
        (b'{"a":"\xc3"}', "invalid_utf8"),
    ]:
        with pytest.raises(DecodeError) as caught:
            decode_body(text, "json")
        assert caught.value.code == code


def test_envelope_and_payload_validation() -> None:
    cases = [
        ({"type": "ping"}, "invalid_envelope"),
        ({"type": "nope", "payload": {}}, "unknown_frame_type"),
        ({"type": "ping", "payload": {"nonce": 1}}, "invalid_frame"),
        ({"type": "cancel", "payload": {"job_id": "j", "hard_kill": "yes"}}, "invalid_frame"),
        ({"type": "hello", "payload": {"protocol_version": "2", "runtime": "x"}}, "invalid_frame"),
        ({"type": "response", "payload": {"job_id": "j", "status": "success"}}, "invalid_frame"),
        (
            {"type": "response", "payload": {"job_id": "j", "request_id": None, "status": "ok"}},
            "invalid_frame",
        ),
        (
            {
                "type": "request",
                "payload": {
                    "request_id": "r",
                    "job_id": "j",
                    "function_name": "f",
                    "params": [],
                    "context": {},
                },
            },
            "invalid_frame",
        ),
        (
            {
                "type": "request",
                "payload": {
                    "request_id": "r",
                    "job_id": "j",
                    "function_name": "f",
                    "context": {
                        "job_id": "j",
                        "attempt": True,
                        "enqueue_time": "t",
                        "queue_name": "q",
                    },
                },
            },
            "invalid_frame",
        ),
    ]
    for envelope, code in cases:
        with pytest.raises(DecodeError) as caught:
            decode_envelope(envelope)
        assert caught.value.code == code, envelope


def test_job_wide_cancel_omits_request_id() -> None:
    from rrqkit import CancelRequest

    data = frame("cancel", CancelRequest(job_id="j"), "json")
    assert (
        data[4:]
        == b'{"type":"cancel","payload":{"protocol_version":"2","job_id":"j","hard_kill":false}}'
    )


# -- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T12:00:00Z", "2026-01-01T12:00:00+00:00"),
        ("2026-01-01T12:00:00.12Z", "2026-01-01T12:00:00.120+00:00"),
        ("2026-01-01T12:00:00.123456Z", "2026-01-01T12:00:00.123456+00:00"),
        ("2026-01-01T12:00:00.1234567Z", "2026-01-01T12:00:00.123456700+00:00"),
        ("2026-01-01T12:00:00.123456789+00:00", "2026-01-01T12:00:00.123456789+00:00"),
        ("2026-01-01T14:30:00+02:30", "2026-01-01T12:00:00+00:00"),
        ("2026-01-01T12:00:00", "2026-01-01T12:00:00+00:00"),
        ("2026-01-01 12:00:00.5-01:00", "2026-01-01T13:00:00.500+00:00"),
    ],
)
def test_rfc3339_round_trip(text: str, expected: str) -> None:
    assert format_rfc3339(parse_rfc3339(text)) == expected


@pytest.mark.parametrize(
    "text", ["2026-13-01T00:00:00Z", "yesterday", "2026-01-01", "2026-02-30T00:00:00Z"]
)
def test_rfc3339_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_datetimes() -> None:
    aware = datetime(2026, 1, 1, 12, 0, 0, 120000, tzinfo=timezone(timedelta(hours=1)))
    assert format_rfc3339(to_epoch_ns(aware)) == "2026-01-01T11:00:00.120+00:00"
    naive = datetime(2026, 1, 1, 12, 0, 0)
    assert format_rfc3339(to_epoch_ns(naive)) == "2026-01-01T12:00:00+00:00"
    assert to_epoch_ns(datetime(1970, 1, 1, tzinfo=UTC)) == 0


# -- canonical JSON --------------------------------------------------------------------------


def test_canonical_json() -> None:
    value = {
        "b": 1,
        "a": [1.0, 1.5, -0.0, 1e20, 'é\u0001\n"\\', None, True],
        "é": {"z": 1, "Z": 2},
        "\U0001f600": 0,
        "\uffff": 1,
    }
    assert canonical_json(value) == (
        '{"a":[1,1.5,0,100000000000000000000,"é\\u0001\\n\\"\\\\",null,true],'
        '"b":1,"é":{"Z":2,"z":1},"\uffff":1,"\U0001f600":0}'
    )


def test_canonical_json_rejects() -> None:
    for bad, fragment in [
        ({"a": [1, math.inf]}, "params.a[1]"),
        ({"a": {"b": math.nan}}, "params.a.b"),
        ({"a": {1: 2}}, "keys must be strings"),
        ({"a": object()}, "JSON-serializable"),
    ]:
        with pytest.raises(ProducerError) as caught:
            canonical_json(bad)
        assert caught.value.code == "invalid_params"
        assert fragment in caught.value.message


# -- addresses -------------------------------------------------------------------------------


def test_parse_tcp_socket() -> None:
    assert parse_tcp_socket("127.0.0.1:9000", allow_remote=False) == ("127.0.0.1", 9000)
    assert parse_tcp_socket("localhost:1", allow_remote=False) == ("127.0.0.1", 1)
    assert parse_tcp_socket("[::1]:9000", allow_remote=False) == ("::1", 9000)
    assert parse_tcp_socket("127.8.0.1:9000", allow_remote=False) == ("127.8.0.1", 9000)
    for bad in ("10.0.0.1:80", "example.com:80", "[::]:80", "127.0.0.1", "127.0.0.1:99999"):
        with pytest.raises(UsageError):
            parse_tcp_socket(bad, allow_remote=False)
    assert parse_tcp_socket("0.0.0.0:80", allow_remote=True) == ("0.0.0.0", 80)
    assert parse_tcp_socket("example.com:80", allow_remote=True) == ("example.com", 80)
