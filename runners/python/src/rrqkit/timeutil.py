"""RFC 3339 timestamps as integer epoch nanoseconds.

Redis job hashes use chrono's ``to_rfc3339`` form: UTC, offset ``+00:00``, and a fraction of
0, 3, 6 or 9 digits, the fewest that represent the value exactly (PRODUCER.md §4).
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime
from typing import Final

__all__ = ["format_rfc3339", "now_ns", "parse_rfc3339", "to_epoch_ns"]

_NS_PER_S: Final = 1_000_000_000

_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


def now_ns() -> int:
    return time.time_ns()


def parse_rfc3339(value: str) -> int:
    """Parse an RFC 3339 / ISO 8601 timestamp into epoch nanoseconds.

    A value without an offset is taken as UTC. Fractions beyond nanoseconds are truncated.
    Raises ValueError when ``value`` is not such a timestamp.
    """
    if not isinstance(value, str):
        raise ValueError("timestamp must be a string")
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7) or ""
    # Validate the calendar fields (raises ValueError on e.g. month 13 or Feb 30).
    datetime(year, month, day, hour, minute, min(second, 59))
    if second > 60:
        raise ValueError(f"invalid seconds in {value!r}")
    offset_seconds = 0
    if match.group(9):
        off_h, off_m = int(match.group(10)), int(match.group(11))
        if off_h > 23 or off_m > 59:
            raise ValueError(f"invalid offset in {value!r}")
        offset_seconds = (off_h * 3600 + off_m * 60) * (1 if match.group(9) == "+" else -1)
    epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset_seconds
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return epoch * _NS_PER_S + nanos


def to_epoch_ns(value: datetime | str) -> int:
    """A datetime (naive = UTC) or an RFC 3339 string as epoch nanoseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000
    return parse_rfc3339(value)


def format_rfc3339(epoch_ns: int) -> str:
    """Format epoch nanoseconds as ``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]+00:00``."""
    seconds, nanos = divmod(epoch_ns, _NS_PER_S)
    t = time.gmtime(seconds)
    base = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    if nanos == 0:
        fraction = ""
    elif nanos % 1_000_000 == 0:
        fraction = f".{nanos // 1_000_000:03d}"
    elif nanos % 1_000 == 0:
        fraction = f".{nanos // 1_000:06d}"
    else:
        fraction = f".{nanos:09d}"
    return f"{base}{fraction}+00:00"
