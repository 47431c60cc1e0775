"""Fast RFC 3339 parsing for the runner's hot path (every request carries two timestamps).

:func:`rrqkit.timeutil.parse_rfc3339` is the reference; :func:`parse_wire_time` returns exactly
what it returns and raises where it raises, but the shapes orchestrators actually send
(``2026-12-07T08:54:04.123Z``, ``…+00:00``) skip its regex groups, ``datetime`` check and
``calendar.timegm`` call: the calendar part of one minute is checked once and remembered, as all
the timestamps of a burst share a few minutes. Anything else goes to the reference parser.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from typing import Final

from .timeutil import parse_rfc3339

__all__ = ["parse_wire_time"]

_NS_PER_S: Final = 1_000_000_000
#: UTC with ``Z`` or ``+00:00`` and at most 9 fraction digits: what rrqkit, RRQ and
#: JavaScript's toISOString write. Group 1 is the minute, 2 the seconds, 3 the fraction.
_COMMON: Final = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|\+00:00)")
#: minute prefix ("YYYY-MM-DDTHH:MM") → its epoch seconds; bounded, cleared when full
_MINUTES: dict[str, int] = {}
_MAX_MINUTES: Final = 4096


def _minute_epoch(prefix: str) -> int:
    epoch = _MINUTES.get(prefix)
    if epoch is None:
        year, month, day = int(prefix[0:4]), int(prefix[5:7]), int(prefix[8:10])
        hour, minute = int(prefix[11:13]), int(prefix[14:16])
        # Raises ValueError on e.g. month 13 or Feb 30, as the reference parser does.
        datetime(year, month, day, hour, minute)
        epoch = calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0))
        if len(_MINUTES) >= _MAX_MINUTES:
            _MINUTES.clear()
        _MINUTES[prefix] = epoch
    return epoch


def parse_wire_time(value: str) -> int:
    """``value`` (an RFC 3339 timestamp) as epoch nanoseconds; ValueError when it is not one.
    Same results and errors as :func:`rrqkit.timeutil.parse_rfc3339`."""
    match = _COMMON.fullmatch(value) if type(value) is str else None
    if match is None:
        return parse_rfc3339(value)
    prefix, second_text, fraction = match.groups()
    second = int(second_text)
    if second > 60:
        return parse_rfc3339(value)  # raises, with the reference's message
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    return (_minute_epoch(prefix) + second) * _NS_PER_S + nanos
