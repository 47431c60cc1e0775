"""The 8 KiB cap of ``error.traceback`` (RUNNER_PROTOCOL.md §7.1) and its wire form."""

from __future__ import annotations

import pytest

from rrqkit.errors import DecodeError
from rrqkit.models import OutcomeError
from rrqkit.tracebacks import MAX_TRACEBACK_BYTES, cap_traceback, format_traceback


def test_short_text_is_unchanged() -> None:
    assert cap_traceback("a\nb") == "a\nb"
    exact = "x" * MAX_TRACEBACK_BYTES
    assert cap_traceback(exact) == exact


def test_long_text_keeps_head_and_tail_on_character_boundaries() -> None:
    text = "é" * 3000 + "z" * 5000  # 11,000 bytes
    capped = cap_traceback(text)
    assert len(capped.encode()) <= MAX_TRACEBACK_BYTES
    assert capped == "é" * 2048 + "\n... [2904 bytes truncated] ...\n" + "z" * 4000


def test_format_traceback_ends_with_the_innermost_frame() -> None:
    error: BaseException | None = None
    for level in range(100):  # a chain of 100 causes: far over 8 KiB
        try:
            raise ValueError(f"level {level}") from error
        except ValueError as exc:
            error = exc
    assert error is not None
    text = format_traceback(error)
    assert len(text.encode()) <= MAX_TRACEBACK_BYTES
    assert text.startswith("Traceback (most recent call last):\n")
    assert "bytes truncated] ..." in text
    assert text.endswith("ValueError: level 99\n")


def test_wire_form_writes_traceback_only_when_present() -> None:
    assert "traceback" not in OutcomeError(message="m").to_wire()
    wire = OutcomeError(message="m", type="E", traceback="tb").to_wire()
    assert list(wire) == ["message", "type", "code", "details", "traceback"]
    assert OutcomeError.from_wire(wire).traceback == "tb"
    with pytest.raises(DecodeError):
        OutcomeError.from_wire({"message": "m", "traceback": 7})
