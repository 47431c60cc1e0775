from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import FrameClient, RunnerProcess

if TYPE_CHECKING:
    from rrqkit import Producer

TRANSPORTS = ("stdio", "unix", "tcp")
ENCODINGS = ("json", "msgpack")
COMBOS = [(t, e) for t in TRANSPORTS for e in ENCODINGS]


class RunnerPool:
    """One shared conformance runner per transport × encoding, started on first use."""

    def __init__(self) -> None:
        self._runners: dict[tuple[str, str], RunnerProcess] = {}

    def get(self, transport: str, encoding: str) -> RunnerProcess:
        key = (transport, encoding)
        runner = self._runners.get(key)
        if runner is None or not runner.alive():
            runner = RunnerProcess(transport, encoding)  # type: ignore[arg-type]
            self._runners[key] = runner
        return runner

    def close(self) -> None:
        for runner in self._runners.values():
            runner.stop()


@pytest.fixture(scope="session")
def runner_pool() -> Iterator[RunnerPool]:
    pool = RunnerPool()
    yield pool
    pool.close()


@pytest.fixture(params=COMBOS, ids=[f"{t}-{e}" for t, e in COMBOS])
def combo(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def shared_runner(runner_pool: RunnerPool, combo: tuple[str, str]) -> RunnerProcess:
    return runner_pool.get(*combo)


@pytest.fixture
def client(shared_runner: RunnerProcess) -> Iterator[FrameClient]:
    """A connection to the shared runner (for stdio: its single connection)."""
    conn = shared_runner.connect()
    yield conn
    if shared_runner.transport != "stdio":
        conn.close()


# ------------------------------------------------------------------------------------------
# A private redis-server for producer tests


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        if os.environ.get("RRQKIT_SKIP_REDIS_TESTS") == "1":
            pytest.skip("redis-server is not installed (RRQKIT_SKIP_REDIS_TESTS=1)")
        raise RuntimeError(
            "redis-server is not on PATH; install it or set RRQKIT_SKIP_REDIS_TESTS=1"
        )
    workdir = tempfile.mkdtemp(prefix="rrqk-redis-")
    sock = os.path.join(workdir, "redis.sock")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            sock,
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.02)
    try:
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_dsn(redis_server: str) -> str:
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.script_flush()  # every test also exercises loading the Lua scripts
    client.close()
    return redis_server


@pytest.fixture
async def env(redis_dsn: str) -> AsyncIterator[tuple[Producer, Any]]:
    """A producer and a ``decode_responses`` client on the flushed private Redis."""
    import redis.asyncio as aioredis

    from rrqkit import Producer

    producer = Producer({"redis_dsn": redis_dsn})
    client = aioredis.from_url(redis_dsn, decode_responses=True)
    yield producer, client
    await producer.close()
    await client.aclose()
