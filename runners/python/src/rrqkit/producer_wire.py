"""The producer's enqueue lane: one pipelined Redis connection speaking RESP2 directly.

redis-py spends most of an enqueue's CPU on its per-command machinery (connection checkout and
release, command encoding, timeout wrappers, observability hooks): several times the cost of
the round trip itself. Enqueues need none of it: each is one EVALSHA whose reply is a short
array. The lane writes every command straight to an asyncio transport and matches replies to
callers in order (RESP replies come back in request order), so concurrent callers share one
connection and the commands written in one event-loop turn go out in one ``send``.

Replies are parsed by ``hiredis`` when it is installed, else by the small RESP2 reader here.
Only what redis-py would also do on connect is sent before the first command: ``AUTH`` and
``SELECT`` when the DSN asks for them, else one ``PING`` (so a server that accepts and never
answers fails within the connect timeout). DSNs the lane cannot serve as redis-py would (TLS,
query options other than ``db``) return no lane: the producer then uses redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from typing import Any, Final, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

_hiredis: Any
try:  # optional C accelerator; redis-py uses it too when present
    import hiredis as _hiredis
except ImportError:  # pragma: no cover - exercised by the pure-Python reader tests
    _hiredis = None

__all__ = ["LaneAddress", "RespLane", "lane_address", "pack_command"]

_CRLF: Final = b"\r\n"


def _pack_python(args: tuple[str, ...]) -> bytes:
    """RESP array of bulk strings (what ``hiredis.pack_command`` makes)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


#: Packs one command (a tuple of str) as RESP bytes.
pack_command: Any = _hiredis.pack_command if _hiredis is not None else _pack_python


class _Incomplete(Exception):
    """The buffer ends inside a reply."""


class PyReader:
    """A RESP2 reply reader with ``hiredis.Reader``'s ``feed``/``gets`` interface: ``gets``
    returns the next reply, or False while the buffer holds no whole reply. Error replies are
    returned as :class:`ResponseError` instances (not raised), bulk strings as str."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def gets(self) -> Any:
        try:
            value, pos = self._parse(self._pos)
        except _Incomplete:
            return False
        self._pos = pos
        if pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        return value

    def _parse(self, pos: int) -> tuple[Any, int]:
        buf = self._buf
        end = buf.find(_CRLF, pos)
        if end < 0:
            raise _Incomplete
        kind, line, nxt = buf[pos], bytes(buf[pos + 1 : end]), end + 2
        if kind == 0x2B:  # +simple string
            return line.decode("utf-8"), nxt
        if kind == 0x2D:  # -error
            return ResponseError(line.decode("utf-8", errors="replace")), nxt
        if kind == 0x3A:  # :integer
            return int(line), nxt
        if kind == 0x24:  # $bulk string
            size = int(line)
            if size < 0:
                return None, nxt
            if len(buf) < nxt + size + 2:
                raise _Incomplete
            return bytes(buf[nxt : nxt + size]).decode("utf-8"), nxt + size + 2
        if kind == 0x2A:  # *array
            count = int(line)
            if count < 0:
                return None, nxt
            items = []
            for _ in range(count):
                item, nxt = self._parse(nxt)
                items.append(item)
            return items, nxt
        raise RedisConnectionError(f"Protocol error: unexpected reply type {chr(kind)!r}")


def _reader() -> Any:
    if _hiredis is not None:
        return _hiredis.Reader(encoding="utf-8", replyError=ResponseError)
    return PyReader()


class LaneAddress:
    """Where and how a lane connects (from a DSN)."""

    __slots__ = ("db", "host", "password", "path", "port", "username")

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.db, self.username, self.password = db, username, password

    def handshake(self) -> list[tuple[str, ...]]:
        """The commands sent before the first enqueue (at least one, to see the server)."""
        commands: list[tuple[str, ...]] = []
        if self.password is not None:
            who = (self.username,) if self.username else ()
            commands.append(("AUTH", *who, self.password))
        if self.db:
            commands.append(("SELECT", str(self.db)))
        return commands or [("PING",)]


_LANE_KEYS: Final = frozenset({"host", "port", "path", "db", "username", "password"})


def lane_address(dsn: str) -> LaneAddress | None:
    """The lane's address for ``dsn`` (already validated by the config), or None when only
    redis-py can serve it (TLS, or query options beyond ``db``)."""
    from redis.asyncio.connection import Connection, UnixDomainSocketConnection, parse_url

    if dsn.startswith("redis+unix://"):
        dsn = "unix://" + dsn[len("redis+unix://") :]
    try:
        kwargs: dict[str, Any] = dict(parse_url(dsn))
    except ValueError:
        return None
    connection_class = kwargs.pop("connection_class", Connection)
    if connection_class not in (Connection, UnixDomainSocketConnection) or set(kwargs) - _LANE_KEYS:
        return None
    return LaneAddress(**kwargs)


class _Protocol(asyncio.Protocol):
    """Feeds received bytes to the reader and hands each reply to the oldest waiter."""

    def __init__(self) -> None:
        self.reader = _reader()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.loop = asyncio.get_running_loop()

    def is_current(self) -> bool:
        """Whether this connection belongs to the running event loop (a producer used from
        several ``asyncio.run`` calls reconnects in each)."""
        return self.loop is asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # not isinstance-checked: uvloop's transports do not subclass asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader, waiters = self.reader, self.waiters
        try:
            reader.feed(data)
            while True:
                reply = reader.gets()
                if reply is False:
                    return
                waiter = waiters.popleft()
                if not waiter.done():  # a cancelled caller's reply is read and dropped
                    waiter.set_result(reply)
        except Exception as exc:  # a protocol error: nothing after it can be matched up
            self._fail(RedisConnectionError(f"Redis protocol error: {exc}"))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"Connection closed by server ({exc or 'EOF'})"))

    def _fail(self, error: BaseException) -> None:
        self.lost = self.lost or error
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)


class RespLane:
    """One pipelined connection for enqueue scripts. Not thread-safe; one event loop."""

    def __init__(self, address: LaneAddress, connect_timeout: float) -> None:
        self._address = address
        self._timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._out: list[bytes] = []
        #: script text -> its SHA1 (computed once per script)
        self._shas: dict[str, str] = {}

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        address = self._address
        if address.path is not None:
            _, protocol = await loop.create_unix_connection(_Protocol, address.path)
        else:
            _, protocol = await loop.create_connection(
                _Protocol, address.host or "localhost", address.port
            )
        try:
            for reply in await asyncio.gather(
                *(self._send(protocol, command) for command in address.handshake())
            ):
                if isinstance(reply, ResponseError):
                    raise reply
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.abort()
            raise
        return protocol

    async def _ready(self) -> _Protocol:
        """The connected protocol; the first caller connects (bounded by the timeout), the
        callers meanwhile wait for the same connection."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(
                asyncio.wait_for(self._connect(), self._timeout)
            )
        try:
            protocol = await asyncio.shield(self._connecting)
        except BaseException:
            if self._connecting.done():
                self._connecting = None  # the next call tries again
            raise
        self._protocol = protocol
        return protocol

    def _send(self, protocol: _Protocol, command: tuple[str, ...]) -> asyncio.Future[Any]:
        if protocol.lost is not None:
            raise protocol.lost
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        protocol.waiters.append(waiter)
        packed = pack_command(command)
        if self._out:
            self._out.append(packed)
        elif len(protocol.waiters) == 1 and protocol.transport is not None:
            # Nothing else in flight: a lone caller's command goes out at once.
            protocol.transport.write(packed)
        else:
            # Callers in flight: every command of this loop turn goes out in one write.
            self._out.append(packed)
            loop.call_soon(self._flush, protocol)
        return waiter

    def _flush(self, protocol: _Protocol) -> None:
        out, self._out = self._out, []
        if protocol.transport is not None and protocol.lost is None:
            protocol.transport.write(b"".join(out))

    async def execute(self, *command: str) -> Any:
        """Sends one command and returns its reply; an error reply raises ResponseError."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None or not protocol.is_current():
            if protocol is not None:  # lost, or another loop's: a new connection replaces it
                self._abandon(protocol)
            protocol = await self._ready()
        reply = await self._send(protocol, command)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def _abandon(self, protocol: _Protocol) -> None:
        self._protocol = self._connecting = None
        self._out = []
        if protocol.lost is None and protocol.transport is not None:
            with contextlib.suppress(RuntimeError):  # its loop may be closed
                protocol.transport.abort()

    async def evalsha(self, script: str, keys: list[str], args: list[str]) -> Any:
        """Runs ``script`` by its SHA1, loading it on a NOSCRIPT reply (once per server
        restart or SCRIPT FLUSH, so a steady enqueue is exactly one EVALSHA)."""
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = hashlib.sha1(script.encode("utf-8")).hexdigest()
        command = ("EVALSHA", sha, str(len(keys)), *keys, *args)
        try:
            return await self.execute(*command)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.execute("SCRIPT", "LOAD", script)
        return await self.execute(*command)

    async def close(self) -> None:
        connecting, self._connecting = self._connecting, None
        protocol, self._protocol = self._protocol, None
        if connecting is not None:
            if not connecting.done():
                connecting.cancel()
            elif protocol is None and not connecting.cancelled() and not connecting.exception():
                protocol = connecting.result()
        if protocol is not None and protocol.transport is not None:
            with contextlib.suppress(RuntimeError):  # another loop's, closed by now
                protocol.transport.close()
