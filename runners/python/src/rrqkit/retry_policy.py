"""The ``retry`` producer option: a per-job retry policy, stored as the job hash's
``retry_policy`` field (issue 20, design §B).

The rules and messages are those of the TypeScript validator (``src/policy/spec.ts``), the one
validator of the producer option, the hash field and the ``[rrq.functions."<name>"]`` tables,
so every binding accepts and refuses the same objects with the same words. The stored value is
the canonical JSON of the object as given (the encoding of ``job_params``), so all producers
store the same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from .canonical import canonical_json

__all__ = ["RETRY_POLICY_KEYS", "check_retry_policy", "closest", "retry_policy_json"]

#: The keys of a retry policy, in the order the validator reads them.
RETRY_POLICY_KEYS: Final = (
    "max_attempts",
    "backoff",
    "delay_seconds",
    "max_delay_seconds",
    "jitter",
    "delays",
    "retry_timeouts",
    "non_retryable_error_types",
    "retry_for_seconds",
    "max_snoozes",
)

_BACKOFFS: Final = ("exponential", "fixed", "list")


def _is_number(value: Any) -> bool:
    # bool is an int in Python but never a number here (JavaScript's typeof is "boolean")
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: Any) -> bool:
    # 2.0 is an integer, as in JavaScript (Number.isInteger), and is stored as 2
    return _is_number(value) and float(value).is_integer()


def _integer(minimum: int) -> Callable[[Any], str | None]:
    def read(value: Any) -> str | None:
        return None if _is_integer(value) and value >= minimum else f"an integer >= {minimum}"

    return read


def _number(minimum: float, *, strict: bool = False) -> Callable[[Any], str | None]:
    def read(value: Any) -> str | None:
        ok = _is_number(value) and (value > minimum if strict else value >= minimum)
        return None if ok else f"a number {'>' if strict else '>='} {minimum:g}"

    return read


def _backoff(value: Any) -> str | None:
    return (
        None
        if value in _BACKOFFS and isinstance(value, str)
        else 'one of "exponential", "fixed", "list"'
    )


def _jitter(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value <= 1 else "a number between 0 and 1"


def _delays(value: Any) -> str | None:
    ok = (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(_is_number(d) and d >= 0 for d in value)
    )
    return None if ok else "a non-empty array of numbers >= 0"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _error_types(value: Any) -> str | None:
    ok = isinstance(value, list | tuple) and all(isinstance(t, str) and t for t in value)
    return None if ok else "an array of non-empty strings"


#: One reader per key: None when the value is valid, else the words for what it must be
#: (the message is then "<path> must be <words>, got <value>").
_READERS: Final[dict[str, Callable[[Any], str | None]]] = {
    "max_attempts": _integer(1),
    "backoff": _backoff,
    "delay_seconds": _number(0),
    "max_delay_seconds": _number(0),
    "jitter": _jitter,
    "delays": _delays,
    "retry_timeouts": _boolean,
    "non_retryable_error_types": _error_types,
    "retry_for_seconds": _number(0, strict=True),
    "max_snoozes": _integer(0),
}


def _shown(value: Any) -> str:
    """The value as the TypeScript message shows it (JSON.stringify, strings in quotes)."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return str(value)


def _edit_distance(a: str, b: str) -> int:
    """Edit distance counting an adjacent transposition as one edit ("retires" → "retries")."""
    d = [
        [j if i == 0 else i if j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)
    ]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            v = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                v = min(v, d[i - 2][j - 2] + 1)
            d[i][j] = v
    return d[len(a)][len(b)]


def closest(key: str, known: tuple[str, ...]) -> str | None:
    """The entry of ``known`` nearest to ``key`` when it is a plausible typo of it."""
    limit = max(1, min(3, len(key) // 4))
    best: tuple[str, int] | None = None
    for name in known:
        distance = _edit_distance(key.lower(), name)
        if distance <= limit and (best is None or distance < best[1]):
            best = (name, distance)
    return None if best is None else best[0]


def check_retry_policy(raw: Any, where: str = "retry") -> list[str]:
    """Every problem of a retry policy object, each naming its key path (``where`` first, e.g.
    ``"retry.jitter must be a number between 0 and 1, got 2"``); empty when it is valid.
    Unknown keys are problems too, with a did-you-mean."""
    if not isinstance(raw, Mapping):
        return [f"{where} must be an object (a table)"]
    problems: list[str] = []
    valid = ", ".join(sorted(RETRY_POLICY_KEYS))
    for key in raw:
        if key not in RETRY_POLICY_KEYS:
            near = closest(str(key), RETRY_POLICY_KEYS)
            hint = "" if near is None else f" — did you mean '{near}'?"
            problems.append(f"unknown key '{where}.{key}'; valid keys are: {valid}{hint}")
    good: set[str] = set()
    for key in RETRY_POLICY_KEYS:
        if key not in raw:
            continue
        must = _READERS[key](raw[key])
        if must is None:
            good.add(key)
        else:
            problems.append(f"{where}.{key} must be {must}, got {_shown(raw[key])}")
    backoff = raw.get("backoff") if "backoff" in good else None
    if backoff == "list" and "delays" not in raw:
        problems.append(f'{where}.delays is required with backoff "list"')
    elif backoff is not None and backoff != "list" and "delays" in good:
        problems.append(f'{where}.delays is only used with backoff "list" (got "{backoff}")')
    return problems


def retry_policy_json(raw: Mapping[str, Any]) -> str:
    """The ``retry_policy`` hash field of a valid policy: canonical JSON of the object as
    given."""
    return canonical_json(dict(raw), "retry")
