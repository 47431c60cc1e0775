"""The producer against a real redis-server (PRODUCER.md §1–§6)."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from rrqkit import Producer, ProducerError
from rrqkit.producer import MAX_PARAMS_BYTES


async def job(client: Any, job_id: str) -> dict[str, str]:
    return dict(await client.hgetall(f"rrq:job:{job_id}"))


RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00$")


async def test_enqueue_writes_the_exact_job(env: Any) -> None:
    producer, client = env
    pubsub = client.pubsub()
    await pubsub.subscribe("rrq:wake:rrq:queue:default")
    await pubsub.get_message(timeout=1)  # subscribe confirmation
    job_id = await producer.enqueue(
        "runner#send_email",
        {"to": "a@example.com", "n": 1.0},
        job_id="job-1",
        enqueue_time="2026-01-01T12:00:00Z",
    )
    assert job_id == "job-1"
    fields = await job(client, job_id)
    assert fields == {
        "id": "job-1",
        "function_name": "runner#send_email",
        "job_params": '{"n":1,"to":"a@example.com"}',
        "enqueue_time": "2026-01-01T12:00:00+00:00",
        "status": "PENDING",
        "current_retries": "0",
        "next_scheduled_run_time": "2026-01-01T12:00:00+00:00",
        "max_retries": "5",
        "job_timeout_seconds": "300",
        "result_ttl_seconds": "86400",
        "queue_name": "rrq:queue:default",
        "result": "null",
    }
    assert await client.ttl("rrq:job:job-1") == -1
    assert await client.zrange("rrq:queue:default", 0, -1, withscores=True) == [
        ("job-1", 1767268800000.0)
    ]
    message = await pubsub.get_message(timeout=2)
    assert message is not None and message["data"] == "1767268800000"
    await pubsub.aclose()


async def test_default_id_and_now(env: Any) -> None:
    producer, client = env
    before = time.time()
    job_id = await producer.enqueue("fn")
    after = time.time()
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", job_id
    )
    fields = await job(client, job_id)
    assert fields["job_params"] == "{}"
    assert RFC3339_RE.match(fields["enqueue_time"])
    assert fields["enqueue_time"] == fields["next_scheduled_run_time"]
    score = await client.zscore("rrq:queue:default", job_id)
    assert before * 1000 - 1 <= score <= after * 1000 + 1


async def test_params_positional_option_and_kwarg_are_equal(env: Any) -> None:
    producer, client = env
    params = {"b": [1, {"y": 2, "x": 1}], "a": "é"}
    ids = [
        await producer.enqueue("fn", params),
        await producer.enqueue("fn", None, {"params": params}),
        await producer.enqueue("fn", {"a": "é", "b": [1, {"x": 1, "y": 2}]}),
    ]
    stored = {(await job(client, i))["job_params"] for i in ids}
    assert stored == {'{"a":"é","b":[1,{"x":1,"y":2}]}'}
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("fn", {"a": 1}, {"params": {"b": 2}})
    assert caught.value.code == "invalid_argument"


async def test_every_option(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue(
        "fn",
        {"k": 1},
        {
            "queue_name": "emails",
            "job_id": "custom",
            "max_retries": 0,
            "job_timeout_seconds": 12,
            "result_ttl_seconds": -1,
            "trace_context": {"traceparent": "00-abc-def-01", "b": "2", "a": "1"},
            "enqueue_time": datetime(2026, 1, 1, 12, 0, 0, 250000),
            "defer_by_seconds": 1.0001,
        },
    )
    fields = await job(client, job_id)
    assert fields["queue_name"] == "rrq:queue:emails"
    assert fields["max_retries"] == "0"
    assert fields["job_timeout_seconds"] == "12"
    assert fields["result_ttl_seconds"] == "-1"
    assert fields["trace_context"] == '{"a":"1","b":"2","traceparent":"00-abc-def-01"}'
    assert fields["enqueue_time"] == "2026-01-01T12:00:00.250+00:00"
    assert fields["next_scheduled_run_time"] == "2026-01-01T12:00:01.251+00:00"
    assert await client.zscore("rrq:queue:emails", "custom") == 1767268801251
    # Already-prefixed queue names are kept as they are.
    other = await producer.enqueue("fn", queue_name="rrq:queue:emails")
    assert (await job(client, other))["queue_name"] == "rrq:queue:emails"


async def test_defer_until(env: Any) -> None:
    producer, client = env
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue(
            "fn", defer_until="2026-03-01T10:00:00.123+02:00", defer_by_seconds=100
        )
    assert caught.value.code == "conflicting_options"
    assert await client.dbsize() == 0
    job_id = await producer.enqueue(
        "fn",
        defer_until="2026-03-01T10:00:00.123+02:00",
        enqueue_time="2026-01-01T00:00:00Z",
    )
    fields = await job(client, job_id)
    assert fields["next_scheduled_run_time"] == "2026-03-01T08:00:00.123+00:00"
    assert await client.zscore("rrq:queue:default", job_id) == 1772352000123
    aware = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    job_id = await producer.enqueue("fn", defer_until=aware)
    assert (await job(client, job_id))["next_scheduled_run_time"] == "2026-03-01T08:00:00+00:00"


async def test_trace_context_empty_is_not_written(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue("fn", trace_context={})
    assert "trace_context" not in await job(client, job_id)


async def test_correlation_mappings(redis_dsn: str) -> None:
    mappings = {
        "tenant": "params.tenant.id",
        "order": "order_id",
        "flag": "flag",
        "tp": "params.tp",
    }
    for i in range(20):
        mappings[f"extra{i:02d}"] = "params.order_id"
    producer = Producer({"redis_dsn": redis_dsn, "correlation_mappings": mappings})
    client = aioredis.from_url(redis_dsn, decode_responses=True)
    try:
        job_id = await producer.enqueue(
            "fn",
            {"tenant": {"id": "acme"}, "order_id": 42, "flag": False, "tp": "p"},
            trace_context={"tp": "t"},
        )
        context = json.loads((await job(client, job_id))["correlation_context"])
        assert len(context) == 16
        assert context["tenant"] == "acme" and context["order"] == "42"
        assert context["flag"] == "false" and context["tp"] == "t"
        none = await producer.enqueue("fn", {"unrelated": 1})
        fields = await job(client, none)
        assert "correlation_context" not in fields
    finally:
        await producer.close()
        await client.aclose()


async def test_idempotency(env: Any) -> None:
    producer, client = env
    first = await producer.enqueue("fn", {"n": 1}, unique_key="order-1")
    again = await producer.enqueue("fn", {"n": 2}, unique_key="order-1", job_id="other")
    assert again == first
    assert not await client.exists("rrq:job:other")
    assert await client.zcard("rrq:queue:default") == 1
    assert await client.get("rrq:idempotency:order-1") == first
    assert 21590 < await client.ttl("rrq:idempotency:order-1") <= 21600
    # A stale key (its job hash is gone) is replaced.
    await client.delete(f"rrq:job:{first}")
    fresh = await producer.enqueue("fn", unique_key="order-1", unique_ttl_seconds=50)
    assert fresh != first
    assert await client.get("rrq:idempotency:order-1") == fresh
    assert 45 < await client.ttl("rrq:idempotency:order-1") <= 50
    # The TTL is raised to cover the deferral.
    await producer.enqueue("fn", unique_key="later", unique_ttl_seconds=10, defer_by_seconds=99.5)
    assert 95 < await client.ttl("rrq:idempotency:later") <= 100
    # The prefix is always added, even to an already-prefixed key.
    await producer.enqueue("fn", unique_key="rrq:idempotency:x")
    assert await client.exists("rrq:idempotency:rrq:idempotency:x")


async def test_idempotency_ttl_from_config(redis_dsn: str) -> None:
    producer = Producer({"redis_dsn": redis_dsn, "idempotency_ttl_seconds": 77})
    client = aioredis.from_url(redis_dsn, decode_responses=True)
    try:
        await producer.enqueue("fn", unique_key="cfg")
        assert 70 < await client.ttl("rrq:idempotency:cfg") <= 77
    finally:
        await producer.close()
        await client.aclose()


async def test_duplicate_job_id_writes_nothing(env: Any) -> None:
    producer, client = env
    await producer.enqueue("fn", {"v": 1}, job_id="dup")
    before = await job(client, "dup")
    for call in (
        producer.enqueue("fn", {"v": 2}, job_id="dup", queue_name="q2"),
        producer.enqueue("fn", {"v": 2}, job_id="dup", unique_key="u"),
    ):
        with pytest.raises(ProducerError) as caught:
            await call
        assert caught.value.code == "duplicate_job_id"
        assert caught.value.message == "job_id already exists"
    assert await job(client, "dup") == before
    assert not await client.exists("rrq:queue:q2", "rrq:idempotency:u")
    # A rate-limit key taken by the failed call is released.
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue_with_rate_limit(
            "fn", job_id="dup", rate_limit_key="r", rate_limit_seconds=5
        )
    assert caught.value.code == "duplicate_job_id"
    assert not await client.exists("rrq:rate_limit:r")
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue_with_debounce(
            "fn", job_id="dup", debounce_key="d", debounce_seconds=5
        )
    assert caught.value.code == "duplicate_job_id"


async def test_rate_limit(env: Any) -> None:
    producer, client = env
    first = await producer.enqueue_with_rate_limit(
        "fn", {"i": 1}, rate_limit_key="user:1", rate_limit_seconds=1.2
    )
    assert first is not None
    assert await client.get("rrq:rate_limit:user:1") == first
    assert await client.ttl("rrq:rate_limit:user:1") == 2
    assert (
        await producer.enqueue_with_rate_limit(
            "fn", rate_limit_key="user:1", rate_limit_seconds=1.2
        )
        is None
    )
    assert await client.zcard("rrq:queue:default") == 1
    # Plain enqueue with rate-limit options: a dropped call is an error.
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("fn", rate_limit_key="user:1", rate_limit_seconds=1.2)
    assert caught.value.code == "rate_limited"
    other = await producer.enqueue(
        "fn", rate_limit_key="rrq:rate_limit:user:2", rate_limit_seconds=3
    )
    assert await client.get("rrq:rate_limit:user:2") == other


async def test_debounce(env: Any) -> None:
    producer, client = env
    first = await producer.enqueue_with_debounce(
        "fn",
        {"v": 1},
        debounce_key="doc:1",
        debounce_seconds=30,
        enqueue_time="2026-01-01T12:00:00Z",
        trace_context={"traceparent": "tp"},
        defer_by_seconds=999,  # ignored: a debounced job runs `debounce_seconds` after the call
    )
    fields = await job(client, first)
    assert fields["next_scheduled_run_time"] == "2026-01-01T12:00:30+00:00"
    assert await client.zscore("rrq:queue:default", first) == 1767268830000
    assert await client.ttl("rrq:debounce:doc:1") == 30
    second = await producer.enqueue_with_debounce(
        "fn2",
        {"v": 2},
        debounce_key="doc:1",
        debounce_seconds=5,
        enqueue_time="2026-01-01T12:00:10Z",
        max_retries=1,
        job_timeout_seconds=9,
        result_ttl_seconds=8,
    )
    assert second == first
    updated = await job(client, first)
    assert updated["function_name"] == "fn2"
    assert updated["job_params"] == '{"v":2}'
    assert updated["enqueue_time"] == "2026-01-01T12:00:00+00:00"  # never changes
    assert updated["next_scheduled_run_time"] == "2026-01-01T12:00:15+00:00"
    assert (
        updated["max_retries"],
        updated["job_timeout_seconds"],
        updated["result_ttl_seconds"],
    ) == (
        "1",
        "9",
        "8",
    )
    assert updated["trace_context"] == '{"traceparent":"tp"}'  # kept: no new trace context
    assert await client.zscore("rrq:queue:default", first) == 1767268815000
    assert await client.ttl("rrq:debounce:doc:1") == 5
    # Queue change: the job moves (deliberate difference from RRQ, which leaves a stale member).
    third = await producer.enqueue_with_debounce(
        "fn", debounce_key="doc:1", debounce_seconds=5, queue_name="other"
    )
    assert third == first
    assert await client.zscore("rrq:queue:default", first) is None
    assert await client.zscore("rrq:queue:other", first) is not None
    assert (await job(client, first))["queue_name"] == "rrq:queue:other"
    # Once the job left PENDING a new one is created.
    await client.hset(f"rrq:job:{first}", "status", "ACTIVE")
    fourth = await producer.enqueue_with_debounce("fn", debounce_key="doc:1", debounce_seconds=5)
    assert fourth != first
    assert await client.get("rrq:debounce:doc:1") == fourth
    # enqueue() with debounce options behaves the same.
    assert await producer.enqueue("fn", debounce_key="doc:1", debounce_seconds=5) == fourth


async def test_debounce_correlation_context_is_replaced_or_deleted(redis_dsn: str) -> None:
    producer = Producer({"redis_dsn": redis_dsn, "correlation_mappings": {"tenant": "tenant"}})
    client = aioredis.from_url(redis_dsn, decode_responses=True)
    try:
        job_id = await producer.enqueue_with_debounce(
            "fn", {"tenant": "a"}, debounce_key="k", debounce_seconds=9
        )
        assert (await job(client, job_id))["correlation_context"] == '{"tenant":"a"}'
        await producer.enqueue_with_debounce("fn", {}, debounce_key="k", debounce_seconds=9)
        assert "correlation_context" not in await job(client, job_id)
    finally:
        await producer.close()
        await client.aclose()


async def test_enqueue_many(env: Any) -> None:
    producer, client = env
    ids = await producer.enqueue_many(
        [
            {"function_name": "a", "params": {"i": 1}},
            {
                "function_name": "b",
                "params": {"i": 2},
                "options": {"job_id": "fixed", "queue_name": "q"},
            },
            {"function_name": "c", "options": {"unique_key": "u1"}},
            {"function_name": "d", "options": {"unique_key": "u1"}},
        ]
    )
    assert ids[1] == "fixed" and ids[2] == ids[3]
    assert (await job(client, ids[0]))["function_name"] == "a"
    assert (await job(client, "fixed"))["queue_name"] == "rrq:queue:q"
    assert await producer.enqueue_many([]) == []


@pytest.mark.parametrize(
    "items",
    [
        [{"function_name": "ok"}, {"function_name": " "}],
        [{"function_name": "ok"}, {"function_name": "x", "params": {"v": math.nan}}],
        [{"function_name": "ok"}, {"function_name": "x", "options": {"rate_limit_key": "k"}}],
        [
            {"function_name": "ok", "options": {"job_id": "same"}},
            {"function_name": "x", "options": {"job_id": "same"}},
        ],
        [{"function_name": "ok"}, {"function_name": "x", "bogus": 1}],
    ],
)
async def test_enqueue_many_validates_everything_first(
    env: Any, items: list[dict[str, Any]]
) -> None:
    producer, client = env
    with pytest.raises(ProducerError):
        await producer.enqueue_many(items)
    assert await client.dbsize() == 0


VALIDATION_CASES: list[tuple[str, Any, dict[str, Any], str, str | None]] = [
    ("", None, {}, "invalid_argument", "function_name cannot be empty"),
    ("  ", None, {}, "invalid_argument", "function_name cannot be empty"),
    (None, None, {}, "invalid_argument", None),
    ("fn", [1, 2], {}, "invalid_params", "params must be a JSON object"),
    ("fn", "text", {}, "invalid_params", "params must be a JSON object"),
    (
        "fn",
        {"a": {"b": [1, math.nan]}},
        {},
        "invalid_params",
        "params contains a non-finite number at params.a.b[1]",
    ),
    (
        "fn",
        {"a": math.inf},
        {},
        "invalid_params",
        "params contains a non-finite number at params.a",
    ),
    ("fn", {"a": -math.inf}, {}, "invalid_params", None),
    ("fn", {"a": object()}, {}, "invalid_params", None),
    ("fn", {"a": {1: "x"}}, {}, "invalid_params", None),
    ("fn", None, {"queue_name": " "}, "invalid_argument", "queue_name cannot be empty"),
    ("fn", None, {"job_id": ""}, "invalid_argument", "job_id cannot be empty"),
    ("fn", None, {"unique_key": " "}, "invalid_argument", "unique_key cannot be empty"),
    (
        "fn",
        None,
        {"rate_limit_key": "", "rate_limit_seconds": 1},
        "invalid_argument",
        "rate_limit_key cannot be empty",
    ),
    (
        "fn",
        None,
        {"debounce_key": " ", "debounce_seconds": 1},
        "invalid_argument",
        "debounce_key cannot be empty",
    ),
    ("fn", None, {"queue_name": 5}, "invalid_argument", None),
    (
        "fn",
        None,
        {"max_retries": -1},
        "invalid_argument",
        "max_retries must be a non-negative integer",
    ),
    (
        "fn",
        None,
        {"max_retries": 1.5},
        "invalid_argument",
        "max_retries must be a non-negative integer",
    ),
    ("fn", None, {"max_retries": True}, "invalid_argument", None),
    (
        "fn",
        None,
        {"job_timeout_seconds": 0},
        "invalid_argument",
        "job_timeout_seconds must be a positive integer",
    ),
    ("fn", None, {"job_timeout_seconds": "10"}, "invalid_argument", None),
    (
        "fn",
        None,
        {"result_ttl_seconds": 1.5},
        "invalid_argument",
        "result_ttl_seconds must be an integer",
    ),
    (
        "fn",
        None,
        {"unique_ttl_seconds": 0},
        "invalid_argument",
        "unique_ttl_seconds must be a positive integer",
    ),
    (
        "fn",
        None,
        {"defer_by_seconds": -1},
        "invalid_argument",
        "defer_by_seconds must be a finite number >= 0",
    ),
    ("fn", None, {"defer_by_seconds": math.inf}, "invalid_argument", None),
    ("fn", None, {"defer_by_seconds": math.nan}, "invalid_argument", None),
    (
        "fn",
        None,
        {"defer_until": "tomorrow"},
        "invalid_argument",
        "defer_until must be an RFC 3339 timestamp",
    ),
    ("fn", None, {"defer_until": 12345}, "invalid_argument", None),
    (
        "fn",
        None,
        {"enqueue_time": "2026-13-01T00:00:00Z"},
        "invalid_argument",
        "enqueue_time must be an RFC 3339 timestamp",
    ),
    (
        "fn",
        None,
        {"trace_context": {"a": 1}},
        "invalid_argument",
        "trace_context must be a map of string to string",
    ),
    ("fn", None, {"trace_context": "x"}, "invalid_argument", None),
    (
        "fn",
        None,
        {"rate_limit_key": "k", "rate_limit_seconds": 0},
        "invalid_argument",
        "rate_limit_seconds must be a finite number > 0",
    ),
    (
        "fn",
        None,
        {"debounce_key": "k", "debounce_seconds": -2},
        "invalid_argument",
        "debounce_seconds must be a finite number > 0",
    ),
    (
        "fn",
        None,
        {"rate_limit_key": "k"},
        "invalid_argument",
        "rate_limit_seconds is required with rate_limit_key",
    ),
    (
        "fn",
        None,
        {"rate_limit_seconds": 3},
        "invalid_argument",
        "rate_limit_key is required with rate_limit_seconds",
    ),
    (
        "fn",
        None,
        {"debounce_key": "k"},
        "invalid_argument",
        "debounce_seconds is required with debounce_key",
    ),
    (
        "fn",
        None,
        {"debounce_seconds": 3},
        "invalid_argument",
        "debounce_key is required with debounce_seconds",
    ),
    (
        "fn",
        None,
        {
            "rate_limit_key": "k",
            "rate_limit_seconds": 1,
            "debounce_key": "d",
            "debounce_seconds": 1,
        },
        "conflicting_options",
        "rate_limit and debounce options are mutually exclusive",
    ),
    ("fn", None, {"rate_limit_key": "k", "debounce_seconds": 1}, "conflicting_options", None),
    ("fn", None, {"bogus": 1}, "invalid_argument", "unknown option 'bogus'"),
    ("fn", None, {"priority": 1}, "invalid_argument", "unknown option 'priority'"),
]


@pytest.mark.parametrize(
    ("function_name", "params", "options", "code", "message"),
    VALIDATION_CASES,
    ids=[f"{c[3]}-{i}" for i, c in enumerate(VALIDATION_CASES)],
)
async def test_validation_errors_write_nothing(
    env: Any,
    function_name: Any,
    params: Any,
    options: dict[str, Any],
    code: str,
    message: str | None,
) -> None:
    producer, client = env
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue(function_name, params, options)
    assert caught.value.code == code
    if message is not None:
        assert caught.value.message == message
    assert isinstance(caught.value, ValueError)
    assert await client.dbsize() == 0


async def test_special_call_validation(env: Any) -> None:
    producer, client = env
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue_with_rate_limit("fn", {})
    assert (caught.value.code, caught.value.message) == (
        "invalid_argument",
        "rate_limit_key is required",
    )
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue_with_debounce(
            "fn", {}, debounce_key="k", debounce_seconds=1, rate_limit_key="r"
        )
    assert caught.value.code == "conflicting_options"
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue_with_debounce("fn", {})
    assert (caught.value.code, caught.value.message) == (
        "invalid_argument",
        "debounce_key is required",
    )
    assert await client.dbsize() == 0


async def test_payload_too_large(env: Any) -> None:
    producer, client = env
    overhead = len('{"d":""}')
    ok = await producer.enqueue("fn", {"d": "x" * (MAX_PARAMS_BYTES - overhead)})
    assert len((await job(client, ok))["job_params"]) == MAX_PARAMS_BYTES
    await client.flushall()
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("fn", {"d": "x" * (MAX_PARAMS_BYTES - overhead + 1)})
    assert caught.value.code == "payload_too_large"
    assert caught.value.message == (
        f"params are {MAX_PARAMS_BYTES + 1} bytes when encoded; the limit is 16711680"
    )
    assert await client.dbsize() == 0


async def test_get_job_status(env: Any) -> None:
    producer, client = env
    assert await producer.get_job_status("nope") is None
    job_id = await producer.enqueue("fn")
    status = await producer.get_job_status(job_id)
    assert status is not None and status.to_dict() == {
        "status": "PENDING",
        "result": None,
        "last_error": None,
    }
    for raw, expected in [
        ("null", None),
        ("", None),
        ("NULL", None),
        ('{"a":[1]}', {"a": [1]}),
        ("7", 7),
    ]:
        await client.hset(f"rrq:job:{job_id}", mapping={"status": "COMPLETED", "result": raw})
        status = await producer.get_job_status(job_id)
        assert status is not None and status.result == expected
    await client.hdel(f"rrq:job:{job_id}", "result")
    await client.hset(f"rrq:job:{job_id}", mapping={"status": "weird", "last_error": "boom: x"})
    status = await producer.get_job_status(job_id)
    assert status is not None
    assert (status.status, status.result, status.last_error) == ("UNKNOWN", None, "boom: x")
    for value in ("ACTIVE", "FAILED", "RETRYING", "CANCELLED"):
        await client.hset(f"rrq:job:{job_id}", "status", value)
        status = await producer.get_job_status(job_id)
        assert status is not None and status.status == value


async def _finish_later(
    client: Any, job_id: str, status: str, delay: float, result: str = "null"
) -> None:
    await asyncio.sleep(delay)
    await client.hset(
        f"rrq:job:{job_id}", mapping={"status": status, "result": result, "last_error": "e"}
    )
    event = "completed" if status == "COMPLETED" else "failed"
    await client.xadd(
        f"rrq:events:job:{job_id}", {"event": event, "job_id": job_id, "status": status}
    )


async def test_wait_for_completion_is_woken_by_the_event_stream(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue("fn")
    writer = asyncio.create_task(_finish_later(client, job_id, "COMPLETED", 0.3, '{"done":true}'))
    started = time.monotonic()
    status = await producer.wait_for_completion(
        job_id, timeout_seconds=10, block_interval_seconds=5
    )
    elapsed = time.monotonic() - started
    await writer
    assert status is not None and status.status == "COMPLETED" and status.result == {"done": True}
    assert 0.25 < elapsed < 2.0  # woken by XADD, not by the 5 s block interval


@pytest.mark.parametrize("final", ["FAILED", "CANCELLED"])
async def test_wait_for_completion_other_final_states(env: Any, final: str) -> None:
    producer, client = env
    job_id = await producer.enqueue("fn")
    if final == "CANCELLED":
        # The orchestrator's cancel writes no event: polling by block interval finds it.
        async def cancel() -> None:
            await asyncio.sleep(0.2)
            await client.hset(f"rrq:job:{job_id}", "status", "CANCELLED")

        task = asyncio.create_task(cancel())
    else:
        task = asyncio.create_task(_finish_later(client, job_id, final, 0.2))
    status = await producer.wait_for_completion(
        job_id, timeout_seconds=5, block_interval_seconds=0.1
    )
    await task
    assert status is not None and status.status == final


async def test_wait_for_completion_times_out(env: Any) -> None:
    producer, _client = env
    job_id = await producer.enqueue("fn")
    started = time.monotonic()
    assert (
        await producer.wait_for_completion(job_id, timeout_seconds=0.4, block_interval_seconds=0.1)
        is None
    )
    assert 0.35 < time.monotonic() - started < 1.5
    assert await producer.wait_for_completion("never-existed", timeout_seconds=0.2) is None
    with pytest.raises(ProducerError):
        await producer.wait_for_completion(job_id, timeout_seconds=0)


async def test_already_finished_job_returns_at_once(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue("fn")
    await client.hset(f"rrq:job:{job_id}", "status", "COMPLETED")
    started = time.monotonic()
    status = await producer.wait_for_completion(job_id)
    assert status is not None and time.monotonic() - started < 0.5


async def test_redis_errors_hide_the_password() -> None:
    producer = Producer({"redis_dsn": "redis://:s3cret-pw@127.0.0.1:1/0"})
    try:
        with pytest.raises(ProducerError) as caught:
            await producer.enqueue("fn")
        assert caught.value.code == "redis_unavailable"
        assert "cannot connect to Redis at redis://***@127.0.0.1:1/0" in caught.value.message
        assert "s3cret-pw" not in caught.value.message
    finally:
        await producer.close()


async def test_a_server_that_never_answers_fails_within_the_connect_timeout() -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept and never answer

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    producer = Producer(
        {"redis_dsn": f"redis://127.0.0.1:{port}/0", "redis_connect_timeout_seconds": 0.5}
    )
    started = time.monotonic()
    try:
        with pytest.raises(ProducerError) as caught:
            await producer.get_job_status("x")
        assert caught.value.code == "redis_unavailable"
        assert time.monotonic() - started < 20  # does not hang
    finally:
        await producer.close()
        for writer in held:
            writer.close()
        server.close()


async def test_malformed_dsn_is_refused_with_the_fix() -> None:
    with pytest.raises(ProducerError) as caught:
        Producer({"redis_dsn": "localhost:6391"})
    assert caught.value.code == "invalid_config"
    assert 'redis_dsn "localhost:6391" has no scheme' in caught.value.message
    assert "redis://localhost:6391/0" in caught.value.message
    with pytest.raises(ProducerError) as caught:
        Producer({"redis_dsn": "redis://:pw@h:1/zero"})
    assert "database 'zero'" in caught.value.message and "pw@" not in caught.value.message
    with pytest.raises(ProducerError) as caught:
        Producer({"redis_connect_timeout_seconds": 0})
    assert caught.value.code == "invalid_config"


@pytest.mark.parametrize(
    "params",
    [
        {"at": datetime(2026, 1, 1, tzinfo=UTC)},
        {"b": b"bytes"},
        {"s": {1, 2}},
        {"n": math.nan},
        {"deep": [{"x": object()}]},
    ],
    ids=["datetime", "bytes", "set", "nan", "object"],
)
async def test_params_must_be_json_values(env: Any, params: dict[str, Any]) -> None:
    producer, client = env
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("fn", params)
    assert caught.value.code == "invalid_params"
    assert await client.dbsize() == 0


async def test_invalid_config_in_code() -> None:
    for config in (
        {"redis_dsn": "redis://x", "bogus": 1},
        {"max_retries": -1},
        {"queue_name": ""},
        {"correlation_mappings": {"a": 1}},
    ):
        with pytest.raises(ProducerError) as caught:
            Producer(config)
        assert caught.value.code == "invalid_config"
    producer = Producer({"queue_name": "bare"})
    assert producer.config.queue_name == "rrq:queue:bare"
    assert producer.config.redis_dsn == "redis://localhost:6379/0"


async def test_context_manager(redis_dsn: str) -> None:
    async with Producer({"redis_dsn": redis_dsn}) as producer:
        assert await producer.enqueue("fn")


async def test_keyword_call_style(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue(function_name="fn", params={"a": 1}, queue_name="kw")
    fields = await job(client, job_id)
    assert (fields["job_params"], fields["queue_name"]) == ('{"a":1}', "rrq:queue:kw")
    job_id = await producer.enqueue("fn", options={"params": {"b": 2}, "max_retries": 1})
    fields = await job(client, job_id)
    assert (fields["job_params"], fields["max_retries"]) == ('{"b":2}', "1")
