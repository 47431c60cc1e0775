"""Canonical JSON for job hashes (PRODUCER.md §4).

Compact, object keys sorted by Unicode code point at every depth, only ``"``, ``\\`` and
U+0000–U+001F escaped, non-ASCII written raw, integral numbers written as integers (``1``, not
``1.0``) and other numbers in shortest round-trip form.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import ProducerError

__all__ = ["canonical_json", "normalize_json"]

# Beyond this magnitude JavaScript switches to exponent notation; keep such floats as floats.
_INTEGRAL_LIMIT = 1e21


def normalize_json(value: Any, path: str = "params", *, code: str = "invalid_params") -> Any:
    """Return ``value`` as plain JSON data (dicts, lists, str, int, float, bool, None) with
    integral floats turned into ints. Raises ProducerError(``code``) naming the path of the
    first non-finite number, non-string key or non-JSON value."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProducerError(code, f"{_root(path)} contains a non-finite number at {path}")
        if value.is_integer() and abs(value) < _INTEGRAL_LIMIT:
            return int(value)
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, child in value.items():
            if not isinstance(key, str):
                raise ProducerError(
                    code, f"{_root(path)} keys must be strings (found {key!r} in {path})"
                )
            out[key] = normalize_json(child, f"{path}.{key}", code=code)
        return out
    if isinstance(value, list | tuple):
        return [normalize_json(child, f"{path}[{i}]", code=code) for i, child in enumerate(value)]
    raise ProducerError(
        code, f"{_root(path)} must be JSON-serializable: {type(value).__name__} at {path}"
    )


def _root(path: str) -> str:
    end = len(path)
    for sep in (".", "["):
        index = path.find(sep)
        if index >= 0:
            end = min(end, index)
    return path[:end]


def canonical_json(value: Any, path: str = "params", *, code: str = "invalid_params") -> str:
    """Canonical JSON text of ``value`` (see the module docstring)."""
    try:
        normalized = normalize_json(value, path, code=code)
    except RecursionError:
        raise ProducerError(code, f"{path} is nested too deeply") from None
    text = json.dumps(
        normalized, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ProducerError(code, f"{path} contains a string that is not valid Unicode") from None
    return text
