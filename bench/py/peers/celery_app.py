"""Celery 5 app of the Python race: Redis broker and Redis result backend (``BENCH_REDIS_URL``).

    celery -A celery_app worker -P prefork|threads -c N --without-gossip --without-mingle \
        --without-heartbeat -l warning

Celery's defaults otherwise (prefetch multiplier 4, early acks, results kept a day). The
``worker_ready`` signal prints ``bench-ready`` so the bench knows the pool is up (the worker's
own "ready." line is INFO, hidden at the warning level the bench runs it at, like every peer:
per-task INFO logging would be a cost no other contender pays).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import bench_tasks
from celery import Celery
from celery.signals import worker_ready

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("bench", broker=URL, backend=URL)
app.conf.broker_connection_retry_on_startup = True


@app.task(name="noop")
def noop(i: int) -> int:
    """The no-op job."""
    return bench_tasks.noop(i)


@app.task(name="sleep")
def sleep(ms: int) -> int:
    """Sleeps ``ms`` on the worker's thread (or process)."""
    return bench_tasks.sleep_ms(ms)


@app.task(name="stamp")
def stamp(key: str) -> str:
    """Records its start time for the latency scenario."""
    return bench_tasks.stamp(key)


@worker_ready.connect
def _ready(**_: Any) -> None:
    print("bench-ready", flush=True)
    sys.stdout.flush()
