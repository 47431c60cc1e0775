"""Parent-death guard (RUNNER_PROTOCOL.md §5).

A managed runner must exit within one second after the process that launched it dies, even when
that process was SIGKILLed. On Linux the kernel sends SIGTERM on parent death
(``PR_SET_PDEATHSIG``); everywhere, a watchdog thread compares ``getppid()`` with the value at
start every 250 ms. Turned off by ``RRQ_RUNNER_PARENT_GUARD=0``. Unlike RRQ's Rust guard it does
not refuse to start when the parent is pid 1.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["guard_enabled", "install"]

_PR_SET_PDEATHSIG: Final = 1
_HARD_EXIT_AFTER: Final = 0.6  # seconds between noticing parent death and a forced exit


def guard_enabled() -> bool:
    value = os.environ.get("RRQ_RUNNER_PARENT_GUARD", "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def install(
    on_parent_death: Callable[[], None] | None = None,
    *,
    interval: float = 0.25,
    enabled: bool | None = None,
) -> bool:
    """Start the guard; returns False when it is disabled.

    ``on_parent_death`` is called from the watchdog thread (default: send SIGTERM to this
    process, so the normal graceful stop runs). If the process is still alive shortly after,
    it is ended with ``os._exit(1)``.
    """
    if enabled is None:
        enabled = guard_enabled()
    if not enabled:
        return False
    parent = os.getppid()
    _set_pdeathsig(signal.SIGTERM)
    notify = on_parent_death or (lambda: os.kill(os.getpid(), signal.SIGTERM))

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                print(
                    f"rrqkit-runner[{os.getpid()}]: parent process {parent} is gone; exiting",
                    file=sys.stderr,
                    flush=True,
                )
                try:
                    notify()
                finally:
                    time.sleep(_HARD_EXIT_AFTER)
                    os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name="rrqkit-parent-watchdog", daemon=True).start()
    return True
