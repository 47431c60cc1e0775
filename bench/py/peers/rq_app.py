"""RQ's jobs for the Python race: plain functions, enqueued by dotted path (``rq_app.noop``).

    rq worker-pool -n N -u $BENCH_REDIS_URL -w rq.worker.SimpleWorker -l WARNING default

SimpleWorker runs each job in the worker process; RQ's default Worker forks a work-horse
process per job, several times slower for short jobs (the bench README gives the figures).
"""

from __future__ import annotations

import bench_tasks


def noop(i: int) -> int:
    """The no-op job."""
    return bench_tasks.noop(i)


def sleep(ms: int) -> int:
    """Sleeps ``ms`` in the worker process."""
    return bench_tasks.sleep_ms(ms)


def stamp(key: str) -> str:
    """Records its start time for the latency scenario."""
    return bench_tasks.stamp(key)
