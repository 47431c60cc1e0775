"""The producer's enqueue lane (rrqkit.producer_wire): one EVALSHA per enqueue, NOSCRIPT
handled lazily, replies matched to concurrent callers, reconnection, the pure-Python RESP
reader, and the DSNs it serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

import rrqkit.producer_wire as wire
from rrqkit import Producer, ProducerError
from rrqkit.producer_wire import PyReader, lane_address


@pytest.fixture
async def env(env: tuple[Producer, Any]) -> AsyncIterator[tuple[Producer, Any]]:
    yield env


def record_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the commands the producer's lane sends from now on."""
    sent: list[str] = []
    real_send = wire.RespLane._send

    def send(self: Any, protocol: Any, command: tuple[str, ...]) -> Any:
        sent.append(" ".join(command[:2]) if command[0] == "SCRIPT" else command[0])
        return real_send(self, protocol, command)

    monkeypatch.setattr(wire.RespLane, "_send", send)
    return sent


async def test_a_steady_enqueue_is_exactly_one_evalsha(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer, client = env
    sent = record_commands(monkeypatch)
    await producer.enqueue("warm")  # connects and loads the script (flushed by the fixture)
    assert sent == ["PING", "EVALSHA", "SCRIPT LOAD", "EVALSHA"]
    sent.clear()
    for i in range(20):
        await producer.enqueue("fn", {"i": i})
    await producer.enqueue_many([{"function_name": "fn"}] * 10)
    assert sent == ["EVALSHA"] * 20 + ["EVALSHA", "SCRIPT LOAD", "EVALSHA"]
    assert await client.zcard("rrq:queue:default") == 31


async def test_noscript_is_loaded_once_and_the_enqueue_retried(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer, client = env
    await producer.enqueue("warm")
    await client.script_flush()
    sent = record_commands(monkeypatch)
    job_id = await producer.enqueue("fn", {"a": 1})
    await producer.enqueue("fn", {"a": 2})
    assert sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA", "EVALSHA"]
    assert await client.hget(f"rrq:job:{job_id}", "job_params") == '{"a":1}'


async def test_concurrent_callers_get_their_own_replies(env: Any) -> None:
    producer, client = env
    ids = await asyncio.gather(
        *(producer.enqueue("fn", {"i": i}, job_id=f"job-{i}") for i in range(200))
    )
    assert ids == [f"job-{i}" for i in range(200)]
    assert await client.zcard("rrq:queue:default") == 200
    # a duplicate among concurrent calls fails alone
    results = await asyncio.gather(
        producer.enqueue("fn", job_id="job-3"),
        producer.enqueue("fn", job_id="fresh"),
        return_exceptions=True,
    )
    assert isinstance(results[0], ProducerError) and results[0].code == "duplicate_job_id"
    assert results[1] == "fresh"


async def test_a_dropped_connection_fails_its_call_and_the_next_reconnects(env: Any) -> None:
    producer, client = env
    await producer.enqueue("warm")
    await client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    await asyncio.sleep(0.05)  # the lane sees the close
    job_id = await producer.enqueue("after")
    assert await client.hget(f"rrq:job:{job_id}", "function_name") == "after"


async def test_a_cancelled_caller_does_not_shift_the_replies(env: Any) -> None:
    producer, _client = env
    await producer.enqueue("warm")
    first = asyncio.ensure_future(producer.enqueue("fn", job_id="cancelled"))
    await asyncio.sleep(0)
    first.cancel()
    assert await producer.enqueue("fn", job_id="second") == "second"


async def test_the_pure_python_reader_and_packer_serve_the_lane(
    redis_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "_hiredis", None)
    monkeypatch.setattr(wire, "pack_command", wire._pack_python)
    async with Producer({"redis_dsn": redis_dsn}) as producer:
        ids = await asyncio.gather(*(producer.enqueue("fn", {"é": i}) for i in range(50)))
        assert len(set(ids)) == 50
        assert await producer.enqueue_many([{"function_name": "fn"}] * 3)


async def test_select_from_the_dsn(redis_dsn: str, env: Any) -> None:
    _producer, client = env
    async with Producer({"redis_dsn": redis_dsn + "?db=3"}) as producer:
        job_id = await producer.enqueue("fn")
    assert not await client.exists(f"rrq:job:{job_id}")
    await client.execute_command("SELECT", "3")
    assert await client.exists(f"rrq:job:{job_id}")
    await client.flushdb()


async def test_a_server_that_never_answers_the_lane_fails_within_the_timeout() -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    producer = Producer(
        {"redis_dsn": f"redis://127.0.0.1:{port}/0", "redis_connect_timeout_seconds": 0.3}
    )
    try:
        with pytest.raises(ProducerError) as caught:
            await producer.enqueue("fn")
        assert caught.value.code == "redis_unavailable"
        assert "no reply to the Redis handshake" in caught.value.message
    finally:
        await producer.close()
        for writer in held:
            writer.close()
        server.close()


def test_lane_addresses() -> None:
    tcp = lane_address("redis://user:pw@h:7/2")
    assert tcp is not None
    assert tcp.handshake() == [("AUTH", "user", "pw"), ("SELECT", "2")]
    unix = lane_address("redis+unix:///tmp/r.sock?db=0")
    assert unix is not None and (unix.path, unix.handshake()) == ("/tmp/r.sock", [("PING",)])
    assert lane_address("rediss://h:6380/0") is None  # TLS: redis-py serves it
    assert lane_address("redis://h/0?health_check_interval=5") is None


def test_py_reader_parses_split_replies() -> None:
    reader = PyReader()
    data = b"*3\r\n:1\r\n$5\r\n\xc3\xa9t\xc3\xa9\r\n*2\r\n$-1\r\n+OK\r\n-NOSCRIPT gone\r\n"
    replies: list[Any] = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    assert replies[0] == [1, "été", [None, "OK"]]
    assert isinstance(replies[1], ResponseError) and str(replies[1]) == "NOSCRIPT gone"
    assert reader.gets() is False


def test_python_packing_is_resp() -> None:
    packed = wire._pack_python(("EVALSHA", "é", ""))
    assert packed == b"*3\r\n$7\r\nEVALSHA\r\n$2\r\n\xc3\xa9\r\n$0\r\n\r\n"
    if wire._hiredis is not None:
        assert wire._hiredis.pack_command(("EVALSHA", "é", "")) == packed


def test_a_producer_used_from_two_event_loops_reconnects(redis_dsn: str) -> None:
    producer = Producer({"redis_dsn": redis_dsn})
    first = asyncio.run(producer.enqueue("fn"))
    second = asyncio.run(producer.enqueue("fn"))  # the first loop is closed by now
    assert first != second
    asyncio.run(producer.close())


def test_the_lane_runs_on_uvloop(redis_dsn: str) -> None:
    uvloop = pytest.importorskip("uvloop")  # the `fast` extra; its transports are its own

    async def main() -> list[str]:
        async with Producer({"redis_dsn": redis_dsn}) as producer:
            ids = await asyncio.gather(*(producer.enqueue("fn", {"i": i}) for i in range(20)))
            ids += await producer.enqueue_many([{"function_name": "fn"}] * 5)
            return ids

    assert len(set(uvloop.run(main()))) == 25
