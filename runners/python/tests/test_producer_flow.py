"""Flow-control producer options (issue 22) against a real redis-server: the hash fields they
write, the session order ``enqueue-fields-1.lua`` records, and that bad values are refused with
nothing written. ``ERRORS`` is the table of test/producer-flow.test.ts (the same words in every
binding)."""

from __future__ import annotations

from typing import Any

import pytest

from rrqkit import ProducerError

FLOW_FIELDS = ("concurrency_key", "concurrency_limit", "start_rate", "limit_name", "ordering_key")


async def flow_fields(client: Any, job_id: str) -> dict[str, str]:
    fields = await client.hgetall(f"rrq:job:{job_id}")
    return {k: v for k, v in fields.items() if k in FLOW_FIELDS}


async def order(client: Any, okey: str) -> list[tuple[str, float]]:
    return list(await client.zrange(f"rrq:fc:order:{okey}", 0, -1, withscores=True))


async def test_every_field_stored_as_the_contract_says(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue(
        "charge",
        {"a": 1},
        concurrency_key="tenant:1",
        concurrency_limit=3,
        start_rate={"limit": 50, "period_seconds": 1},
        limit="api.v2",
        ordering_key="order-9",
    )
    assert await flow_fields(client, job_id) == {
        "concurrency_key": "tenant:1",
        "concurrency_limit": "3",
        "start_rate": "50/1000",
        "limit_name": "api.v2",
        "ordering_key": "order-9",
    }
    assert await order(client, "order-9") == [(job_id, 1.0)]
    assert await client.get("rrq:fc:seq") == "1"
    assert await client.zscore("rrq:queue:default", job_id) is not None


async def test_options_mapping_and_limit_without_key(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue(
        "f",
        {},
        {
            "limit": "emails",
            "concurrency_limit": 2.0,
            "start_rate": {"limit": 10, "period_seconds": 1.5},
            "ordering_key": "o",
        },
    )
    assert await flow_fields(client, job_id) == {
        "concurrency_limit": "2",
        "start_rate": "10/1500",
        "limit_name": "emails",
        "ordering_key": "o",
    }


@pytest.mark.parametrize(
    ("period", "stored"),
    [(0.0001, "1/1"), (0.0004, "1/1"), (2.0006, "1/2001"), (86400, "1/86400000")],
)
async def test_period_rounded_to_whole_ms(env: Any, period: float, stored: str) -> None:
    producer, client = env
    job_id = await producer.enqueue(
        "f", concurrency_key="k", start_rate={"limit": 1, "period_seconds": period}
    )
    assert (await flow_fields(client, job_id))["start_rate"] == stored


async def test_key_length_counts_code_points(env: Any) -> None:
    producer, client = env
    key = "😀" * 256
    job_id = await producer.enqueue("f", concurrency_key=key, ordering_key=key)
    assert (await flow_fields(client, job_id))["concurrency_key"] == key
    with pytest.raises(ProducerError, match="concurrency_key must be a string of 1 to 256"):
        await producer.enqueue("f", concurrency_key=key + "x")


async def test_no_options_no_fields(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue("f")
    assert await flow_fields(client, job_id) == {}
    assert await client.exists("rrq:fc:seq") == 0


async def test_session_order_across_single_and_bulk(env: Any) -> None:
    producer, client = env
    a = await producer.enqueue("f", ordering_key="s", defer_by_seconds=60)
    b, c = await producer.enqueue_many(
        [
            {"function_name": "f", "options": {"ordering_key": "s"}},
            {"function_name": "f", "options": {"ordering_key": "other"}},
        ]
    )
    d = await producer.enqueue("f", ordering_key="s")
    assert await order(client, "s") == [(a, 1.0), (b, 2.0), (d, 4.0)]
    assert await order(client, "other") == [(c, 3.0)]


async def test_idempotent_hit_and_duplicate_join_no_session(env: Any) -> None:
    producer, client = env
    first = await producer.enqueue("f", unique_key="u", ordering_key="s")
    again = await producer.enqueue("f", {"x": 1}, unique_key="u", ordering_key="t")
    assert again == first
    with pytest.raises(ProducerError) as raised:
        await producer.enqueue("f", {"y": 1}, job_id=first, ordering_key="t")
    assert raised.value.code == "duplicate_job_id"
    assert await order(client, "s") == [(first, 1.0)]
    assert await client.exists("rrq:fc:order:t") == 0


async def test_debounce_keeps_place_or_moves_session(env: Any) -> None:
    producer, client = env
    opts = {"debounce_key": "d", "debounce_seconds": 30}
    job_id = await producer.enqueue_with_debounce("f", {"n": 1}, opts, ordering_key="s")
    await producer.enqueue_with_debounce("f", {"n": 2}, opts, ordering_key="s")
    assert await order(client, "s") == [(job_id, 1.0)]
    await producer.enqueue_with_debounce("f", {"n": 3}, opts, ordering_key="t")
    assert await client.exists("rrq:fc:order:s") == 0
    assert await order(client, "t") == [(job_id, 2.0)]


SESSION_MSG = "ordering_key must be a string of 1 to 256 characters"
KEY_MSG = "concurrency_key must be a string of 1 to 256 characters"
LIMIT_MSG = "concurrency_limit must be an integer from 1 to 100000"
RATE_SHAPE_MSG = "start_rate must be an object with limit and period_seconds"
RATE_LIMIT_MSG = "start_rate.limit must be an integer from 1 to 1000000"
RATE_PERIOD_MSG = "start_rate.period_seconds must be a number > 0 and at most 86400"
NAME_MSG = "limit must be a limit name of 1 to 128 characters from A-Z a-z 0-9 _ . : -"

ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"concurrency_key": ""}, KEY_MSG),
    ({"concurrency_key": "x" * 257}, KEY_MSG),
    ({"concurrency_key": 5}, KEY_MSG),
    ({"ordering_key": ""}, SESSION_MSG),
    ({"ordering_key": ["a"]}, SESSION_MSG),
    ({"concurrency_key": "k", "concurrency_limit": 0}, LIMIT_MSG),
    ({"concurrency_key": "k", "concurrency_limit": 1.5}, LIMIT_MSG),
    ({"concurrency_key": "k", "concurrency_limit": 100001}, LIMIT_MSG),
    ({"concurrency_key": "k", "concurrency_limit": "3"}, LIMIT_MSG),
    ({"concurrency_key": "k", "concurrency_limit": True}, LIMIT_MSG),
    ({"concurrency_limit": 3}, "concurrency_limit needs concurrency_key or limit"),
    (
        {"concurrency_limit": 3, "ordering_key": "o"},
        "concurrency_limit needs concurrency_key or limit",
    ),
    (
        {"start_rate": {"limit": 1, "period_seconds": 1}},
        "start_rate needs concurrency_key or limit",
    ),
    ({"concurrency_key": "k", "start_rate": 5}, RATE_SHAPE_MSG),
    ({"concurrency_key": "k", "start_rate": [1, 1]}, RATE_SHAPE_MSG),
    ({"concurrency_key": "k", "start_rate": {"limit": 1}}, "start_rate.period_seconds is required"),
    ({"concurrency_key": "k", "start_rate": {"period_seconds": 1}}, "start_rate.limit is required"),
    ({"concurrency_key": "k", "start_rate": {"limit": 0, "period_seconds": 1}}, RATE_LIMIT_MSG),
    (
        {"concurrency_key": "k", "start_rate": {"limit": 1000001, "period_seconds": 1}},
        RATE_LIMIT_MSG,
    ),
    ({"concurrency_key": "k", "start_rate": {"limit": 2.5, "period_seconds": 1}}, RATE_LIMIT_MSG),
    ({"concurrency_key": "k", "start_rate": {"limit": 1, "period_seconds": 0}}, RATE_PERIOD_MSG),
    ({"concurrency_key": "k", "start_rate": {"limit": 1, "period_seconds": -1}}, RATE_PERIOD_MSG),
    (
        {"concurrency_key": "k", "start_rate": {"limit": 1, "period_seconds": 86401}},
        RATE_PERIOD_MSG,
    ),
    ({"concurrency_key": "k", "start_rate": {"limit": 1, "period_seconds": "1"}}, RATE_PERIOD_MSG),
    (
        {"concurrency_key": "k", "start_rate": {"limit": 1, "period_seconds": 1e308}},
        RATE_PERIOD_MSG,
    ),
    (
        {"concurrency_key": "k", "start_rate": {"limit": 1, "period_second": 1}},
        "unknown key 'start_rate.period_second'; valid keys are: limit, period_seconds"
        " — did you mean 'period_seconds'?",
    ),
    ({"limit": "a b"}, NAME_MSG),
    ({"limit": ""}, NAME_MSG),
    ({"limit": "x" * 129}, NAME_MSG),
    ({"limit": 7}, NAME_MSG),
    ({"limit": "ok\n"}, NAME_MSG),
    # several bad options: the first in the TS producer's order is named
    ({"ordering_key": "", "concurrency_limit": "3", "concurrency_key": ""}, KEY_MSG),
]


@pytest.mark.parametrize(("options", "message"), ERRORS)
async def test_bad_options_refused_nothing_written(
    env: Any, options: dict[str, Any], message: str
) -> None:
    producer, client = env
    with pytest.raises(ProducerError) as raised:
        await producer.enqueue("f", {}, options)
    assert raised.value.code == "invalid_argument"
    assert raised.value.message == message
    assert await client.dbsize() == 0


async def test_bad_bulk_item_writes_no_item(env: Any) -> None:
    producer, client = env
    with pytest.raises(ProducerError, match="concurrency_limit needs concurrency_key or limit"):
        await producer.enqueue_many(
            [
                {"function_name": "f", "options": {"ordering_key": "s"}},
                {"function_name": "f", "options": {"concurrency_limit": 2}},
            ]
        )
    assert await client.dbsize() == 0


async def test_requires_stored_sorted_and_validated(env: Any) -> None:
    """Routing by capability (issue 23): ``requires`` as the TypeScript producer stores it."""
    producer, client = env
    job_id = await producer.enqueue("train", {}, requires=["z", "gpu", "gpu"])
    assert await client.hget(f"rrq:job:{job_id}", "requires") == '["gpu","z"]'
    plain = await producer.enqueue("train", {}, requires=[])
    assert await client.hget(f"rrq:job:{plain}", "requires") is None
    for bad, words in (
        (["has space"], 'requires: "has space" is no tag'),
        ("gpu", "requires must be an array of tags"),
        ([f"t{i}" for i in range(17)], "at most 16"),
    ):
        with pytest.raises(ProducerError, match=words):
            await producer.enqueue("train", {}, requires=bad)
