"""Dramatiq actors for the Python race, on its Redis broker (``BENCH_REDIS_URL``).

    dramatiq dramatiq_app -p PROCESSES -t THREADS

Dramatiq's default middleware (retries, time limits, …) and prefetch; no result backend
(Dramatiq's is optional): the bench counts acknowledged messages (the queue's ``.msgs`` hash
empties as messages are acked).
"""

from __future__ import annotations

import os

import bench_tasks
import dramatiq
from dramatiq.brokers.redis import RedisBroker

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop")
def noop(i: int) -> None:
    """The no-op job (returns nothing: without a result backend Dramatiq warns per result)."""
    bench_tasks.noop(i)


@dramatiq.actor(actor_name="sleep")
def sleep(ms: int) -> None:
    """Sleeps ``ms`` on the worker thread."""
    bench_tasks.sleep_ms(ms)


@dramatiq.actor(actor_name="stamp")
def stamp(key: str) -> None:
    """Records its start time for the latency scenario."""
    bench_tasks.stamp(key)
