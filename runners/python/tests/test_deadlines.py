"""The runtime's shared deadline timer (rrqkit/deadlines.py)."""

from __future__ import annotations

import asyncio

from rrqkit import deadlines as deadlines_module
from rrqkit.deadlines import Deadlines
from rrqkit.timeutil import now_ns

MS = 1_000_000


class Entry:
    def __init__(self, name: str) -> None:
        self.name = name
        self.timed = False


async def _collect(plan: list[tuple[str, int]], discard: set[str], wait_ms: int) -> list[str]:
    fired: list[str] = []
    timer: Deadlines[Entry] = Deadlines(asyncio.get_running_loop(), lambda e: fired.append(e.name))
    start = now_ns()
    entries = {name: Entry(name) for name, _ in plan}
    for name, after_ms in plan:
        timer.add(start + after_ms * MS, entries[name])
    for name in discard:
        timer.discard(entries[name])
    await asyncio.sleep(wait_ms / 1000)
    timer.close()
    return fired


async def test_entries_fire_in_deadline_order_whatever_the_order_added() -> None:
    fired = await _collect([("c", 60), ("a", 10), ("b", 30), ("late", 5000)], set(), 150)
    assert fired == ["a", "b", "c"]


async def test_a_discarded_entry_never_fires() -> None:
    fired = await _collect([("a", 10), ("b", 20), ("c", 30)], {"a", "c"}, 120)
    assert fired == ["b"]


async def test_discarding_every_entry_disarms_the_timer() -> None:
    loop = asyncio.get_running_loop()
    timer: Deadlines[Entry] = Deadlines(loop, lambda e: None)
    entry = Entry("x")
    timer.add(now_ns() + 50 * MS, entry)
    timer.discard(entry)
    timer.discard(entry)  # twice is harmless
    assert len(timer) == 0
    assert timer._timer is None and timer._heap == []


async def test_dead_entries_are_compacted_and_live_ones_kept(monkeypatch: object) -> None:
    monkeypatch.setattr(deadlines_module, "_SLACK", 4)  # type: ignore[attr-defined]
    fired: list[str] = []
    timer: Deadlines[Entry] = Deadlines(asyncio.get_running_loop(), lambda e: fired.append(e.name))
    keep = Entry("keep")
    timer.add(now_ns() + 20 * MS, keep)
    for i in range(50):
        done = Entry(f"done{i}")
        timer.add(now_ns() + 60_000 * MS, done)
        timer.discard(done)
    assert len(timer._heap) <= 2 * len(timer) + 4 + 1
    await asyncio.sleep(0.1)
    assert fired == ["keep"]
    timer.close()


async def test_an_earlier_deadline_rearms_the_timer() -> None:
    fired = await _collect([("far", 3000), ("near", 10)], set(), 80)
    assert fired == ["near"]
