"""Request deadlines on one event-loop timer (runtime internal).

A timer per request cost ~2.3 µs (``call_later`` and its ``cancel``) of the runner's ~40 µs per
job. Here every deadline goes into one min-heap and a single timer is armed for the earliest;
a request that ends is only marked, and left in the heap until its deadline comes up or the
heap is compacted (when dead entries outnumber live ones), so ending one costs nothing. The
Node runner does the same with its shared deadline list (runners/node/src/protocol/deadlines.ts).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from .timeutil import now_ns

__all__ = ["Deadlines", "Timed"]


class Timed(Protocol):
    """An entry with a deadline: ``timed`` is true while its deadline is pending."""

    timed: bool


T = TypeVar("T", bound=Timed)

#: Dead heap items tolerated beyond the live ones before a compaction.
_SLACK = 1024


class Deadlines(Generic[T]):
    """Calls ``expired(entry)`` once an entry's deadline (epoch nanoseconds) has passed, unless
    :meth:`discard` came first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[T], None]) -> None:
        self.loop = loop
        self._expired = expired
        self._heap: list[tuple[int, int, T]] = []
        self._order = itertools.count()  # ties keep arrival order; entries are never compared
        self._live = 0
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None

    def __len__(self) -> int:
        return self._live

    def add(self, deadline_ns: int, entry: T) -> None:
        entry.timed = True
        self._live += 1
        heapq.heappush(self._heap, (deadline_ns, next(self._order), entry))
        if self._armed_for is None or deadline_ns < self._armed_for:
            self._arm(deadline_ns)
        elif len(self._heap) > 2 * self._live + _SLACK:
            self._compact()

    def discard(self, entry: T) -> None:
        """The entry ended before its deadline: it will not be reported."""
        if entry.timed:
            entry.timed = False
            self._live -= 1
            if self._live == 0:
                self._disarm()
                self._heap.clear()

    def close(self) -> None:
        self._disarm()
        for _, _, entry in self._heap:
            entry.timed = False
        self._heap.clear()
        self._live = 0

    def _arm(self, deadline_ns: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, (deadline_ns - now_ns()) / 1e9)
        self._timer = self.loop.call_later(delay, self._fire)
        self._armed_for = deadline_ns

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._armed_for = None

    def _fire(self) -> None:
        self._timer = None
        self._armed_for = None
        heap = self._heap
        now = now_ns()
        due: list[T] = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)[2]
            if entry.timed:
                entry.timed = False
                self._live -= 1
                due.append(entry)
        while heap and not heap[0][2].timed:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])
        for entry in due:
            self._expired(entry)

    def _compact(self) -> None:
        self._heap = [item for item in self._heap if item[2].timed]
        heapq.heapify(self._heap)
