"""The work every peer's task does, shared so all four frameworks run the same code.

``noop`` returns at once, ``sleep_ms`` blocks its thread (``time.sleep``: Celery, RQ and
Dramatiq run tasks on threads or processes), and ``stamp`` appends ``"<key> <epoch ms>"`` to
``BENCH_EXEC_LOG`` before it returns, so the bench can match each job's start to the time its
enqueuer sent it (the same idea as the conformance runners' ``RRQ_TEST_EXEC_LOG``).
"""

from __future__ import annotations

import os
import time

#: Where ``stamp`` appends its lines (set by the bench for the latency scenario only).
EXEC_LOG = os.environ.get("BENCH_EXEC_LOG", "")


def noop(i: int) -> int:
    """The no-op job: returns its argument."""
    return i


def sleep_ms(ms: int) -> int:
    """Blocks the calling thread for ``ms`` milliseconds (I/O-bound work stand-in)."""
    time.sleep(ms / 1000)
    return ms


def stamp(key: str) -> str:
    """Records that job ``key`` started (epoch ms) in ``BENCH_EXEC_LOG``."""
    line = f"{key} {time.time() * 1000:.3f}\n".encode()
    # One O_APPEND write per line: lines from concurrent threads/processes never interleave.
    fd = os.open(EXEC_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return key
