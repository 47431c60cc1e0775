"""Testing modes (docs/testing.md): run jobs in tests without an orchestrator.

- :class:`FakeProducer` records enqueues in memory (no Redis, no network); ``drain()`` runs
  them through a :class:`~rrqkit.Registry`'s handlers with the inline rules.
- :class:`InlineProducer` runs each job at once when it is enqueued.
- :class:`LiveRrq` starts a private ``redis-server`` and ``rrq worker run`` for a real run.
- The pytest plugin (``rrqkit.testing.pytest_plugin``, loaded automatically) offers the
  fixtures ``rrq_fake``, ``rrq_inline`` and ``rrq_live``.
"""

from __future__ import annotations

from .fake import DrainLimitError, FakeJob, FakeProducer
from .inline import InlineProducer
from .live import LiveRrq, LiveRrqUnavailable
from .rules import InlineDefaults

__all__ = [
    "DrainLimitError",
    "FakeJob",
    "FakeProducer",
    "InlineDefaults",
    "InlineProducer",
    "LiveRrq",
    "LiveRrqUnavailable",
]
