"""The producer's Redis access: the redis-py client (reads, cancels, transactions), the
pipelined enqueue lane (:mod:`rrqkit.producer_wire`) and the mapping of their failures to
:class:`~rrqkit.errors.ProducerError` (``redis_unavailable``, ``redis_error``), with the
DSN's password never shown."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Sequence
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .config import ProducerConfig, redact_dsn
from .errors import ProducerError
from .producer_wire import RespLane, lane_address

__all__ = ["RedisAccess", "lua"]


@functools.cache
def lua(name: str) -> str:
    """The text of a shared script (``rrqkit/lua/<name>``), read once."""
    return resources.files("rrqkit").joinpath("lua", name).read_text(encoding="utf-8")


def _redact(message: str, dsn: str) -> str:
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        message = message.replace(password, "***")
    return message


class RedisAccess:
    """Redis calls for :class:`~rrqkit.producer.Producer` (its base class)."""

    config: ProducerConfig

    def __init__(self, config: ProducerConfig, redis: Any) -> None:
        self.config = config
        self._redis: Any = redis
        self._owns_redis = redis is None
        self._scripts: dict[str, Any] = {}
        # Whether the current client has answered once; until then the first call is bounded
        # by the connect timeout (redis-py bounds the TCP connect only, not the handshake).
        self._reachable = False
        # The enqueue lane: None until the first enqueue; False when this producer has none
        # (a client given by the caller, whose connection settings are its own; TLS).
        self._lane: RespLane | bool | None = None if redis is None else False

    async def close(self) -> None:
        """Close the connections this producer opened (not a client given to it)."""
        client, self._redis = self._redis, None
        lane, self._lane = self._lane, None if self._owns_redis else False
        self._scripts.clear()
        if isinstance(lane, RespLane):
            await lane.close()
        if client is not None and self._owns_redis:
            await client.aclose()

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as aioredis

            dsn = self.config.redis_dsn
            if dsn.startswith("redis+unix://"):
                dsn = "unix://" + dsn[len("redis+unix://") :]
            self._redis = aioredis.from_url(
                dsn,
                decode_responses=True,
                socket_connect_timeout=self.config.redis_connect_timeout_seconds,
            )
            self._owns_redis = True
        return self._redis

    def _script(self, name: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._client().register_script(lua(name))
            self._scripts[name] = script
        return script

    def _redis_error(self, exc: BaseException) -> ProducerError:
        message = _redact(f"{type(exc).__name__}: {exc}", self.config.redis_dsn)
        return ProducerError("redis_error", message)

    def _unavailable(self, reason: str) -> ProducerError:
        timeout = self.config.redis_connect_timeout_seconds
        message = (
            f"cannot connect to Redis at {redact_dsn(self.config.redis_dsn)}: {reason} "
            f"(connect timeout {timeout:g} s; set redis_connect_timeout_seconds in rrq.toml or "
            "RRQ_REDIS_CONNECT_TIMEOUT to change it)"
        )
        return ProducerError("redis_unavailable", _redact(message, self.config.redis_dsn))

    async def _ensure_reachable(self) -> None:
        """Bounds the first round trip of a client (connect and handshake) by the timeout."""
        if self._reachable:
            return
        timeout = self.config.redis_connect_timeout_seconds
        try:
            await asyncio.wait_for(self._client().ping(), timeout)
        except TimeoutError:
            raise self._unavailable("no reply to the Redis handshake") from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self._unavailable(str(exc) or type(exc).__name__) from None
        except RedisError as exc:
            raise self._redis_error(exc) from None
        self._reachable = True

    async def _call(self, coro: Any) -> Any:
        """Awaits a redis-py call, its failures as ProducerError."""
        try:
            await self._ensure_reachable()
            return await coro
        except (RedisConnectionError, OSError) as exc:
            self._reachable = False
            raise self._unavailable(str(exc) or type(exc).__name__) from None
        except RedisError as exc:
            raise self._redis_error(exc) from None
        finally:
            # Not awaited when the reachability check failed: close it quietly.
            if asyncio.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED":
                coro.close()

    def _enqueue_lane(self) -> RespLane | None:
        lane = self._lane
        if lane is None:
            address = lane_address(self.config.redis_dsn)
            timeout = self.config.redis_connect_timeout_seconds
            lane = self._lane = False if address is None else RespLane(address, timeout)
        return lane if isinstance(lane, RespLane) else None

    async def _eval(self, name: str, keys: list[str], args: list[str]) -> Any:
        """Runs the shared script ``name``: on the enqueue lane when there is one (its connect
        bounded by the connect timeout), else through redis-py."""
        lane = self._enqueue_lane()
        if lane is None:
            return await self._call(self._script(name)(keys=keys, args=args))
        try:
            return await lane.evalsha(lua(name), keys, args)
        except TimeoutError:  # only the connect is bounded; before OSError (its base class)
            raise self._unavailable("no reply to the Redis handshake") from None
        except (RedisConnectionError, OSError) as exc:
            raise self._unavailable(str(exc) or type(exc).__name__) from None
        except RedisError as exc:
            raise self._redis_error(exc) from None

    async def _transaction(self, calls: Sequence[tuple[Any, list[str], list[str]]]) -> list[Any]:
        """Runs the script calls in one MULTI ... EXEC; their replies, in order."""
        async with self._client().pipeline(transaction=True) as pipe:
            for script, keys, args in calls:
                await script(keys=keys, args=args, client=pipe)
            return list(await pipe.execute())
