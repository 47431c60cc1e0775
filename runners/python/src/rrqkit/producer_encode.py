"""Encoding a job's fields: params as canonical JSON (checked for depth, size and the job
catalog), RFC 3339 timestamps and random job ids, each as the reference implementation writes
it (canonical_json, timeutil.format_rfc3339, uuid4), with the work the common cases repeat
done once: the C encoder built once, the date part cached per second, random bytes drawn 256
ids at a time. tests/test_producer_plan.py checks them against the reference. Pure: no I/O."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from .canonical import canonical_json, normalize_json
from .codec import MAX_PARAMS_DEPTH, nests_deeper_than
from .errors import ProducerError

if TYPE_CHECKING:
    from .contracts import JobCatalog

__all__ = ["MAX_PARAMS_BYTES", "checked_params", "new_job_id", "stamp"]

#: 16 MiB frame cap minus 64 KiB for the envelope.
MAX_PARAMS_BYTES: Final = 16 * 1024 * 1024 - 64 * 1024

# The canonical encoder, built once (json.dumps builds one per call when given options).
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
)


def _c_encoder() -> Any:
    """CPython's C encoder with the canonical settings, made once instead of per call (as
    ``JSONEncoder.encode`` does). No cycle markers: it only sees values ``_plain`` accepted,
    which nest at most MAX_PARAMS_DEPTH levels. None when this Python has no C encoder or it
    does not write what the JSONEncoder writes."""
    try:
        from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

        made = c_make_encoder(
            None, _ENCODER.default, encode_basestring, None, ":", ",", True, False, False
        )
        sample = {"b": [1, -2.5, None, True, "\u00e9\n"], "a": {}}
        if "".join(made(sample, 0)) != _ENCODER.encode(sample):
            return None
        return made
    except Exception:  # an interpreter whose private encoder differs: use the public one
        return None


_C_ENCODER: Final = _c_encoder()


def _encode(params: Mapping[str, Any]) -> str:
    if _C_ENCODER is not None:
        return "".join(_C_ENCODER(params, 0))
    return _ENCODER.encode(params)


_PLAIN_SCALARS: Final = frozenset({str, int, bool, type(None)})


def _plain(value: Any, depth: int) -> bool:
    """True when ``value`` is JSON that the encoder already writes canonically: exact dicts
    with str keys, lists, and scalars other than integral or non-finite floats, nested at most
    MAX_PARAMS_DEPTH levels. Anything else takes the full path (normalize_json), which also
    gives the precise error."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is float:
        return math.isfinite(value) and not value.is_integer()
    if depth >= MAX_PARAMS_DEPTH:
        return False
    if kind is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    if kind is list:
        return all(_plain(v, depth + 1) for v in value)
    return False


def _params_text(params: Mapping[str, Any]) -> str:
    """The canonical JSON of ``params``, checked for depth, encodability and size."""
    text: str | None = _encode(params) if _plain(params, 0) else None
    if text is None:
        if nests_deeper_than(params, MAX_PARAMS_DEPTH):
            raise ProducerError(
                "invalid_params",
                f"params nest deeper than {MAX_PARAMS_DEPTH} levels; a runner could not "
                "receive them",
            )
        text = canonical_json(params, "params")
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise ProducerError(
                "invalid_params", "params contains a string that is not valid Unicode"
            ) from None
    if size > MAX_PARAMS_BYTES:
        raise ProducerError(
            "payload_too_large",
            f"params are {size} bytes when encoded; the limit is {MAX_PARAMS_BYTES}",
        )
    return text


def checked_params(
    catalog: JobCatalog | None, function_name: str, params: Any
) -> tuple[Mapping[str, Any], str]:
    """``params`` (``{}`` for None) and their canonical JSON, checked against the catalog."""
    if params is None:
        params = {}
    elif not isinstance(params, Mapping):
        raise ProducerError("invalid_params", "params must be a JSON object")
    text = _params_text(params)
    if catalog is not None:
        problem = catalog.check_params(function_name, normalize_json(params))
        if problem is not None:
            raise ProducerError(
                "invalid_params",
                problem.message,
                function_name=problem.function_name,
                field=problem.field,
            )
    return params, text


# uuid4's version (4) and variant (RFC 4122) bits over 16 random bytes, as uuid.uuid4() sets
_UUID_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)
# os.urandom, 256 ids at a time: one getrandom call instead of one per job. A forked child
# starts with an empty pool, so it never repeats its parent's ids.
_POOL_BYTES: Final = 16 * 256
_pool: list[Any] = [b"", _POOL_BYTES]


def _reset_pool() -> None:
    _pool[0], _pool[1] = b"", _POOL_BYTES


os.register_at_fork(after_in_child=_reset_pool)


def new_job_id() -> str:
    """A random job id, as ``str(uuid.uuid4())`` (from os.urandom) without a UUID object."""
    data, at = _pool
    if at >= _POOL_BYTES:
        data, at = os.urandom(_POOL_BYTES), 0
        _pool[0] = data
    _pool[1] = at + 16
    value = (int.from_bytes(data[at : at + 16]) & _UUID_CLEAR) | _UUID_SET
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_NS_PER_S: Final = 1_000_000_000
# The date-and-time part of the last second formatted: enqueues in the same second reuse it.
_last_second: list[Any] = [None, ""]


def stamp(epoch_ns: int) -> str:
    """``timeutil.format_rfc3339`` with the date part cached per second (the same text)."""
    seconds, nanos = divmod(epoch_ns, _NS_PER_S)
    if _last_second[0] == seconds:
        base = _last_second[1]
    else:
        t = time.gmtime(seconds)
        base = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
        _last_second[0], _last_second[1] = seconds, base
    if nanos == 0:
        return f"{base}+00:00"
    if nanos % 1_000_000 == 0:
        return f"{base}.{nanos // 1_000_000:03d}+00:00"
    if nanos % 1_000 == 0:
        return f"{base}.{nanos // 1_000:06d}+00:00"
    return f"{base}.{nanos:09d}+00:00"
