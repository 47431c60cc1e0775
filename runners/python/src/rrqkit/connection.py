"""One connection of the runner runtime: its frames in and out (runtime internal).

A connection reads frames (by callbacks on a socket, rrqkit/socket_protocol.py; through a
stream reader on stdin), starts or refuses each request, answers pings, and writes the frames
of one event-loop turn in one write. It holds its in-flight requests so that closing it aborts
exactly those (RUNNER_PROTOCOL.md §6, §9).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Final

from ._version import __version__
from .codec import (
    MAX_FRAME_BYTES,
    Encoding,
    Frame,
    decode_frame_body,
    frame,
    frame_bodies,
    parse_header,
    success_frame,
)
from .errors import DecodeError, FrameTooLargeError
from .models import (
    PROTOCOL_VERSION,
    CancelRequest,
    ExecutionOutcome,
    ExecutionRequest,
    Hello,
    OutcomeError,
    Ping,
)
from .sinks import Sink

if TYPE_CHECKING:
    from .runtime import RunnerRuntime, _InFlight

__all__ = ["FEATURES", "MAX_IN_FLIGHT", "RUNTIME_NAME", "Connection", "log"]

MAX_IN_FLIGHT: Final = 64
RUNTIME_NAME: Final = "rrqkit-python"
FEATURES: Final = ("ping", "cancel_by_job", "stdout_guard", "progress", "output")
_READ_CHUNK: Final = 256 * 1024
_MAX_LOG_LINE = 2048


def log(message: str) -> None:
    """A line on stderr, prefixed with the runner's pid."""
    # capped: an exception's text can carry a job's params or result (issue 19)
    if len(message) > _MAX_LOG_LINE:
        message = f"{message[:_MAX_LOG_LINE]}…[{len(message) - _MAX_LOG_LINE} more chars cut]"
    print(f"rrqkit-runner[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _busy(request: ExecutionRequest) -> ExecutionOutcome:
    return ExecutionOutcome(
        job_id=request.job_id,
        request_id=request.request_id,
        status="error",
        error=OutcomeError(message="Runner busy: too many in-flight requests"),
    )


def _unexpected_response() -> ExecutionOutcome:
    return ExecutionOutcome(
        job_id="unknown",
        request_id=None,
        status="error",
        error=OutcomeError(message="Unexpected response message"),
    )


class Connection:
    """One bidirectional frame stream (an accepted socket, or stdin/stdout)."""

    def __init__(
        self,
        runtime: RunnerRuntime,
        reader: asyncio.StreamReader | None,
        sink: Sink,
        encoding: Encoding,
        label: str,
    ) -> None:
        self.runtime = runtime
        self.reader = reader
        self.sink = sink
        self.encoding: Encoding = encoding
        self.label = label
        self.entries: set[_InFlight] = set()
        self.closed = False
        self.clean_eof = False
        self.error_code: str | None = None
        self.loop = asyncio.get_running_loop()
        self._out: list[bytes] = []  # frames of this loop turn, not yet written
        self._flush_handle: asyncio.Handle | None = None

    # -- writing ---------------------------------------------------------------------------

    def send_nowait(self, data: bytes) -> bool:
        """Queue a frame; the frames queued in one loop turn go out in one write, in order,
        at the start of the next turn. False when the connection is closed."""
        if self.closed:
            return False
        self._out.append(data)
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._out or self.closed:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        try:
            self.sink.write_nowait(data)
        except (OSError, RuntimeError) as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: BaseException) -> None:
        log(f"{self.label}: write failed ({exc}); closing the connection")
        self.close()

    async def send_bytes(self, data: bytes) -> bool:
        """Queue a frame and wait while the transport is backlogged. False when the
        connection is (or gets) closed."""
        if not self.send_nowait(data):
            return False
        if self.sink.backlogged():
            return await self.wait_writable()
        return True

    async def wait_writable(self) -> bool:
        """Write what is queued and wait until the transport takes more (flow control).
        False when the connection is (or gets) closed."""
        self._flush()
        if self.closed:
            return False
        try:
            await self.sink.wait_writable()
        except (OSError, RuntimeError) as exc:
            if not self.closed:
                self._write_failed(exc)
            return False
        return not self.closed

    async def send_outcome(self, outcome: ExecutionOutcome) -> bool:
        return await self.send_bytes(self.outcome_frame(outcome))

    def outcome_frame(self, outcome: ExecutionOutcome) -> bytes:
        """The ``response`` frame of ``outcome``; an error outcome in its place when it is
        too large or not serializable (RUNNER_PROTOCOL.md §7)."""
        if (
            outcome.status == "success"
            and outcome.error is None
            and outcome.retry_after_seconds is None
            and not outcome.snooze
            and type(outcome.job_id) is str
            and type(outcome.request_id) is str
        ):
            data = success_frame(outcome.job_id, outcome.request_id, outcome.result, self.encoding)
            if data is not None:
                return data
        try:
            return frame("response", outcome, self.encoding)
        except FrameTooLargeError as exc:
            message = (
                f"Outcome too large: {exc.size} bytes exceeds the "
                f"{MAX_FRAME_BYTES}-byte frame limit"
            )
            return self._error_frame(outcome, message, "OutcomeTooLarge")
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            message = f"Outcome is not serializable: {exc}"
            return self._error_frame(outcome, message, "OutcomeNotEncodable")

    def _error_frame(self, outcome: ExecutionOutcome, message: str, error_type: str) -> bytes:
        """``outcome`` turned into an error outcome (its result dropped)."""
        failed = dataclasses.replace(
            outcome,
            status="error",
            result=None,
            retry_after_seconds=None,
            snooze=False,
            error=OutcomeError(message=message, type=error_type),
        )
        return frame("response", failed, self.encoding)

    # -- lifecycle -------------------------------------------------------------------------

    def release(self, entry: _InFlight) -> None:
        self.entries.discard(entry)

    def backlogged(self) -> bool:
        return self.sink.backlogged()

    def close(self) -> None:
        """Close the connection and abort its in-flight requests without replies."""
        if self.closed:
            return
        self.runtime._connections.discard(self)
        if self._flush_handle is not None:
            # Frames already queued (outcomes included) still go out before the close.
            self._flush_handle.cancel()
            self._flush()
            if self.closed:
                return
        self.closed = True
        for entry in list(self.entries):
            self.runtime._drop(entry)
        self.entries.clear()
        self.sink.close()

    def hello_frame(self) -> bytes | None:
        """The ``hello`` frame this connection starts with, if the runtime sends one."""
        if not self.runtime.hello:
            return None
        hello = Hello(
            runtime=RUNTIME_NAME,
            runtime_version=__version__,
            pid=os.getpid(),
            max_in_flight=MAX_IN_FLIGHT,
            features=list(FEATURES),
            tags=self.runtime.tags or None,
        )
        return frame("hello", hello, self.encoding)

    async def run(self) -> None:
        """Serve a connection read through its stream reader (stdio) until it ends."""
        assert self.reader is not None
        try:
            hello = self.hello_frame()
            if hello is not None:
                await self.send_bytes(hello)
            await self._read_frames()
        except DecodeError as exc:
            self.error_code = exc.code
            log(f"{self.label}: closing the connection: {exc}")
        except (ConnectionError, OSError) as exc:
            log(f"{self.label}: connection lost: {exc}")
        finally:
            self.close()

    async def _read_frames(self) -> None:
        assert self.reader is not None
        # Reads whatever arrived and decodes every complete frame in it: one read for a burst
        # of requests, not two per frame. A frame cut by the end of a read is completed with
        # one exact read of its missing bytes.
        pending = b""  # the start of a frame: fewer than 4 bytes once a round is done
        while not self.closed:
            chunk = await self.reader.read(_READ_CHUNK)
            if not chunk:
                if pending:
                    raise DecodeError("frame_truncated", "stream ended inside a header")
                self.clean_eof = True
                return
            data = pending + chunk if pending else chunk
            pos = 0
            for start, pos in frame_bodies(data, lambda: self.closed):
                await self.dispatch(decode_frame_body(data[start:pos], self.encoding))
            pending = data[pos:]
            if len(pending) >= 4 and not self.closed:
                pending = await self._finish_frame(pending)

    async def _finish_frame(self, started: bytes) -> bytes:
        assert self.reader is not None
        length = parse_header(started[:4])
        try:
            rest = await self.reader.readexactly(4 + length - len(started))
        except asyncio.IncompleteReadError:
            raise DecodeError("frame_truncated", "stream ended inside a body") from None
        await self.dispatch(decode_frame_body(started[4:] + rest, self.encoding))
        return b""

    # -- frames ----------------------------------------------------------------------------

    def dispatch_now(self, item: Frame) -> None:
        """Handle a frame without waiting (the socket path: the caller pauses reading while
        the transport is backlogged)."""
        payload = item.payload
        if item.type == "request":
            assert isinstance(payload, ExecutionRequest)
            self._on_request(payload)
        elif item.type == "cancel":
            assert isinstance(payload, CancelRequest)
            self.runtime._on_cancel(payload)
        elif item.type == "ping":
            assert isinstance(payload, Ping)
            self.send_nowait(frame("pong", Ping(payload.nonce), self.encoding))
        elif item.type == "response":
            self.send_nowait(self.outcome_frame(_unexpected_response()))
        # hello and pong from the orchestrator are ignored

    async def dispatch(self, item: Frame) -> None:
        payload = item.payload
        if item.type == "request":
            assert isinstance(payload, ExecutionRequest)
            self._on_request(payload)
            if self.sink.backlogged() and not self.closed:
                await self.wait_writable()  # a refusal was queued to a backlogged transport
        elif item.type == "cancel":
            assert isinstance(payload, CancelRequest)
            self.runtime._on_cancel(payload)
        elif item.type == "ping":
            assert isinstance(payload, Ping)
            await self.send_bytes(frame("pong", Ping(payload.nonce), self.encoding))
        elif item.type == "response":
            await self.send_outcome(_unexpected_response())
        # hello and pong from the orchestrator are ignored

    def _on_request(self, request: ExecutionRequest) -> None:
        # Synchronous: a request is started (or refused) without a coroutine of its own.
        if request.protocol_version != PROTOCOL_VERSION:
            self.send_nowait(
                self.outcome_frame(
                    ExecutionOutcome(
                        job_id=request.job_id,
                        request_id=request.request_id,
                        status="error",
                        error=OutcomeError(message="Unsupported protocol version"),
                    )
                )
            )
            return
        if len(self.entries) >= MAX_IN_FLIGHT:
            self.send_nowait(self.outcome_frame(_busy(request)))
            return
        self.runtime._start(self, request)
