"""Live jobs in the Python producer (issue 23): progress in ``get_job_status`` and ``tail``
over an attempt's output stream, against a real redis-server (the fields and entries written
as the orchestrator writes them: README "Live jobs")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from rrqkit import JobProgress, Producer


@pytest.fixture
async def env(redis_dsn: str) -> Any:
    producer = Producer({"redis_dsn": redis_dsn})
    client = aioredis.from_url(redis_dsn, decode_responses=True)
    yield producer, client
    await producer.close()
    await client.aclose()


async def test_status_carries_progress_only_when_reported(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue("train", {})
    status = await producer.get_job_status(job_id)
    assert status is not None and status.progress is None
    assert "progress" not in status.to_dict()
    await client.hset(
        f"rrq:job:{job_id}",
        mapping={
            "progress": "0.5",
            "progress_message": "halfway",
            "progress_detail": '{"epoch":3}',
            "progress_at": "2026-01-01T00:00:00.000Z",
        },
    )
    status = await producer.get_job_status(job_id)
    assert status is not None
    assert status.progress == JobProgress(0.5, "halfway", {"epoch": 3}, "2026-01-01T00:00:00.000Z")
    assert status.to_dict()["progress"]["message"] == "halfway"


async def test_tail_follows_until_the_closed_marker(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue("train", {})
    await client.hset(f"rrq:job:{job_id}", mapping={"runs": "1", "status": "ACTIVE"})
    stream = f"rrq:output:{job_id}:1"
    await client.xadd(stream, {"k": "log", "d": "a\n"})

    async def later() -> None:
        await asyncio.sleep(0.2)
        await client.xadd(stream, {"k": "err", "d": "b"})
        await client.xadd(stream, {"k": "truncated", "dropped": "5"})
        await client.xadd(stream, {"k": "closed", "status": "completed"})

    writer = asyncio.create_task(later())
    seen = [e async for e in producer.tail(job_id, block_ms=100)]
    await writer
    assert [{k: v for k, v in e.items() if k != "id"} for e in seen] == [
        {"kind": "log", "data": "a\n"},
        {"kind": "err", "data": "b"},
        {"kind": "truncated", "dropped": 5},
        {"kind": "closed", "status": "completed"},
    ]


async def test_tail_ends_when_the_job_is_final_without_a_marker(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue("train", {})
    await client.hset(f"rrq:job:{job_id}", mapping={"runs": "1", "status": "FAILED"})
    await client.xadd(f"rrq:output:{job_id}:1", {"k": "out", "d": "x"})
    seen = [e async for e in producer.tail(job_id, block_ms=50)]
    assert [e["kind"] for e in seen] == ["out"]
