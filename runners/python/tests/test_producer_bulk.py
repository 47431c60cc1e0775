"""enqueue_many under memory pressure (issue 19, item 4): with Redis at maxmemory and
noeviction, a script call writes all of its jobs or none, and the error says OOM and exactly
which ids were written. Before, a pipelined batch wrote some jobs and raised without saying
which."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rrqkit import BulkEnqueueError, Producer
from rrqkit.producer import BULK_CHUNK_SIZE


@pytest.fixture
async def env(env: tuple[Producer, Any]) -> AsyncIterator[tuple[Producer, Any]]:
    """conftest's producer and client, with Redis refusing writes over maxmemory."""
    client = env[1]
    await client.config_set("maxmemory-policy", "noeviction")
    try:
        yield env
    finally:
        await client.config_set("maxmemory", "0")


async def limit_memory(client: Any, headroom: int) -> None:
    """maxmemory at ``headroom`` bytes above what Redis uses now (negative: already over)."""
    used = int((await client.info("memory"))["used_memory"])
    await client.config_set("maxmemory", str(max(1, used + headroom)))


def items(count: int, prefix: str, size: int) -> list[dict[str, Any]]:
    return [
        {
            "function_name": "work",
            "params": {"secret": "x" * size},
            "options": {"job_id": f"{prefix}-{i}"},
        }
        for i in range(count)
    ]


async def existing(client: Any, ids: list[str]) -> list[str]:
    return [i for i in ids if await client.exists(f"rrq:job:{i}")]


async def test_batch_meeting_oom_part_way_writes_all_or_nothing(env: Any) -> None:
    producer, client = env
    batch = items(100, "mid", 4000)
    ids = [b["options"]["job_id"] for b in batch]
    await limit_memory(client, 100_000)  # room for about 20 of the 100 jobs
    try:
        result: Any = await producer.enqueue_many(batch)
    except BulkEnqueueError as exc:
        result = exc
    await client.config_set("maxmemory", "0")
    written = await existing(client, ids)
    if isinstance(result, BulkEnqueueError):
        assert "out of memory" in result.message
        assert result.written_ids == [] and written == []
    else:
        assert result == ids and written == ids


async def test_over_maxmemory_at_the_start_writes_nothing_and_says_oom(env: Any) -> None:
    producer, client = env
    await client.set("filler", "f" * 200_000)
    await limit_memory(client, -50_000)
    with pytest.raises(BulkEnqueueError) as info:
        await producer.enqueue_many(items(100, "over", 100))
    await client.config_set("maxmemory", "0")
    assert info.value.code == "redis_error"
    assert re.match(r"^Redis is out of memory .*none of the 100 jobs", info.value.message)
    assert info.value.written_ids == []
    assert "x" * 50 not in str(info.value)  # no job params in the error (issue 19 item 5)
    assert await client.dbsize() == 1  # the filler only


async def test_chunked_batch_reports_exactly_the_chunks_written(env: Any) -> None:
    producer, client = env
    batch = items(BULK_CHUNK_SIZE * 2 + 10, "chunk", 1000)
    ids = [b["options"]["job_id"] for b in batch]
    # Redis runs out of memory once the first chunk is written (set right after its call,
    # so the test does not depend on how much memory a request takes)
    real_eval = producer._eval
    calls = 0

    async def eval_then_fill(name: str, keys: list[str], args: list[str]) -> Any:
        nonlocal calls
        reply = await real_eval(name, keys, args)
        calls += 1
        if calls == 1:
            await limit_memory(client, -1)
        return reply

    producer._eval = eval_then_fill  # type: ignore[method-assign]
    with pytest.raises(BulkEnqueueError) as info:
        await producer.enqueue_many(batch)
    await client.config_set("maxmemory", "0")
    assert "out of memory" in info.value.message
    assert info.value.written_ids == ids[:BULK_CHUNK_SIZE]
    assert await existing(client, ids) == ids[:BULK_CHUNK_SIZE]


async def test_an_existing_job_id_leaves_the_whole_batch_unwritten(env: Any) -> None:
    producer, client = env
    await producer.enqueue("work", {}, job_id="taken")
    with pytest.raises(BulkEnqueueError) as info:
        await producer.enqueue_many(
            [
                {"function_name": "a", "options": {"job_id": "fresh-1"}},
                {"function_name": "b", "options": {"job_id": "taken"}},
            ]
        )
    assert info.value.code == "duplicate_job_id" and "taken" in info.value.message
    assert await existing(client, ["fresh-1"]) == []
    assert await client.zcard("rrq:queue:default") == 1
