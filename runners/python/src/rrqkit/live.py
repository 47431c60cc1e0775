"""Live jobs, handler side: progress and streamed output (RUNNER_PROTOCOL.md §13).

Inside a handler, :func:`job_context` returns the running request's :class:`JobContext`::

    from rrqkit import job_context

    @registry.handler("resize")
    async def resize(request):
        ctx = job_context()
        for i, image in enumerate(images):
            ctx.progress(i / len(images), f"image {i + 1} of {len(images)}")
            ctx.output.write(f"resized {image}\\n")
        ctx.output.json({"done": len(images)})

The calls never fail a job for being unwanted: for a request whose ``live`` does not enable a
feature (an RRQ orchestrator, an old rrqkit one, or a job nobody watches) they do nothing, and so
does :func:`job_context` outside a handler. Sync handlers (run in a worker thread) and threads
or tasks they start may call them too: they are thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Final

from .codec import Encoding, frame
from .models import (
    DEFAULT_OUTPUT_MAX_BYTES,
    DEFAULT_PROGRESS_INTERVAL_MS,
    MAX_OUTPUT_DATA_BYTES,
    MAX_PROGRESS_DETAIL_BYTES,
    MAX_PROGRESS_MESSAGE_CHARS,
    ExecutionRequest,
    LiveOptions,
    OutputChunk,
    ProgressUpdate,
)

__all__ = [
    "DEFAULT_OUTPUT_MAX_BYTES",
    "DEFAULT_PROGRESS_INTERVAL_MS",
    "JobContext",
    "LiveChannel",
    "OutputWriter",
    "job_context",
]


Send = Callable[[bytes], Awaitable[bool]]
Log = Callable[[str], None]


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a \\udXXX escape) has no UTF-8 form: U+FFFD, as in every
        # runtime (§13.3); a surrogate pair written as two escapes becomes its character.
        fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return fixed.encode("utf-8")


def _stderr_log(message: str) -> None:
    print(f"rrqkit-runner[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _detail_snapshot(detail: Any) -> tuple[Any, str | None]:
    """``detail`` as the JSON value sent (a copy, so later changes do not leak into a pending
    report), or None and why it is left out (§13.2: not JSON, or over 4096 bytes)."""
    try:
        text = json.dumps(detail, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return None, f"progress detail left out: JSON cannot hold it ({exc})"
    if len(_utf8(text)) > MAX_PROGRESS_DETAIL_BYTES:
        return None, f"progress detail left out: over {MAX_PROGRESS_DETAIL_BYTES} bytes of JSON"
    return json.loads(text), None


def _split_utf8(data: bytes, limit: int) -> tuple[bytes, bytes]:
    """``data`` cut after at most ``limit`` bytes, on a character boundary."""
    if len(data) <= limit:
        return data, b""
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:  # a continuation byte: back up
        end -= 1
    return data[:end], data[end:]


class LiveChannel:
    """The live frames of one request on one connection (runtime internal).

    State changes only on the event loop thread; the public methods may be called from any
    thread. Output writes of one event-loop turn are joined into frames of at most 64 KiB;
    progress is coalesced per ``progress_interval_ms``. Frames go out in call order through one
    sender task, and :meth:`close` sends what is still due (pending output, the latest
    progress, the truncation marker) and waits for them, so they all precede the request's
    ``response`` (§13.4).
    """

    def __init__(
        self,
        request: ExecutionRequest,
        options: LiveOptions,
        send: Send,
        encoding: Encoding,
        log: Log,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._job_id = request.job_id
        self._request_id = request.request_id
        self.progress_enabled = options.progress
        self.output_enabled = options.output
        self._interval = options.progress_interval_ms / 1000
        self._output_budget = options.output_max_bytes
        self._send = send
        self._encoding: Encoding = encoding
        self._log = log
        self._closed = False
        self._queue: deque[bytes] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._last_progress_at: float | None = None
        self._pending_progress: ProgressUpdate | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._seq = 0
        self._dropped = 0
        self._pending_output: list[str] = []
        self._pending_output_chars = 0
        self._output_flush: asyncio.Handle | None = None

    # -- calls from handlers (any thread) ---------------------------------------------------

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            # The loop is gone when the runner is shutting down: the frame would go nowhere.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(fn, *args)

    def progress(self, update: ProgressUpdate) -> None:
        if self.progress_enabled:
            self._on_loop(self._progress, update)

    def output(self, text: str) -> None:
        if self.output_enabled and text:
            self._on_loop(self._output, text)

    # -- on the loop ------------------------------------------------------------------------

    def _enqueue(self, payload_type: str, payload: ProgressUpdate | OutputChunk) -> None:
        try:
            data = frame(payload_type, payload, self._encoding)
        except (TypeError, ValueError) as exc:  # checked when called; cannot happen
            self._log(f"request {self._request_id}: {payload_type} frame not sent: {exc}")
            return
        self._queue.append(data)
        if self._sender is None or self._sender.done():
            self._sender = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue:
            if not await self._send(self._queue.popleft()):
                self._queue.clear()  # the connection is gone
                return

    def _progress(self, update: ProgressUpdate) -> None:
        if self._closed:
            return
        now = self._loop.time()
        last = self._last_progress_at
        if last is None or now - last >= self._interval:
            self._send_progress(update, now)
            return
        # Too soon: keep only the latest value; it goes out when the interval is over.
        self._pending_progress = update
        if self._timer is None:
            self._timer = self._loop.call_at(last + self._interval, self._flush_progress)

    def _flush_progress(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        update, self._pending_progress = self._pending_progress, None
        if update is not None and not self._closed:
            self._send_progress(update, self._loop.time())

    def _send_progress(self, update: ProgressUpdate, now: float) -> None:
        # Output written before this report goes first, so frames keep the handler's call order.
        self._flush_output()
        self._last_progress_at = now
        self._enqueue("progress", update)

    def _output(self, text: str) -> None:
        if self._closed:
            return
        self._pending_output.append(text)
        self._pending_output_chars += len(text)
        if self._pending_output_chars >= MAX_OUTPUT_DATA_BYTES:
            self._flush_output()
        elif self._output_flush is None:
            self._output_flush = self._loop.call_soon(self._flush_output)

    def _flush_output(self) -> None:
        if self._output_flush is not None:
            self._output_flush.cancel()
            self._output_flush = None
        if self._closed or not self._pending_output:
            return
        data = _utf8("".join(self._pending_output))
        self._pending_output.clear()
        self._pending_output_chars = 0
        if self._dropped:
            self._dropped += len(data)
            return
        data, dropped = _split_utf8(data, self._output_budget)
        self._output_budget -= len(data)
        while data:
            chunk, data = _split_utf8(data, MAX_OUTPUT_DATA_BYTES)
            self._enqueue_chunk(chunk.decode("utf-8"), truncated=False)
        self._dropped += len(dropped)

    def _enqueue_chunk(self, data: str, *, truncated: bool) -> None:
        chunk = OutputChunk(
            job_id=self._job_id,
            request_id=self._request_id,
            seq=self._seq,
            stream="handler",
            data=data,
            truncated=truncated,
            dropped_bytes=self._dropped if truncated else 0,
        )
        self._seq += 1
        self._enqueue("output", chunk)

    async def close(self) -> None:
        """Send what is due (latest progress, truncation marker) and wait until every live
        frame of the request is written; later calls do nothing."""
        if not self._closed:
            self._flush_output()
            self._flush_progress()
            if self._dropped:
                # One marker, at the end, so that dropped_bytes counts everything dropped.
                self._enqueue_chunk("", truncated=True)
            self._closed = True
        sender = self._sender
        if sender is not None and not sender.done():
            await asyncio.shield(sender)

    def discard(self) -> None:
        """The connection is gone: send nothing more."""
        self._closed = True
        self._queue.clear()
        self._pending_output.clear()
        self._pending_progress = None
        for handle in (self._timer, self._output_flush):
            if handle is not None:
                handle.cancel()
        self._timer = self._output_flush = None
        # A send in progress fails on the closed connection; the sender then ends by itself.


class OutputWriter:
    """``ctx.output``: text (or JSON lines) streamed to whoever tails the job."""

    __slots__ = ("_channel",)

    def __init__(self, channel: LiveChannel | None) -> None:
        self._channel = channel

    @property
    def enabled(self) -> bool:
        """True when the request streams output (writes are not simply dropped)."""
        return self._channel is not None and self._channel.output_enabled

    def write(self, text: str) -> None:
        """Append ``text`` to the job's output as is (add your own newlines). Writes of one
        event-loop turn may share a frame; output beyond the request's ``output_max_bytes`` is
        dropped and the orchestrator is told how much."""
        if not isinstance(text, str):
            raise TypeError(f"output must be str, not {type(text).__name__}")
        if self._channel is not None:
            self._channel.output(text)

    def json(self, value: Any) -> None:
        """Append ``value`` as one line of compact JSON. Raises TypeError or ValueError for a
        value JSON cannot hold (also when output is off, so a bug shows in every test)."""
        line = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        self.write(line + "\n")


class JobContext:
    """What a handler can tell the orchestrator while it runs (see the module docs)."""

    __slots__ = ("_channel", "job_id", "output", "request_id")

    def __init__(
        self, channel: LiveChannel | None, job_id: str | None, request_id: str | None
    ) -> None:
        self._channel = channel
        #: the job and request this context belongs to (None outside a handler)
        self.job_id = job_id
        self.request_id = request_id
        self.output = OutputWriter(channel)

    @property
    def progress_enabled(self) -> bool:
        """True when progress updates of this request reach the orchestrator."""
        return self._channel is not None and self._channel.progress_enabled

    def progress(self, value: float | None, message: str | None = None, detail: Any = None) -> None:
        """Report progress: ``value`` from 0 to 1 (clamped; None, NaN or an infinity = unknown),
        an optional ``message`` (cut to 1024 characters) and an optional JSON ``detail`` (left
        out with a log line on stderr when JSON cannot hold it or it takes over 4096 bytes).
        Raises TypeError for a ``value`` that is not a number or None, or a ``message`` that is
        not a string (§13.2), whether or not progress is enabled.

        Updates are coalesced: at most one per ``progress_interval_ms`` leaves the runner, the
        latest one wins, and the last is always sent before the job's outcome.
        """
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"progress must be a number or None, not {type(value).__name__}")
            # clamped, keeping an int an int (so 1 is written as 1, as Node writes it)
            value = min(1, max(0, value)) if math.isfinite(value) else None
        if message is not None:
            if not isinstance(message, str):
                raise TypeError(f"message must be str or None, not {type(message).__name__}")
            message = message[:MAX_PROGRESS_MESSAGE_CHARS]
        if detail is not None:
            # Checked before the enabled test, so a mistake shows in every run.
            detail, problem = _detail_snapshot(detail)
            if problem is not None:
                log = self._channel._log if self._channel is not None else _stderr_log
                log(f"request {self.request_id}: {problem}")
        if self._channel is None or not self._channel.progress_enabled:
            return
        assert self.job_id is not None and self.request_id is not None
        self._channel.progress(ProgressUpdate(self.job_id, self.request_id, value, message, detail))


_DETACHED: Final = JobContext(None, None, None)
_CURRENT: ContextVar[JobContext] = ContextVar("rrqkit_job_context", default=_DETACHED)


def job_context() -> JobContext:
    """The running request's :class:`JobContext`; outside a handler one that does nothing."""
    return _CURRENT.get()


def set_job_context(ctx: JobContext) -> Any:
    """Make ``ctx`` current in this task/thread context (runtime internal); returns the token
    for :meth:`ContextVar.reset`."""
    return _CURRENT.set(ctx)
