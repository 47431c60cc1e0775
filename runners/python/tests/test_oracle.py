"""Byte-compatibility oracle: the same calls through RRQ 0.11.1's released RRQClient (Rust FFI
producer) and through rrqkit must leave the same Redis state."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as aioredis

from rrqkit import Producer
from rrqkit.errors import ProducerError

rrq_client = pytest.importorskip("rrq.client")

TRACE = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "vendor=value",
    "tp": "from-trace",
}
MAPPINGS = {
    "tenant": "params.tenant.id",
    "order": "order_id",
    "flag": "params.flag",
    "ratio": "params.ratio",
    "count": "params.count",
    "missing": "params.nope",
    "tp": "params.tp_attr",
    "empty": "params.empty",
    "x" * 65: "params.order_id",
    "long": "params.long",
    "obj": "params.tenant",
    "arr": "params.arr.0",
}
PARAMS = {
    "tenant": {"id": "acme", "name": "Ünïcødé 😀"},
    "order_id": 42,
    "flag": True,
    "ratio": 1.5,
    "count": -7,
    "tp_attr": "from-params",
    "empty": "",
    "long": "é" * 200,
    "arr": ["a", None, {"z": 1, "a": [0.25, '\u0001\n"\\']}],
    "b": None,
    "A": "upper sorts first",
}
FIXED_TIME = "2026-01-01T12:00:00.123456Z"


@pytest.fixture
async def pair(redis_dsn: str) -> Any:
    config = {"redis_dsn": redis_dsn, "correlation_mappings": MAPPINGS}
    theirs = rrq_client.RRQClient(config=config)
    ours = Producer(config)
    client = aioredis.from_url(redis_dsn, decode_responses=True)
    yield theirs, ours, client
    await theirs.close()
    await ours.close()
    await client.aclose()


def assert_same_job(theirs: dict[str, str], ours: dict[str, str], *, same_times: bool) -> None:
    assert theirs and ours
    assert set(theirs) == set(ours), (sorted(theirs), sorted(ours))
    ignored = {"id"} | (set() if same_times else {"enqueue_time", "next_scheduled_run_time"})
    for field in sorted(theirs):
        if field in ignored:
            continue
        if field in ("trace_context", "correlation_context"):
            # RRQ serialises these from a HashMap: key order is random; compare parsed JSON.
            assert json.loads(theirs[field]) == json.loads(ours[field]), field
        else:
            assert theirs[field] == ours[field], field


async def _job(client: Any, job_id: str) -> dict[str, str]:
    return dict(await client.hgetall(f"rrq:job:{job_id}"))


async def test_plain_enqueue_matches(pair: Any) -> None:
    theirs, ours, client = pair
    a = await theirs.enqueue("send_email", {"params": PARAMS})
    b = await ours.enqueue("send_email", PARAMS)
    assert_same_job(await _job(client, a), await _job(client, b), same_times=False)
    assert (await _job(client, b))["job_params"] == (await _job(client, a))["job_params"]
    assert await client.zscore("rrq:queue:default", a) is not None
    assert await client.zscore("rrq:queue:default", b) is not None


@pytest.mark.parametrize(
    "options",
    [
        {"enqueue_time": FIXED_TIME},
        {"enqueue_time": FIXED_TIME, "defer_by_seconds": 2.0001},
        {"enqueue_time": FIXED_TIME, "defer_by_seconds": 0},
        {"enqueue_time": FIXED_TIME, "defer_until": "2026-01-01T13:30:00.5+01:00"},
        {"enqueue_time": "2026-01-01T12:00:00Z", "defer_until": "2026-01-02T00:00:00.987654321Z"},
        {
            "enqueue_time": FIXED_TIME,
            "queue_name": "emails",
            "max_retries": 9,
            "job_timeout_seconds": 17,
            "result_ttl_seconds": 0,
            "trace_context": TRACE,
        },
        {"enqueue_time": FIXED_TIME, "queue_name": "rrq:queue:already", "result_ttl_seconds": -1},
        {"enqueue_time": FIXED_TIME, "trace_context": {}},
        {"enqueue_time": "2026-01-01T12:00:00.123456789Z", "defer_by_seconds": 0.0005},
        {"enqueue_time": "2026-01-01T12:00:00.5Z", "defer_until": "2026-01-01T11:00:00Z"},
    ],
    ids=[
        "time",
        "defer_by",
        "defer_by_zero",
        "defer_until",
        "ns",
        "all",
        "prefixed",
        "empty_tc",
        "sub_ms",
        "past",
    ],
)
async def test_options_match_exactly(pair: Any, options: dict[str, Any]) -> None:
    theirs, ours, client = pair
    a = await theirs.enqueue("fn", {"params": PARAMS, "job_id": "rrq-job", **options})
    b = await ours.enqueue("fn", PARAMS, {"job_id": "our-job", **options})
    job_a, job_b = await _job(client, a), await _job(client, b)
    assert_same_job(job_a, job_b, same_times=True)
    queue = job_a["queue_name"]
    assert await client.zscore(queue, a) == await client.zscore(queue, b)


async def test_idempotency_matches(pair: Any) -> None:
    theirs, ours, client = pair
    options = {"enqueue_time": FIXED_TIME, "unique_ttl_seconds": 100, "defer_by_seconds": 500.5}
    a = await theirs.enqueue("fn", {"params": {"n": 1}, "unique_key": "rrq-u", **options})
    b = await ours.enqueue("fn", {"n": 1}, {"unique_key": "our-u", **options})
    assert_same_job(await _job(client, a), await _job(client, b), same_times=True)
    assert await client.get("rrq:idempotency:rrq-u") == a
    assert await client.get("rrq:idempotency:our-u") == b
    ttl_a, ttl_b = (
        await client.ttl("rrq:idempotency:rrq-u"),
        await client.ttl("rrq:idempotency:our-u"),
    )
    assert abs(ttl_a - ttl_b) <= 1 and ttl_b > 400
    assert await theirs.enqueue("fn", {"params": {"n": 2}, "unique_key": "rrq-u"}) == a
    assert await ours.enqueue("fn", {"n": 2}, unique_key="our-u") == b
    # Default TTL (idempotency_ttl_seconds = 21600) without deferral.
    await theirs.enqueue("fn", {"params": {}, "unique_key": "rrq-u2"})
    await ours.enqueue("fn", {}, unique_key="our-u2")
    ttl_a = await client.ttl("rrq:idempotency:rrq-u2")
    ttl_b = await client.ttl("rrq:idempotency:our-u2")
    assert abs(ttl_a - ttl_b) <= 1 and 21590 < ttl_b <= 21600


async def test_rate_limit_matches(pair: Any) -> None:
    theirs, ours, client = pair
    opts = {"rate_limit_seconds": 2.5, "enqueue_time": FIXED_TIME}
    a = await theirs.enqueue_with_rate_limit(
        "fn", {"params": {"x": 1}, "rate_limit_key": "rrq-k", **opts}
    )
    b = await ours.enqueue_with_rate_limit("fn", {"x": 1}, rate_limit_key="our-k", **opts)
    assert a and b
    assert_same_job(await _job(client, a), await _job(client, b), same_times=True)
    assert await client.get("rrq:rate_limit:rrq-k") == a
    assert await client.get("rrq:rate_limit:our-k") == b
    assert await client.ttl("rrq:rate_limit:rrq-k") == await client.ttl("rrq:rate_limit:our-k") == 3
    assert (
        await theirs.enqueue_with_rate_limit(
            "fn", {"params": {}, "rate_limit_key": "rrq-k", **opts}
        )
        is None
    )
    assert await ours.enqueue_with_rate_limit("fn", {}, rate_limit_key="our-k", **opts) is None
    # An already-prefixed key is not prefixed twice.
    c = await theirs.enqueue_with_rate_limit(
        "fn", {"params": {}, "rate_limit_key": "rrq:rate_limit:rrq-p", "rate_limit_seconds": 1}
    )
    d = await ours.enqueue_with_rate_limit(
        "fn", {}, rate_limit_key="rrq:rate_limit:our-p", rate_limit_seconds=1
    )
    assert await client.get("rrq:rate_limit:rrq-p") == c
    assert await client.get("rrq:rate_limit:our-p") == d


async def test_debounce_matches(pair: Any) -> None:
    theirs, ours, client = pair
    first = {"debounce_seconds": 30.5, "enqueue_time": FIXED_TIME, "trace_context": TRACE}
    a = await theirs.enqueue_with_debounce(
        "fn", {"params": PARAMS, "debounce_key": "rrq-d", **first}
    )
    b = await ours.enqueue_with_debounce("fn", PARAMS, debounce_key="our-d", **first)
    assert_same_job(await _job(client, a), await _job(client, b), same_times=True)
    assert await client.ttl("rrq:debounce:rrq-d") == await client.ttl("rrq:debounce:our-d") == 31
    second = {
        "debounce_seconds": 10,
        "enqueue_time": "2026-01-01T12:00:05Z",
        "queue_name": "other",
        "max_retries": 2,
    }
    a2 = await theirs.enqueue_with_debounce(
        "fn2", {"params": {"v": 2}, "debounce_key": "rrq-d", **second}
    )
    b2 = await ours.enqueue_with_debounce("fn2", {"v": 2}, debounce_key="our-d", **second)
    assert (a2, b2) == (a, b)
    job_a, job_b = await _job(client, a), await _job(client, b)
    assert_same_job(job_a, job_b, same_times=True)
    assert job_b["function_name"] == "fn2" and job_b["queue_name"] == "rrq:queue:other"
    assert "correlation_context" not in job_b and "trace_context" in job_b
    assert await client.zscore("rrq:queue:other", a) == await client.zscore("rrq:queue:other", b)
    # Deliberate difference: rrqkit removes the job from its old queue; RRQ leaves it there.
    assert await client.zscore("rrq:queue:default", b) is None
    assert await client.ttl("rrq:debounce:rrq-d") == await client.ttl("rrq:debounce:our-d") == 10


async def test_debounce_window_is_rounded_up_to_milliseconds(pair: Any) -> None:
    theirs, ours, client = pair
    opts = {"debounce_seconds": 0.0000015, "enqueue_time": "2026-01-01T12:00:00Z"}
    a = await theirs.enqueue_with_debounce("fn", {"params": {}, "debounce_key": "rrq-t", **opts})
    b = await ours.enqueue_with_debounce("fn", {}, debounce_key="our-t", **opts)
    job_a, job_b = await _job(client, a), await _job(client, b)
    assert_same_job(job_a, job_b, same_times=True)
    assert job_b["next_scheduled_run_time"] == "2026-01-01T12:00:00.001+00:00"
    assert await client.ttl("rrq:debounce:rrq-t") == await client.ttl("rrq:debounce:our-t") == 1


async def test_integral_float_difference_is_deliberate(pair: Any) -> None:
    """RRQ (serde_json) keeps 2.0 as "2.0"; PRODUCER.md §4 writes integral numbers as "2"."""
    theirs, ours, client = pair
    a = await theirs.enqueue("fn", {"params": {"n": 2.0}})
    b = await ours.enqueue("fn", {"n": 2.0})
    assert (await _job(client, a))["job_params"] == '{"n":2.0}'
    assert (await _job(client, b))["job_params"] == '{"n":2}'


async def test_both_read_each_others_status(pair: Any) -> None:
    theirs, ours, client = pair
    job = await ours.enqueue("fn", {})
    await client.hset(f"rrq:job:{job}", mapping={"status": "COMPLETED", "result": '{"ok":[1,2]}'})
    mine = await ours.get_job_status(job)
    rrqs = await theirs.get_job_status(job)
    assert mine is not None and rrqs is not None
    assert mine.status == rrqs.status.value == "COMPLETED"
    assert mine.result == rrqs.result == {"ok": [1, 2]}
    assert mine.last_error == rrqs.last_error is None


async def test_unique_key_with_rate_limit_or_debounce_is_refused(pair: Any) -> None:
    """RRQ silently ignores a unique_key in rate-limit and debounce mode; rrqkit refuses the
    call with conflicting_options and writes nothing (protocol/PRODUCER.md §6)."""
    theirs, ours, client = pair
    rate = {"rate_limit_seconds": 5, "unique_key": "u"}
    await theirs.enqueue_with_rate_limit("fn", {"params": {}, "rate_limit_key": "rrq-r", **rate})
    assert not await client.keys("rrq:idempotency:*")
    before = await client.dbsize()
    with pytest.raises(ProducerError) as refused:
        await ours.enqueue_with_rate_limit("fn", {}, rate_limit_key="our-r", **rate)
    assert refused.value.code == "conflicting_options"
    with pytest.raises(ProducerError) as refused_debounce:
        await ours.enqueue_with_debounce(
            "fn", {}, debounce_key="our-d", debounce_seconds=5, unique_key="u"
        )
    assert refused_debounce.value.code == "conflicting_options"
    assert await client.dbsize() == before


async def test_defer_until_does_not_apply_to_debounce(pair: Any) -> None:
    theirs, ours, client = pair
    debounce = {"debounce_seconds": 5, "defer_until": "2030-01-01T00:00:00Z"}
    a = await theirs.enqueue_with_debounce(
        "fn", {"params": {}, "debounce_key": "rrq-d", **debounce}
    )
    b = await ours.enqueue_with_debounce("fn", {}, debounce_key="our-d", **debounce)
    # Both run `debounce_seconds` after now, not at defer_until.
    job_a, job_b = await _job(client, a), await _job(client, b)
    assert not job_a["next_scheduled_run_time"].startswith("2030")
    assert not job_b["next_scheduled_run_time"].startswith("2030")
