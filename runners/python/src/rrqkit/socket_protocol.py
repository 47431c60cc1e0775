"""An accepted socket served by event-loop callbacks (runtime internal).

The socket transports (unix, tcp) used to read through an ``asyncio.StreamReader``: every
read was a future, a wake-up of the reader task and a copy out of the reader's buffer, and the
requests of a read were started one event-loop turn after the bytes arrived. Here the loop
hands the bytes to :meth:`SocketProtocol.data_received`, which splits them into frames and
starts the requests at once (issue 25; with the shared deadline timer and the cheaper JSON
checks, ~20 % less runner CPU per job in the bench's drain). stdin keeps the stream reader: it
may be a file or a terminal read by a thread.

Flow control: while the transport's write buffer is above its high-water mark, reading pauses
(the orchestrator then waits on the socket) and resumes once it has drained.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast

from .codec import Encoding, Frame, decode_frame_body, frame_bodies, parse_header
from .errors import DecodeError
from .sinks import PipeProtocol, PipeSink, Sink

__all__ = ["FrameConnection", "SocketProtocol"]


class FrameConnection(Protocol):
    """What the protocol drives: the runtime's connection."""

    closed: bool
    clean_eof: bool
    error_code: str | None
    encoding: Encoding
    label: str

    def dispatch_now(self, item: Frame) -> None: ...

    def backlogged(self) -> bool: ...

    async def wait_writable(self) -> bool: ...

    def close(self) -> None: ...


class SocketProtocol(PipeProtocol):
    """One accepted connection: bytes in, frames dispatched, outcomes out through the sink.

    ``connect(sink)`` builds the connection once the transport exists (it may queue the hello
    frame at once: it goes out before any outcome); ``log`` reports why a connection ended.
    """

    def __init__(
        self,
        connect: Callable[[Sink], FrameConnection],
        log: Callable[[str], None],
    ) -> None:
        super().__init__()
        self._connect = connect
        self._log = log
        self._conn: FrameConnection | None = None
        self._transport: asyncio.Transport | None = None
        # the start of a frame cut by the end of a read, and how many bytes complete it
        self._rest = bytearray()
        self._rest_needs = 0
        self._resuming: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (not isinstance-checked: uvloop's transports do not subclass asyncio.Transport)
        self._transport = cast(asyncio.Transport, transport)
        self._conn = self._connect(PipeSink(self._transport, self))

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            return
        if self._rest:
            self._rest += data
            if len(self._rest) < self._rest_needs:
                return
            data = bytes(self._rest)
            self._rest.clear()
        try:
            self._split(conn, data)
        except DecodeError as exc:
            conn.error_code = exc.code
            self._log(f"{conn.label}: closing the connection: {exc}")
            conn.close()
            return
        if conn.backlogged() and not conn.closed:
            self._pause_until_writable(conn)

    def _split(self, conn: FrameConnection, data: bytes) -> None:
        encoding = conn.encoding
        pos = 0
        for start, pos in frame_bodies(data, lambda: conn.closed):
            conn.dispatch_now(decode_frame_body(data[start:pos], encoding))
        if pos < len(data) and not conn.closed:
            self._rest += data[pos:]
            # the header is checked once it is complete; until then 4 bytes are needed
            self._rest_needs = (
                4 + parse_header(bytes(self._rest[:4])) if len(self._rest) >= 4 else 4
            )

    def _pause_until_writable(self, conn: FrameConnection) -> None:
        transport = self._transport
        if transport is None or self._resuming is not None:
            return
        transport.pause_reading()

        async def resume() -> None:
            try:
                if await conn.wait_writable() and not transport.is_closing():
                    transport.resume_reading()
            finally:
                self._resuming = None

        self._resuming = asyncio.get_running_loop().create_task(resume())

    def eof_received(self) -> bool:
        conn = self._conn
        if conn is not None and not conn.closed:
            if self._rest:
                conn.error_code = "frame_truncated"
                where = "header" if len(self._rest) < 4 else "body"
                self._log(f"{conn.label}: closing the connection: stream ended inside a {where}")
            else:
                conn.clean_eof = True
            conn.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        conn = self._conn
        if conn is not None and not conn.closed:
            if exc is not None:
                self._log(f"{conn.label}: connection lost: {exc}")
            conn.close()
