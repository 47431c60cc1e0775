"""Flow-control enqueue options (issue 22; README "Flow control").

``concurrency_key``, ``concurrency_limit``, ``start_rate``, ``limit``, ``ordering_key`` and
``requires`` (issue 23, routing by capability): the
same names, rules and messages as the TypeScript producer (``src/producer/flow-options.ts``) and
the Rust one. They are stored as additive job hash fields by ``enqueue-fields-1.lua``, only when
given, so an enqueue without them writes RRQ's bytes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from .config import as_int
from .errors import ProducerError
from .retry_policy import closest

__all__ = ["FLOW_OPTION_NAMES", "flow_control_fields"]

#: The option names, in the order they are checked.
FLOW_OPTION_NAMES: Final = (
    "concurrency_key",
    "concurrency_limit",
    "start_rate",
    "limit",
    "ordering_key",
    "requires",
)
MAX_FLOW_KEY_CHARS: Final = 256
MAX_LIMIT_NAME_CHARS: Final = 128
MAX_CONCURRENCY_LIMIT: Final = 100_000
MAX_START_RATE_LIMIT: Final = 1_000_000
MAX_START_RATE_PERIOD_MS: Final = 86_400_000
_LIMIT_NAME: Final = re.compile(r"[A-Za-z0-9_.:-]+")
_START_RATE_KEYS: Final = ("limit", "period_seconds")
#: Capability tags (issue 23; the TypeScript producer's src/live/tags.ts rules and words).
_TAG: Final = re.compile(r"[A-Za-z0-9_.:/=-]{1,64}")
MAX_REQUIRED_TAGS: Final = 16


def _invalid(message: str) -> ProducerError:
    return ProducerError("invalid_argument", message)


def _key(value: Any, label: str) -> str:
    if isinstance(value, str) and 1 <= len(value) <= MAX_FLOW_KEY_CHARS:
        return value
    raise _invalid(f"{label} must be a string of 1 to {MAX_FLOW_KEY_CHARS} characters")


def _limit_name(value: Any) -> str:
    if (
        isinstance(value, str)
        and len(value) <= MAX_LIMIT_NAME_CHARS
        and _LIMIT_NAME.fullmatch(value) is not None
    ):
        return value
    raise _invalid(
        f"limit must be a limit name of 1 to {MAX_LIMIT_NAME_CHARS} characters "
        "from A-Z a-z 0-9 _ . : -"
    )


def _concurrency_limit(value: Any) -> int:
    number = as_int(value)
    if number is not None and 1 <= number <= MAX_CONCURRENCY_LIMIT:
        return number
    raise _invalid(f"concurrency_limit must be an integer from 1 to {MAX_CONCURRENCY_LIMIT}")


def _start_rate(value: Any) -> str:
    """``start_rate`` as stored: ``"<limit>/<period_ms>"``."""
    if not isinstance(value, Mapping):
        raise _invalid("start_rate must be an object with limit and period_seconds")
    valid = ", ".join(_START_RATE_KEYS)
    for key in value:
        if key not in _START_RATE_KEYS:
            near = closest(str(key), _START_RATE_KEYS)
            hint = "" if near is None else f" — did you mean '{near}'?"
            raise _invalid(f"unknown key 'start_rate.{key}'; valid keys are: {valid}{hint}")
    limit, period = value.get("limit"), value.get("period_seconds")
    if limit is None:
        raise _invalid("start_rate.limit is required")
    if period is None:
        raise _invalid("start_rate.period_seconds is required")
    count = as_int(limit)
    if count is None or not 1 <= count <= MAX_START_RATE_LIMIT:
        raise _invalid(f"start_rate.limit must be an integer from 1 to {MAX_START_RATE_LIMIT}")
    ok = isinstance(period, int | float) and not isinstance(period, bool)
    ok = ok and math.isfinite(period) and period > 0
    scaled = period * 1000 if ok else math.inf
    ms = 0
    if math.isfinite(scaled):
        # half up to whole ms, exactly as JavaScript's Math.round and Rust's f64::round for
        # x > 0 (round() would round half to even; floor(x + 0.5) can round the sum up)
        whole = math.floor(scaled)
        ms = max(1, whole + (1 if scaled - whole >= 0.5 else 0))
    if ms == 0 or ms > MAX_START_RATE_PERIOD_MS:
        raise _invalid(
            "start_rate.period_seconds must be a number > 0 and at most "
            f"{MAX_START_RATE_PERIOD_MS // 1000}"
        )
    return f"{count}/{ms}"


def _requires(value: Any) -> str | None:
    """``requires`` as stored: the JSON array of the tags sorted and deduplicated (None for an
    empty list: nothing is stored)."""
    if not isinstance(value, (list, tuple)):
        shown = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        raise _invalid(f"requires must be an array of tags, got {shown}")
    if len(value) > MAX_REQUIRED_TAGS:
        raise _invalid(f"requires holds {len(value)} tags; at most {MAX_REQUIRED_TAGS} are allowed")
    for tag in value:
        if not isinstance(tag, str) or _TAG.fullmatch(tag) is None:
            shown = json.dumps(tag, ensure_ascii=False, separators=(",", ":"), default=str)
            raise _invalid(f"requires: {shown} is no tag (1 to 64 of A-Z a-z 0-9 _ . : / = -)")
    tags = sorted(set(value))
    return json.dumps(tags, separators=(",", ":")) if tags else None


def flow_control_fields(opts: Mapping[str, Any]) -> list[str]:
    """The flow-control options of ``opts`` (None values already dropped) as the hash fields
    they write, as name/value pairs: ``concurrency_key``, ``concurrency_limit``, ``start_rate``,
    ``limit_name``, ``ordering_key``, each only when given. A cap or a rate needs a key to apply
    to (``concurrency_key`` or ``limit``). Raises ``ProducerError`` (``invalid_argument``)
    naming the option."""
    fields: dict[str, str] = {}
    if "concurrency_key" in opts:
        fields["concurrency_key"] = _key(opts["concurrency_key"], "concurrency_key")
    if "concurrency_limit" in opts:
        fields["concurrency_limit"] = str(_concurrency_limit(opts["concurrency_limit"]))
    if "start_rate" in opts:
        fields["start_rate"] = _start_rate(opts["start_rate"])
    if "limit" in opts:
        fields["limit_name"] = _limit_name(opts["limit"])
    if "ordering_key" in opts:
        fields["ordering_key"] = _key(opts["ordering_key"], "ordering_key")
    if "requires" in opts:
        # routing by capability (issue 23): only a runner whose hello offers every tag runs it
        requires = _requires(opts["requires"])
        if requires is not None:
            fields["requires"] = requires
    keyed = "concurrency_key" in fields or "limit_name" in fields
    if not keyed and "concurrency_limit" in fields:
        raise _invalid("concurrency_limit needs concurrency_key or limit")
    if not keyed and "start_rate" in fields:
        raise _invalid("start_rate needs concurrency_key or limit")
    return [item for pair in fields.items() for item in pair]
