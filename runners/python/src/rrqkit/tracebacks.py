"""The bounded traceback of an error outcome (RUNNER_PROTOCOL.md §7.1).

Every runtime caps ``error.traceback`` with the same rule: at most 8 KiB of UTF-8; a longer text
keeps its first 4096 and last 4000 bytes (whole characters only) around a marker line, since
Python's innermost frames and the exception line come last.
"""

from __future__ import annotations

import traceback
from typing import Final

__all__ = ["MAX_TRACEBACK_BYTES", "cap_traceback", "format_traceback"]

MAX_TRACEBACK_BYTES: Final = 8192
TRACEBACK_HEAD_BYTES: Final = 4096
TRACEBACK_TAIL_BYTES: Final = 4000


def cap_traceback(text: str) -> str:
    """``text`` unchanged when it fits in 8 KiB of UTF-8, else its head and tail around
    ``"\\n... [N bytes truncated] ...\\n"`` (N = the bytes cut)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_TRACEBACK_BYTES:
        return text
    head_end = TRACEBACK_HEAD_BYTES
    while head_end > 0 and _is_continuation(data[head_end]):
        head_end -= 1
    tail_start = len(data) - TRACEBACK_TAIL_BYTES
    while tail_start < len(data) and _is_continuation(data[tail_start]):
        tail_start += 1
    head = data[:head_end].decode("utf-8")
    tail = data[tail_start:].decode("utf-8")
    return f"{head}\n... [{tail_start - head_end} bytes truncated] ...\n{tail}"


def format_traceback(exc: BaseException) -> str:
    """The exception's full traceback as ``traceback.format_exception`` prints it, capped."""
    return cap_traceback("".join(traceback.format_exception(exc)))


def _is_continuation(byte: int) -> bool:
    return (byte & 0xC0) == 0x80
