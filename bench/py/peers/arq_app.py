"""arq worker settings for the Python race (asyncio; ``BENCH_REDIS_URL``, ``BENCH_MAX_JOBS``).

    arq arq_app.WorkerSettings

arq's defaults otherwise (poll delay 0.5 s, results kept an hour). ``sleep`` awaits
``asyncio.sleep``: arq's way to wait, as rrqkit's Python runner's ``sleep`` handler.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

import bench_tasks
from arq.connections import RedisSettings

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


async def noop(_ctx: dict[str, Any], i: int) -> int:
    """The no-op job."""
    return i


async def sleep(_ctx: dict[str, Any], ms: int) -> int:
    """Awaits ``ms`` milliseconds."""
    await asyncio.sleep(ms / 1000)
    return ms


async def stamp(_ctx: dict[str, Any], key: str) -> str:
    """Records its start time for the latency scenario."""
    return bench_tasks.stamp(key)


async def _ready(_ctx: dict[str, Any]) -> None:
    print("bench-ready", flush=True)


#: ``arq --custom-log-dict arq_app.LOG_CONFIG``: warnings only. arq logs every job's start and
#: result at INFO by default, a per-job cost no other contender pays (all run at warning level).
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}


class WorkerSettings:
    """What ``arq arq_app.WorkerSettings`` runs."""

    functions: ClassVar[list[Any]] = [noop, sleep, stamp]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = int(os.environ.get("BENCH_MAX_JOBS", "64"))
    on_startup = _ready
    # Results are kept (arq's default) and counted by the bench to see every job finished.
