"""Where a runner connection's bytes go, and how stdin is read (runtime internal).

Sockets and pipes write through their transport with flow control (``PipeSink``; sockets are
read by rrqkit/socket_protocol.py), and anything an event loop cannot watch (a file, a
terminal, /dev/null) through blocking calls in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from typing import Protocol

__all__ = [
    "FdSink",
    "PipeProtocol",
    "PipeSink",
    "Sink",
    "is_pipe",
    "start_reader_thread",
]


class Sink(Protocol):
    """Where a connection's bytes go. ``write_nowait`` queues bytes in order (raising OSError
    or RuntimeError when the other side is gone); while ``backlogged`` is true, writers wait
    in ``wait_writable`` (flow control)."""

    def write_nowait(self, data: bytes) -> None: ...

    def backlogged(self) -> bool: ...

    async def wait_writable(self) -> None: ...

    def close(self) -> None: ...


class PipeProtocol(asyncio.Protocol):
    """Write side of a pipe with flow control."""

    def __init__(self) -> None:
        self.paused = False
        self._waiters: list[asyncio.Future[None]] = []
        self.lost: BaseException | None = None
        self.closed = False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc or BrokenPipeError("pipe closed")
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def drain(self) -> None:
        while self.paused and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        if self.closed:
            raise ConnectionResetError(str(self.lost))


class PipeSink:
    """stdout as a write pipe: backlogged while the transport paused writing."""

    def __init__(self, transport: asyncio.WriteTransport, protocol: PipeProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def write_nowait(self, data: bytes) -> None:
        if self._protocol.closed or self._transport.is_closing():
            raise ConnectionResetError("pipe closed")
        self._transport.write(data)

    def backlogged(self) -> bool:
        return self._protocol.paused or self._protocol.closed

    async def wait_writable(self) -> None:
        await self._protocol.drain()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._transport.close()


class FdSink:
    """Blocking writes in a worker thread (for files that asyncio cannot watch), in order:
    one pump at a time writes everything queued so far."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._queued: list[bytes] = []
        self._pump: asyncio.Task[None] | None = None
        self._error: OSError | None = None

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def _run_pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queued and self._error is None:
            data = b"".join(self._queued)
            self._queued.clear()
            try:
                await loop.run_in_executor(None, self._write_all, data)
            except OSError as exc:
                self._error = exc
                self._queued.clear()

    def write_nowait(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queued.append(data)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run_pump())

    def backlogged(self) -> bool:
        # Waiting for each write keeps at most one pump's worth of bytes queued.
        return self._pump is not None and not self._pump.done()

    async def wait_writable(self) -> None:
        if self._pump is not None and not self._pump.done():
            await asyncio.shield(self._pump)
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def is_pipe(fd: int) -> bool:
    """A pipe or socket, which every event loop can watch. Anything else (a file, a terminal,
    /dev/null) is served by threads: asyncio refuses files, and uvloop aborts the process on
    them."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def start_reader_thread(
    loop: asyncio.AbstractEventLoop, reader: asyncio.StreamReader, fd: int
) -> None:
    """Feed ``reader`` from ``fd`` with blocking reads in a daemon thread, then end of file."""

    def pump() -> None:
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                loop.call_soon_threadsafe(reader.feed_data, chunk)
        except OSError:
            pass
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(reader.feed_eof)

    threading.Thread(target=pump, name="rrqkit-stdin", daemon=True).start()
