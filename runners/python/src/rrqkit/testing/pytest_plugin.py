"""rrqkit's pytest plugin (entry point ``pytest11``; loaded when rrqkit is installed).

Fixtures:

- ``rrq_registry``: the :class:`~rrqkit.Registry` whose handlers the producers run. Override it
  in your ``conftest.py`` to return your application's registry (default: an empty one).
- ``rrq_catalog``: the job catalog enqueues are checked against (default: None, no check).
- ``rrq_fake``: a :class:`~rrqkit.testing.FakeProducer` (jobs recorded; ``await
  rrq_fake.drain()`` runs them).
- ``rrq_inline``: an :class:`~rrqkit.testing.InlineProducer` (each enqueue runs its job).
- ``rrq_live_config``: what ``rrq_live`` runs (see :func:`rrqkit.testing.live.toml_text`):
  ``{"cmd": [...your runner command...], "rrq": {...}, "runner_options": {...}}``. Override it;
  without it ``rrq_live`` skips.
- ``rrq_live``: a started :class:`~rrqkit.testing.LiveRrq` (private redis-server and ``rrq
  worker run``); skipped with the reason when the orchestrator (``RRQ_ORCHESTRATOR`` or ``rrq``
  on PATH) or ``redis-server`` is missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from ..registry import Registry
from .fake import FakeProducer
from .inline import InlineProducer
from .live import LiveRrq, LiveRrqUnavailable

if TYPE_CHECKING:
    from ..contracts import JobCatalog


@pytest.fixture
def rrq_registry() -> Registry:
    """The registry the fake and inline producers run; override it with yours."""
    return Registry()


@pytest.fixture
def rrq_catalog() -> JobCatalog | None:
    """The job catalog enqueues are checked against; override it to check params."""
    return None


@pytest.fixture
def rrq_fake(rrq_registry: Registry, rrq_catalog: JobCatalog | None) -> FakeProducer:
    """A producer that records jobs in memory; ``await rrq_fake.drain()`` runs them."""
    return FakeProducer(registry=rrq_registry, catalog=rrq_catalog)


@pytest.fixture
def rrq_inline(rrq_registry: Registry, rrq_catalog: JobCatalog | None) -> InlineProducer:
    """A producer that runs each job in process when it is enqueued."""
    return InlineProducer(registry=rrq_registry, catalog=rrq_catalog)


@pytest.fixture
def rrq_live_config() -> Mapping[str, Any] | None:
    """The live run's config (``cmd`` = your runner command); override it to use rrq_live."""
    return None


@pytest.fixture
def rrq_live(rrq_live_config: Mapping[str, Any] | None) -> Iterator[LiveRrq]:
    """A private redis-server and ``rrq worker run`` for this test; ``rrq_live.producer`` is a
    real producer on it, ``rrq_live.redis_url`` its URL."""
    if rrq_live_config is None:
        pytest.skip(
            "rrq_live needs the runner command: override the rrq_live_config fixture "
            '(e.g. {"cmd": [sys.executable, "-m", "rrqkit.cli", "--settings", "app:registry"]})'
        )
    live = LiveRrq(rrq_live_config)
    try:
        live.start()
    except LiveRrqUnavailable as exc:
        pytest.skip(f"rrq_live: {exc}")
    try:
        yield live
    finally:
        live.stop()
