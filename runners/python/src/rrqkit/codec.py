"""Framing and encodings of runner protocol v2 (RUNNER_PROTOCOL.md §2–§4, §11).

A frame is a 4-byte unsigned big-endian length ``N`` (1 ≤ N ≤ 16 MiB) followed by ``N`` bytes
holding one envelope ``{"type": ..., "payload": {...}}`` in the connection's encoding (``json``
or ``msgpack``). Every decoding problem raises :class:`~rrqkit.errors.DecodeError` with one of
the stable codes of §11.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Literal, Protocol

import msgpack

from .errors import DecodeError, FrameTooLargeError
from .models import (
    CancelRequest,
    ExecutionOutcome,
    ExecutionRequest,
    Hello,
    OutputChunk,
    Ping,
    ProgressUpdate,
)

__all__ = [
    "ENCODINGS",
    "FRAME_TYPES",
    "MAX_FRAME_BYTES",
    "MAX_NESTING_DEPTH",
    "MAX_PARAMS_DEPTH",
    "Encoding",
    "Frame",
    "FrameDecoder",
    "codec_uses_orjson",
    "decode_body",
    "decode_envelope",
    "decode_frame_body",
    "encode_body",
    "encode_frame",
    "frame",
    "nests_deeper_than",
    "parse_header",
    "success_frame",
]

MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
#: Deepest allowed nesting of arrays and maps in a body, the envelope map being level 1 (§4).
MAX_NESTING_DEPTH: Final = 100
#: Deepest nesting a request's params may have (``{}`` is 1): they sit at level 3 of the body.
MAX_PARAMS_DEPTH: Final = MAX_NESTING_DEPTH - 2
HEADER: Final = struct.Struct(">I")
Encoding = Literal["json", "msgpack"]
ENCODINGS: Final[tuple[Encoding, ...]] = ("json", "msgpack")


def _load_orjson() -> ModuleType | None:
    """orjson (the ``fast`` extra) unless absent or ``RRQKIT_JSON=stdlib``."""
    if os.environ.get("RRQKIT_JSON", "").strip().lower() == "stdlib":
        return None
    try:
        import orjson
    except ImportError:
        return None
    return orjson


#: The JSON fast path, or None for the standard library only. Either way the bytes decode to
#: the same values, and every error comes from the standard library's path: orjson is only
#: tried on plain trees (see :func:`_is_plain`) and its failures fall back.
_orjson: ModuleType | None = _load_orjson()
_INT_MIN: Final = -(2**63)
_INT_END: Final = 2**64  # msgpack and orjson both write -2**63 .. 2**64-1
# A run of 19 ASCII digits (the shortest integer beyond 64 bits has 19), found by mapping
# every digit byte to b"1" and every other byte to b"0": ~10x cheaper than a regex search.
_DIGITS_AS_ONES: Final = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))
_LONG_DIGIT_RUN: Final = b"1" * 19


def _has_long_digit_run(body: bytes) -> bool:
    return _LONG_DIGIT_RUN in body.translate(_DIGITS_AS_ONES)


def _json_too_deep(body: bytes, value: Any) -> bool:
    """Whether decoded JSON nests beyond the limit. A value cannot nest deeper than the number
    of opening brackets in its text (brackets inside strings only add to that count), so the
    walk runs only for bodies with more than the limit's worth."""
    if body.count(b"{") + body.count(b"[") <= MAX_NESTING_DEPTH:
        return False
    return _decoded_too_deep(value, MAX_NESTING_DEPTH)


def codec_uses_orjson() -> bool:
    """True when JSON frames go through orjson (installed, and not ``RRQKIT_JSON=stdlib``)."""
    return _orjson is not None


class _WireModel(Protocol):
    def to_wire(self) -> dict[str, Any]: ...


_PAYLOAD_TYPES: Final[dict[str, Callable[[Mapping[str, Any]], Any]]] = {
    "request": ExecutionRequest.from_wire,
    "response": ExecutionOutcome.from_wire,
    "cancel": CancelRequest.from_wire,
    "hello": Hello.from_wire,
    "ping": Ping.from_wire,
    "pong": Ping.from_wire,
    # rrqkit additions (§13), runner → orchestrator, only for a request whose `live` enables them
    "progress": ProgressUpdate.from_wire,
    "output": OutputChunk.from_wire,
}
FRAME_TYPES: Final = tuple(_PAYLOAD_TYPES)

Payload = (
    ExecutionRequest
    | ExecutionOutcome
    | CancelRequest
    | Hello
    | Ping
    | ProgressUpdate
    | OutputChunk
)


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: its ``type``, the typed ``payload`` and the ``raw`` envelope exactly as
    decoded (unknown fields included, key order preserved)."""

    type: str
    payload: Payload
    raw: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Bodies


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check_json_model(value: Any) -> None:
    """Raise DecodeError unless ``value`` only uses the JSON data model and nests at most
    MAX_NESTING_DEPTH levels (msgpack reads)."""
    # msgpack builds exact types: the common ones are checked by identity, inline, and only
    # containers go on the stack.
    stack: list[tuple[Any, int]] = [(value, 1)]
    push = stack.append
    while stack:
        item, level = stack.pop()
        kind = type(item)
        if kind is dict:
            if level > MAX_NESTING_DEPTH:
                raise DecodeError("malformed_payload", _TOO_DEEP)
            for key, child in item.items():
                if type(key) is not str:
                    raise DecodeError("malformed_payload", "MessagePack map keys must be strings")
                _check_child(child, level, push)
        elif kind is list:
            if level > MAX_NESTING_DEPTH:
                raise DecodeError("malformed_payload", _TOO_DEEP)
            for child in item:
                _check_child(child, level, push)
        else:
            _check_scalar(item)


def _check_child(child: Any, level: int, push: Callable[[tuple[Any, int]], None]) -> None:
    kind = type(child)
    if kind is str or kind is int or kind is bool or child is None:
        return
    if kind is dict or kind is list:
        push((child, level + 1))
    else:
        _check_scalar(child)


def _check_scalar(item: Any) -> None:
    if isinstance(item, float):
        if not math.isfinite(item):
            raise DecodeError("malformed_payload", "NaN and infinite floats have no JSON form")
        return
    if item is None or isinstance(item, bool | int | str):
        return
    raise DecodeError(
        "malformed_payload",
        f"MessagePack value of type {type(item).__name__} is outside the JSON data model",
    )


_TOO_DEEP: Final = f"body is nested deeper than {MAX_NESTING_DEPTH} levels"


def nests_deeper_than(value: Any, levels: int) -> bool:
    """True when ``value`` nests lists, tuples and mappings more than ``levels`` deep (a scalar
    is 0 levels, ``{}`` is 1). Iterative and stops at the limit, so a cyclic value is simply too
    deep."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth == levels:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _decoded_too_deep(value: Any, levels: int) -> bool:
    """:func:`nests_deeper_than` for decoded JSON, which holds exact dicts and lists only:
    checked by identity, without the Mapping ABC, and only containers go on the stack."""
    if type(value) is not dict and type(value) is not list:
        return False  # a scalar is 0 levels
    stack: list[tuple[Any, int]] = [(value, 0)]
    push = stack.append
    while stack:
        item, depth = stack.pop()
        if depth == levels:
            return True
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is dict or kind is list:
                push((child, depth + 1))
    return False


def decode_body(body: bytes, encoding: Encoding) -> Any:
    """Decode one frame body into plain Python values (dict, list, str, int, float, bool,
    None). Raises ``invalid_utf8`` or ``malformed_payload``."""
    if encoding == "json":
        if type(body) is not bytes:
            body = bytes(body)
        # orjson reads integers beyond 64 bits as floats: a body with 19 digits in a row (the
        # shortest such integer has 19) is left to the standard library.
        if _orjson is not None and not _has_long_digit_run(body):
            try:
                value = _orjson.loads(body)
            except _orjson.JSONDecodeError:
                pass  # the standard library decides (big integers, lone surrogates, errors)
            else:
                if _json_too_deep(body, value):
                    raise DecodeError("malformed_payload", _TOO_DEEP)
                return value
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("invalid_utf8", f"JSON body is not valid UTF-8: {exc}") from None
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise DecodeError("malformed_payload", f"body is not one JSON value: {exc}") from None
        if _json_too_deep(body, value):
            raise DecodeError("malformed_payload", _TOO_DEEP)
        return value
    if encoding == "msgpack":
        try:
            value = msgpack.unpackb(
                body, raw=False, strict_map_key=False, use_list=True, timestamp=0
            )
        except UnicodeDecodeError as exc:
            raise DecodeError(
                "invalid_utf8", f"MessagePack str is not valid UTF-8: {exc}"
            ) from None
        except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
            raise DecodeError(
                "malformed_payload", f"body is not one MessagePack value: {exc}"
            ) from None
        _check_json_model(value)
        return value
    raise ValueError(f"unknown encoding {encoding!r}")


def _msgpack_model(value: Any) -> Any:
    """Convert to what msgpack should write: str keys, lists, integral numbers as integers."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r} cannot be encoded")
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, child in value.items():
            out[_json_key(key)] = _msgpack_model(child)
        return out
    if isinstance(value, list | tuple):
        return [_msgpack_model(child) for child in value]
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_key(key: Any) -> str:
    # Same key coercions as the json module, so both encodings carry the same data.
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float):
        if not math.isfinite(key):
            raise ValueError("non-finite number cannot be a key")
        return repr(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _is_plain(value: Any, levels: int, integral_floats: bool) -> bool:
    """True when ``value`` is only exact dicts with str keys, lists, str, bool, None, ints of
    64 bits and finite floats (integral ones only if ``integral_floats``), at most ``levels``
    deep: values orjson and msgpack write exactly as the careful path would. Anything else
    (subclasses, tuples, dataclasses, NaN, …) takes the careful path, which keeps every
    conversion and error of the protocol."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    push = stack.append
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict:
            if depth == levels:
                return False
            for key, child in item.items():
                if type(key) is not str or not _plain_child(child, depth, push, integral_floats):
                    return False
        elif kind is list:
            if depth == levels:
                return False
            for child in item:
                if not _plain_child(child, depth, push, integral_floats):
                    return False
        elif not _plain_child(item, depth - 1, push, integral_floats):
            return False
    return True


def _plain_child(
    child: Any, depth: int, push: Callable[[tuple[Any, int]], None], integral_floats: bool
) -> bool:
    kind = type(child)
    if kind is str or kind is bool or child is None:
        return True
    if kind is int:
        return bool(_INT_MIN <= child < _INT_END)
    if kind is float:
        return math.isfinite(child) and (integral_floats or not child.is_integer())
    if kind is dict or kind is list:
        push((child, depth + 1))
        return True
    return False


def encode_body(value: Any, encoding: Encoding) -> bytes:
    """Encode one envelope. JSON is compact UTF-8 without escaping non-ASCII; MessagePack uses
    only the JSON data model (str, never bin). Raises TypeError/ValueError for values outside
    the JSON data model (including NaN and ±Infinity) or nested deeper than MAX_NESTING_DEPTH
    (a cyclic value counts as too deep)."""
    if encoding == "json":
        if _orjson is not None and _is_plain(value, MAX_NESTING_DEPTH, True):
            try:
                return _orjson.dumps(value)  # type: ignore[no-any-return]
            except TypeError:
                pass  # e.g. a lone surrogate: the standard library escapes it
        _check_depth(value)
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (only possible from a \\udXXX escape) cannot be UTF-8: escape them.
            return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")
    if encoding == "msgpack":
        # Integral floats are written as integers, so a tree holding one is converted first.
        if not _is_plain(value, MAX_NESTING_DEPTH, False):
            _check_depth(value)
            value = _msgpack_model(value)
        return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]
    raise ValueError(f"unknown encoding {encoding!r}")


def _check_depth(value: Any) -> None:
    if nests_deeper_than(value, MAX_NESTING_DEPTH):
        raise ValueError(f"value is nested deeper than {MAX_NESTING_DEPTH} levels (or cyclic)")


# --------------------------------------------------------------------------------------------
# Envelopes and frames


def decode_envelope(value: Any) -> Frame:
    """Validate a decoded body as an envelope and type its payload."""
    if not isinstance(value, dict):
        raise DecodeError("invalid_envelope", "frame body is not a map")
    frame_type = value.get("type")
    if not isinstance(frame_type, str):
        raise DecodeError("invalid_envelope", "envelope type is missing or not a string")
    payload = value.get("payload")
    if not isinstance(payload, dict):
        raise DecodeError("invalid_envelope", "envelope payload is missing or not a map")
    reader = _PAYLOAD_TYPES.get(frame_type)
    if reader is None:
        raise DecodeError("unknown_frame_type", f"unknown frame type {frame_type!r}")
    return Frame(frame_type, reader(payload), value)


def decode_frame_body(body: bytes, encoding: Encoding) -> Frame:
    return decode_envelope(decode_body(body, encoding))


def parse_header(header: bytes) -> int:
    """Return the body length announced by a 4-byte header; ``frame_empty`` or
    ``frame_too_large`` when it is out of range."""
    (length,) = HEADER.unpack(header)
    if length == 0:
        raise DecodeError("frame_empty", "frame length is 0")
    if length > MAX_FRAME_BYTES:
        raise DecodeError(
            "frame_too_large", f"frame length {length} exceeds the {MAX_FRAME_BYTES}-byte limit"
        )
    return int(length)


def frame_bodies(data: bytes, stopped: Callable[[], bool]) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` offsets of the body of each complete frame at the start of
    ``data``, in order, until an incomplete frame or until ``stopped()`` (asked before each
    header is read). The last ``end`` is where the unread rest begins. Raises ``frame_empty``
    or ``frame_too_large`` for a header out of range."""
    pos, end = 0, len(data)
    while end - pos >= 4 and not stopped():
        length = parse_header(data[pos : pos + 4])
        start = pos + 4
        if end - start < length:
            return
        pos = start + length
        yield start, pos


def encode_frame(envelope: Any, encoding: Encoding) -> bytes:
    """Encode an envelope into a complete frame (header + body).

    Raises :class:`FrameTooLargeError` (nothing is written) when the body exceeds 16 MiB.
    """
    body = encode_body(envelope, encoding)
    if len(body) > MAX_FRAME_BYTES:
        raise FrameTooLargeError(len(body), MAX_FRAME_BYTES)
    return HEADER.pack(len(body)) + body


def frame(frame_type: str, payload: _WireModel | Mapping[str, Any], encoding: Encoding) -> bytes:
    """Encode ``{"type": frame_type, "payload": payload}`` into a frame."""
    # to_wire first: an isinstance check against Mapping (an ABC) costs more than the call.
    to_wire = getattr(payload, "to_wire", None)
    body = to_wire() if to_wire is not None else dict(payload)  # type: ignore[arg-type]
    return encode_frame({"type": frame_type, "payload": body}, encoding)


def success_frame(job_id: str, request_id: str, result: Any, encoding: Encoding) -> bytes | None:
    """The ``response`` frame of a ``success`` outcome, as :func:`frame` writes it, when
    ``result`` is a plain tree (see :func:`_is_plain`); None otherwise (and for a body over
    the frame limit), for :func:`frame` to convert it or report why it cannot."""
    # The payload's other fields are known strings and nulls: only the result is scanned.
    if not _is_plain(result, MAX_PARAMS_DEPTH, encoding == "json"):
        return None
    envelope = {
        "type": "response",
        "payload": {
            "job_id": job_id,
            "request_id": request_id,
            "status": "success",
            "result": result,
            "error": None,
            "retry_after_seconds": None,
        },
    }
    try:
        if encoding == "msgpack":
            body: bytes = msgpack.packb(envelope, use_bin_type=True)
        elif _orjson is not None:
            body = _orjson.dumps(envelope)
        else:
            text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
            body = text.encode("utf-8")
    except (TypeError, ValueError):  # a lone surrogate: the careful path escapes it
        return None
    if len(body) > MAX_FRAME_BYTES:
        return None
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Incremental frame reader: ``feed`` bytes in any chunking, get complete frames.

    After the first error the decoder is unusable (the connection must be closed). Call
    :meth:`close` at end of stream: it raises ``frame_truncated`` if a frame was cut short.
    """

    def __init__(self, encoding: Encoding = "json") -> None:
        self.encoding: Encoding = encoding
        self._buffer = bytearray()
        self._need: int | None = None  # body length once the header has been read
        self._failed: DecodeError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        frames: list[Frame] = []
        try:
            while True:
                if self._need is None:
                    if len(self._buffer) < 4:
                        break
                    self._need = parse_header(bytes(self._buffer[:4]))
                    del self._buffer[:4]
                if len(self._buffer) < self._need:
                    break
                body = bytes(self._buffer[: self._need])
                del self._buffer[: self._need]
                self._need = None
                frames.append(decode_frame_body(body, self.encoding))
        except DecodeError as exc:
            self._failed = exc
            raise
        return frames

    @property
    def pending(self) -> bool:
        """True when the stream is inside a frame."""
        return self._need is not None or bool(self._buffer)

    def close(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self.pending:
            self._failed = DecodeError("frame_truncated", "stream ended inside a frame")
            raise self._failed
