"""The runner runtime: serves runner protocol v2 over TCP, Unix sockets or stdio.

Rules implemented here (RUNNER_PROTOCOL.md §6–§10): requests run concurrently and are answered
as they finish; at most 64 in flight per connection (the 65th is refused at once); exactly one
outcome per accepted request; cancels are looked up process-wide and answered on the connection
that carried the request; ``context.deadline`` is enforced with a shared timer (deadlines.py);
closing a connection (connection.py) aborts its requests without replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import stat
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

from . import outcomes
from .codec import (
    Encoding,
    codec_uses_orjson,
)
from .connection import FEATURES, MAX_IN_FLIGHT, RUNTIME_NAME, Connection
from .connection import log as _log
from .deadlines import Deadlines
from .errors import NonRetryableError, RetryJob, SnoozeJob
from .live import JobContext, LiveChannel, set_job_context
from .middleware import call_handler, run_handler_chain
from .models import (
    PROTOCOL_VERSION,
    CancelRequest,
    ExecutionOutcome,
    ExecutionRequest,
    normalize_tags,
)
from .sinks import FdSink, PipeProtocol, PipeSink, Sink, is_pipe, start_reader_thread
from .socket_protocol import SocketProtocol
from .telemetry import NoopTelemetry, Telemetry, resolve
from .timeutil import now_ns
from .tracebacks import format_traceback
from .wiretime import parse_wire_time

if TYPE_CHECKING:
    from .contracts import JobCatalog

__all__ = [
    "FEATURES",
    "MAX_IN_FLIGHT",
    "RUNTIME_NAME",
    "HandlerSource",
    "RunnerRuntime",
    "runner_tags",
]

_READ_LIMIT: Final = 4 * 1024 * 1024


class HandlerSource(Protocol):
    """Anything with ``get_handler(name)``: a :class:`~rrqkit.registry.Registry`, or RRQ's."""

    def get_handler(self, name: str) -> Any: ...


def _loop_name() -> str:
    # "uvloop" or "asyncio": which loop (and JSON codec) serve, for the start-up log line
    module = type(asyncio.get_running_loop()).__module__.split(".")[0]
    return f"{module} loop, {'orjson' if codec_uses_orjson() else 'json'}"


# --------------------------------------------------------------------------------------------
# In-flight requests


class _InFlight:
    __slots__ = ("conn", "done", "expired", "live", "request", "span", "started", "task", "timed")

    def __init__(self, conn: Connection, request: ExecutionRequest) -> None:
        self.conn = conn
        self.request = request
        self.done = False  # an outcome was (or is being) written, or the request was dropped
        self.expired = False
        self.task: asyncio.Task[None] | None = None
        self.timed = False  # its deadline is pending in the runtime's Deadlines
        self.span: Any = None
        self.started = time.monotonic()
        self.live: LiveChannel | None = None  # when the request's `live` enables a feature


# One entry, or a set of them when a key is in flight more than once (rare): no set per key.
_Bucket = _InFlight | set[_InFlight]


def _bucket_add(index: dict[str, _Bucket], key: str, entry: _InFlight) -> None:
    bucket = index.get(key)
    if bucket is None:
        index[key] = entry
    elif type(bucket) is set:
        bucket.add(entry)
    else:
        index[key] = {bucket, entry}  # type: ignore[arg-type]


def _bucket_remove(index: dict[str, _Bucket], key: str, entry: _InFlight) -> None:
    bucket = index.get(key)
    if bucket is entry:
        del index[key]
    elif type(bucket) is set:
        bucket.discard(entry)
        if not bucket:
            del index[key]


def _bucket_entries(index: dict[str, _Bucket], key: str) -> list[_InFlight]:
    bucket = index.get(key)
    if bucket is None:
        return []
    return list(bucket) if type(bucket) is set else [bucket]  # type: ignore[list-item]


def _with_ids(outcome: ExecutionOutcome, request: ExecutionRequest) -> ExecutionOutcome:
    if outcome.job_id and outcome.request_id:
        return outcome  # the runtime's own success outcomes are built with them
    # A copy: a handler may return the same outcome object for many requests.
    return ExecutionOutcome(
        job_id=outcome.job_id or request.job_id,
        request_id=outcome.request_id or request.request_id,
        status=outcome.status,
        result=outcome.result,
        error=outcome.error,
        retry_after_seconds=outcome.retry_after_seconds,
        snooze=outcome.snooze,
    )


_COROUTINE_FUNCTIONS: dict[Any, bool] = {}


def _is_coroutine_function(handler: Any) -> bool:
    # inspect.iscoroutinefunction unwraps partials and methods on every call: remembered per
    # handler object (bounded: registries are small, but handlers could be built per call).
    try:
        known = _COROUTINE_FUNCTIONS.get(handler)
    except TypeError:  # an unhashable callable object
        return inspect.iscoroutinefunction(handler)
    if known is None:
        known = inspect.iscoroutinefunction(handler)
        if len(_COROUTINE_FUNCTIONS) >= 1024:
            _COROUTINE_FUNCTIONS.clear()
        _COROUTINE_FUNCTIONS[handler] = known
    return known


def runner_tags(tags: Iterable[str] | None = None, env: str | None = None) -> list[str]:
    """``tags`` plus the comma-separated ``env`` (default ``RRQ_RUNNER_TAGS``; blank items are
    skipped), checked, deduplicated and sorted. Raises ValueError for an invalid tag or more
    than 32."""
    if env is None:
        env = os.environ.get("RRQ_RUNNER_TAGS", "")
    merged = list(tags or ())
    merged += [item.strip() for item in env.split(",") if item.strip()]
    return normalize_tags(merged)


class RunnerRuntime:
    """Runs handlers from ``registry`` for an orchestrator.

    ``registry`` is a :class:`~rrqkit.registry.Registry` (or any object with
    ``get_handler(name)``). ``hello`` defaults to ``RRQ_RUNNER_HELLO == "1"``; ``telemetry``
    defaults to :func:`rrqkit.telemetry.resolve`.

    ``catalog`` (a :class:`~rrqkit.contracts.JobCatalog`; by default the directory
    ``RRQ_JOB_CATALOG`` names, if set) turns on runner-side validation: the params of a
    catalogued function are checked before its handler runs, and params that break the contract
    get an ``error`` outcome with ``error.type = "invalid_params"`` and a message such as
    ``send_email: params/to 1 is not of type 'string'`` (rrqkit's orchestrator does not retry
    it). An unusable catalog raises :class:`~rrqkit.contracts.CatalogError` here.

    ``tags`` are the capability tags the hello announces (jobs enqueued with ``requires`` go
    only to runners whose tags cover them), merged with the comma-separated
    ``RRQ_RUNNER_TAGS``; see :func:`runner_tags`.
    """

    def __init__(
        self,
        registry: HandlerSource,
        *,
        telemetry: Telemetry | None = None,
        hello: bool | None = None,
        catalog: JobCatalog | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        self.registry = registry
        if catalog is None and os.environ.get("RRQ_JOB_CATALOG", "").strip():
            from .contracts import catalog_from_env

            catalog = catalog_from_env()
        self.catalog: JobCatalog | None = catalog
        self.telemetry = resolve(telemetry)
        # Without an exporter there is nothing to start, activate or end per request.
        self._tracing = type(self.telemetry) not in (Telemetry, NoopTelemetry)
        self.hello = os.environ.get("RRQ_RUNNER_HELLO") == "1" if hello is None else hello
        self.tags = runner_tags(tags)
        # request id → its entry (a set when the same id is in flight more than once)
        self._by_request: dict[str, _Bucket] = {}
        self._by_job: dict[str, _Bucket] = {}
        self._connections: set[Connection] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._stopped: asyncio.Event | None = None
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines[_InFlight] | None = None

    # -- bookkeeping -----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _register(self, entry: _InFlight) -> None:
        _bucket_add(self._by_request, entry.request.request_id, entry)
        _bucket_add(self._by_job, entry.request.job_id, entry)

    def _unregister(self, entry: _InFlight) -> None:
        _bucket_remove(self._by_request, entry.request.request_id, entry)
        _bucket_remove(self._by_job, entry.request.job_id, entry)
        if entry.timed and self._deadlines is not None:
            self._deadlines.discard(entry)

    @property
    def in_flight(self) -> int:
        """Requests in flight across all connections."""
        return sum(
            len(bucket) if type(bucket) is set else 1 for bucket in self._by_request.values()
        )

    # -- request lifecycle -----------------------------------------------------------------

    def _start(self, conn: Connection, request: ExecutionRequest) -> None:
        entry = _InFlight(conn, request)
        live = request.live
        if live is not None and (live.progress or live.output):
            entry.live = LiveChannel(request, live, conn.send_bytes, conn.encoding, _log)
        conn.entries.add(entry)
        self._register(entry)
        deadline = request.context.deadline
        if deadline is not None:
            try:
                now = now_ns()
                remaining_ns = parse_wire_time(deadline) - now
            except ValueError:
                _log(f"request {request.request_id}: ignoring unparsable deadline {deadline!r}")
            else:
                if remaining_ns <= 0:
                    entry.expired = True
                else:
                    self._deadlines_of(conn.loop).add(remaining_ns + now, entry)
        if self._tracing:
            try:
                entry.span = self.telemetry.start(request)
            except Exception as exc:
                _log(f"telemetry start failed: {exc}")
        entry.task = conn.loop.create_task(self._execute(entry))

    async def _execute(self, entry: _InFlight) -> None:
        request = entry.request
        try:
            if entry.expired:
                outcome = outcomes.timeout("Job deadline exceeded")
            else:
                handler = self.registry.get_handler(request.function_name)
                problem = (
                    None
                    if handler is None or self.catalog is None
                    else self.catalog.check_params(request.function_name, request.params)
                )
                if handler is None:
                    outcome = outcomes.handler_not_found(request.function_name)
                elif problem is not None:
                    outcome = outcomes.error(problem.message, type="invalid_params")
                else:
                    # Current for the handler, and copied into the thread of a sync one.
                    set_job_context(JobContext(entry.live, request.job_id, request.request_id))
                    if self._tracing:
                        with self.telemetry.activate(entry.span):
                            outcome = await self._invoke(handler, request)
                    else:
                        outcome = await self._invoke(handler, request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failure of the runtime itself, not of the handler
            _log(f"request {request.request_id}: internal error: {exc!r}")
            outcome = outcomes.error(
                f"Runner internal error: {exc}",
                type=type(exc).__name__,
                traceback=format_traceback(exc),
            )
        await self._complete(entry, _with_ids(outcome, request))

    async def _invoke(self, handler: Any, request: ExecutionRequest) -> ExecutionOutcome:
        # The registry's middleware (RRQ's registry has none) wraps the handler; its errors map
        # to outcomes like the handler's.
        middlewares = getattr(self.registry, "middlewares", None) or ()
        try:
            if middlewares:
                result = await run_handler_chain(
                    middlewares, request, lambda: call_handler(handler, request)
                )
            elif _is_coroutine_function(handler):
                result = await handler(request)
            else:
                result = await asyncio.to_thread(handler, request)
                if inspect.isawaitable(result):
                    result = await result
        except RetryJob as exc:
            return outcomes.retry(
                exc.message or "Job requested retry", after_seconds=exc.retry_after_seconds
            )
        except SnoozeJob as exc:
            return outcomes.snooze(exc.seconds)
        except NonRetryableError as exc:
            return outcomes.non_retryable(
                str(exc) or "Job failed (not retryable)", traceback=format_traceback(exc)
            )
        except TimeoutError as exc:
            return outcomes.timeout(
                str(exc) or "Job execution timed out", traceback=format_traceback(exc)
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being aborted; whoever aborted writes the outcome
            return outcomes.cancelled()
        except Exception as exc:
            return outcomes.error(
                str(exc) or "Unhandled handler error",
                type=type(exc).__name__,
                traceback=format_traceback(exc),
            )
        if isinstance(result, ExecutionOutcome):
            return outcomes.with_default_error(result)
        return ExecutionOutcome(request.job_id, request.request_id, "success", result)

    async def _complete(self, entry: _InFlight, outcome: ExecutionOutcome) -> None:
        if entry.done:
            return  # already answered (cancel or deadline): discard
        entry.done = True
        self._unregister(entry)
        if entry.live is not None:
            await self._deliver(entry, outcome)
            return
        # No live frames to precede it: queue the outcome without more coroutines.
        conn = entry.conn
        conn.release(entry)  # first: see _deliver
        try:
            queued = conn.send_nowait(conn.outcome_frame(outcome))
        finally:
            self._end_span(entry, outcome)
        if queued and conn.sink.backlogged():
            await conn.wait_writable()

    async def _deliver(self, entry: _InFlight, outcome: ExecutionOutcome) -> None:
        # Free the slot first: an orchestrator may send the next request the moment it reads
        # this outcome, and must not get "Runner busy" (RUNNER_PROTOCOL.md §6.4, §9.4).
        entry.conn.release(entry)
        try:
            if entry.live is not None:
                # Live frames precede the response: the last progress, the truncation marker.
                await entry.live.close()
            await entry.conn.send_outcome(outcome)
        finally:
            self._end_span(entry, outcome)

    def _end_span(self, entry: _InFlight, outcome: ExecutionOutcome | None) -> None:
        span, entry.span = entry.span, None
        if span is None:
            return
        try:
            duration_ms = int((time.monotonic() - entry.started) * 1000)
            self.telemetry.end(span, outcome, duration_ms)
        except Exception as exc:
            _log(f"telemetry end failed: {exc}")

    def _abort(self, entry: _InFlight, outcome: ExecutionOutcome) -> None:
        """Answer ``entry`` now with ``outcome`` and stop its handler."""
        if entry.done:
            return
        entry.done = True
        self._unregister(entry)
        entry.conn.release(entry)  # now, not when the delivery task runs
        if entry.task is not None:
            entry.task.cancel()
        self._spawn(self._deliver(entry, _with_ids(outcome, entry.request)))

    def _drop(self, entry: _InFlight) -> None:
        """Abort without an outcome (the connection is gone)."""
        if not entry.done:
            entry.done = True
            self._unregister(entry)
            if entry.task is not None:
                entry.task.cancel()
            self._end_span(entry, None)
        if entry.live is not None:
            entry.live.discard()
        entry.conn.release(entry)

    def _deadlines_of(self, loop: asyncio.AbstractEventLoop) -> Deadlines[_InFlight]:
        deadlines = self._deadlines
        if deadlines is None or deadlines.loop is not loop:
            # (a runtime served again from another event loop: the old loop's are gone)
            deadlines = self._deadlines = Deadlines(loop, self._on_deadline)
        return deadlines

    def _on_deadline(self, entry: _InFlight) -> None:
        self._abort(entry, outcomes.timeout("Job execution timed out"))

    def _on_cancel(self, cancel: CancelRequest) -> None:
        if cancel.protocol_version != PROTOCOL_VERSION:
            return
        if cancel.request_id is not None:
            targets = _bucket_entries(self._by_request, cancel.request_id)
        else:
            targets = _bucket_entries(self._by_job, cancel.job_id)
        for entry in targets:
            self._abort(entry, outcomes.cancelled())

    # -- serving ---------------------------------------------------------------------------

    def _prepare(self) -> asyncio.Event:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if self._stop_requested:
            self._stopped.set()
        return self._stopped

    def stop(self) -> None:
        """Stop serving: close listeners and connections, abort everything in flight.
        Safe to call from any thread, also before serving starts."""
        self._stop_requested = True
        loop, stopped = self._loop, self._stopped
        if loop is None or stopped is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            stopped.set()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)

    def _close_all(self) -> None:
        for conn in list(self._connections):
            conn.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, sink: Sink, encoding: Encoding, label: str
    ) -> Connection:
        conn = Connection(self, reader, sink, encoding, label)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
        return conn

    def _socket_protocols(self, encoding: Encoding, kind: str) -> Callable[[], SocketProtocol]:
        """The protocol factory of a socket server: each accepted connection is served by
        callbacks (rrqkit/socket_protocol.py) and starts with the hello frame."""
        counter = iter(range(1, 1 << 62))

        def connect(sink: Sink) -> Connection:
            conn = Connection(self, None, sink, encoding, f"{kind} connection {next(counter)}")
            self._connections.add(conn)
            hello = conn.hello_frame()
            if hello is not None:
                conn.send_nowait(hello)
            return conn

        return lambda: SocketProtocol(connect, _log)

    async def _serve_server(
        self, server: asyncio.AbstractServer, stopped: asyncio.Event, cleanup: Callable[[], None]
    ) -> None:
        try:
            await stopped.wait()
        finally:
            server.close()
            self._close_all()
            cleanup()

    async def serve_tcp(
        self,
        host: str,
        port: int,
        *,
        encoding: Encoding = "json",
        on_ready: Callable[[tuple[str, int]], None] | None = None,
    ) -> None:
        """Listen on ``host:port`` until :meth:`stop`."""
        stopped = self._prepare()
        server = await asyncio.get_running_loop().create_server(
            self._socket_protocols(encoding, "tcp"), host, port
        )
        address = server.sockets[0].getsockname()
        _log(f"listening on tcp {address[0]}:{address[1]} ({encoding}, {_loop_name()})")
        if on_ready is not None:
            on_ready((address[0], address[1]))
        await self._serve_server(server, stopped, lambda: None)

    async def serve_unix(
        self,
        path: str,
        *,
        encoding: Encoding = "json",
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        """Listen on the Unix socket ``path`` until :meth:`stop`; removes it afterwards."""
        stopped = self._prepare()
        server = await asyncio.get_running_loop().create_unix_server(
            self._socket_protocols(encoding, "unix"), path
        )
        inode = os.stat(path).st_ino

        def cleanup() -> None:
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if stat.S_ISSOCK(st.st_mode) and st.st_ino == inode:
                    os.unlink(path)

        _log(f"listening on unix {path} ({encoding}, {_loop_name()})")
        if on_ready is not None:
            on_ready(path)
        await self._serve_server(server, stopped, cleanup)

    async def serve_stdio(
        self, in_fd: int = 0, out_fd: int = 1, *, encoding: Encoding = "json"
    ) -> bool:
        """Serve the single stdio connection until stdin ends or :meth:`stop`.

        Returns True when it ended by end of file on stdin (even inside a frame), a write
        failure or :meth:`stop`, False after any other decoding error.
        """
        stopped = self._prepare()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_READ_LIMIT)
        in_file = os.fdopen(in_fd, "rb", buffering=0, closefd=False)
        try:
            if not is_pipe(in_fd):
                raise ValueError("not a pipe")
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), in_file)
        except ValueError:
            start_reader_thread(loop, reader, in_fd)
        out_file = os.fdopen(out_fd, "wb", buffering=0, closefd=False)
        sink: Sink
        try:
            if not is_pipe(out_fd):
                raise ValueError("not a pipe")
            transport, protocol = await loop.connect_write_pipe(PipeProtocol, out_file)
            sink = PipeSink(transport, protocol)
        except ValueError:
            sink = FdSink(out_fd)
        _log(f"serving stdio ({encoding}, {_loop_name()})")
        serve = loop.create_task(self._serve_connection(reader, sink, encoding, "stdio"))
        stop_wait = loop.create_task(stopped.wait())
        await asyncio.wait({serve, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        self._close_all()
        if serve.done():
            conn = serve.result()
            return conn.error_code in (None, "frame_truncated") or stopped.is_set()
        serve.cancel()
        return True
