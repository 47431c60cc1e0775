"""Keep stdout for frames on the stdio transport (RUNNER_PROTOCOL.md §5).

:func:`install` must run before any user code is imported. It moves the real stdin and stdout
to private (close-on-exec) descriptors used only for frames, then points descriptor 1 at stderr
and descriptor 0 at ``/dev/null``, so ``print()``, ``os.write(1, ...)`` and child processes
write to stderr and nothing can consume frame bytes from stdin. ``sys.stdout`` becomes
``sys.stderr``.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["install"]


def install() -> tuple[int, int]:
    """Return ``(frame_in_fd, frame_out_fd)``."""
    for stream in (sys.stdout, sys.__stdout__):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    frame_out = os.dup(1)  # os.dup gives a non-inheritable descriptor
    frame_in = os.dup(0)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
    finally:
        os.close(devnull)
    sys.stdout = sys.stderr
    return frame_in, frame_out
