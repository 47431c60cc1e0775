"""Producer job control (issue 20) against a real redis-server: the ``retry`` and
``expires_at``/``expires_in`` options, ``cancel``, and ``wait_for_completion`` on CANCELLED."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rrqkit import ProducerError
from rrqkit.producer import CancelResult
from rrqkit.retry_policy import check_retry_policy, closest
from test_adapter import Adapter


async def job(client: Any, job_id: str) -> dict[str, str]:
    return dict(await client.hgetall(f"rrq:job:{job_id}"))


FULL_POLICY = {
    "max_attempts": 4,
    "backoff": "exponential",
    "delay_seconds": 0.5,
    "max_delay_seconds": 30,
    "jitter": 0.25,
    "retry_timeouts": True,
    "non_retryable_error_types": ["ValidationError", "non_retryable"],
    "retry_for_seconds": 600,
    "max_snoozes": 10,
}

# -- the retry option ------------------------------------------------------------------------


async def test_retry_policy_stored_as_canonical_json(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue(
        "charge", {"a": 1}, job_id="j-retry", retry=FULL_POLICY, enqueue_time="2026-01-01T12:00:00Z"
    )
    fields = await job(client, job_id)
    assert fields["retry_policy"] == (
        '{"backoff":"exponential","delay_seconds":0.5,"jitter":0.25,"max_attempts":4,'
        '"max_delay_seconds":30,"max_snoozes":10,"non_retryable_error_types":'
        '["ValidationError","non_retryable"],"retry_for_seconds":600,"retry_timeouts":true}'
    )
    # max_attempts is also written as max_retries, so RRQ's orchestrator applies the same count
    assert fields["max_retries"] == "4"
    assert "expires_at" not in fields


async def test_retry_policy_list_and_integral_floats(env: Any) -> None:
    producer, client = env
    await producer.enqueue("f", job_id="j-list", retry={"delays": [1.0, 2.5, 10]})
    fields = await job(client, "j-list")
    assert fields["retry_policy"] == '{"delays":[1,2.5,10]}'
    assert fields["max_retries"] == "5"  # the default: no max_attempts given
    await producer.enqueue(
        "f", job_id="j-fixed", retry={"backoff": "fixed", "delay_seconds": 0.2, "max_attempts": 4.0}
    )
    fields = await job(client, "j-fixed")
    assert fields["retry_policy"] == '{"backoff":"fixed","delay_seconds":0.2,"max_attempts":4}'
    assert fields["max_retries"] == "4"
    # an empty policy is valid and stored as given
    await producer.enqueue("f", job_id="j-empty", retry={})
    assert (await job(client, "j-empty"))["retry_policy"] == "{}"


async def test_max_retries_and_max_attempts(env: Any) -> None:
    producer, client = env
    await producer.enqueue("f", job_id="same", max_retries=3, retry={"max_attempts": 3})
    assert (await job(client, "same"))["max_retries"] == "3"
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("f", job_id="differ", max_retries=3, retry={"max_attempts": 4})
    assert caught.value.code == "conflicting_options"
    assert caught.value.message == "max_retries (3) and retry.max_attempts (4) differ; give one"
    assert await client.exists("rrq:job:differ") == 0


BAD_POLICIES = [
    ({"jitter": 2}, "retry.jitter must be a number between 0 and 1, got 2"),
    ({"jitter": -0.1}, "retry.jitter must be a number between 0 and 1"),
    ({"max_attempts": 0}, "retry.max_attempts must be an integer >= 1, got 0"),
    ({"max_attempts": 1.5}, "retry.max_attempts must be an integer >= 1"),
    ({"max_attempts": True}, "retry.max_attempts must be an integer >= 1, got true"),
    ({"max_attempts": "3"}, 'retry.max_attempts must be an integer >= 1, got "3"'),
    ({"backoff": "linear"}, 'retry.backoff must be one of "exponential", "fixed", "list"'),
    ({"delay_seconds": -1}, "retry.delay_seconds must be a number >= 0, got -1"),
    ({"delay_seconds": float("nan")}, "retry.delay_seconds must be a number >= 0"),
    ({"max_delay_seconds": float("inf")}, "retry.max_delay_seconds must be a number >= 0"),
    ({"delays": []}, "retry.delays must be a non-empty array of numbers >= 0, got []"),
    ({"delays": [1, -2]}, "retry.delays must be a non-empty array of numbers >= 0"),
    ({"delays": "1,2"}, "retry.delays must be a non-empty array of numbers >= 0"),
    ({"retry_timeouts": "yes"}, 'retry.retry_timeouts must be true or false, got "yes"'),
    (
        {"non_retryable_error_types": ["ok", ""]},
        "retry.non_retryable_error_types must be an array of non-empty strings",
    ),
    (
        {"non_retryable_error_types": "ValidationError"},
        "retry.non_retryable_error_types must be an array of non-empty strings",
    ),
    ({"retry_for_seconds": 0}, "retry.retry_for_seconds must be a number > 0, got 0"),
    ({"max_snoozes": -1}, "retry.max_snoozes must be an integer >= 0, got -1"),
    ({"max_snoozes": None}, "retry.max_snoozes must be an integer >= 0, got null"),
    ({"backoff": "list"}, 'retry.delays is required with backoff "list"'),
    (
        {"backoff": "fixed", "delays": [1]},
        'retry.delays is only used with backoff "list" (got "fixed")',
    ),
    (
        {"max_atempts": 3},
        "unknown key 'retry.max_atempts'; valid keys are: backoff, delay_seconds, delays, "
        "jitter, max_attempts, max_delay_seconds, max_snoozes, non_retryable_error_types, "
        "retry_for_seconds, retry_timeouts — did you mean 'max_attempts'?",
    ),
    ({"colour": "blue"}, "unknown key 'retry.colour'; valid keys are: backoff"),
    ([1, 2], "retry must be an object (a table)"),
    ("exponential", "retry must be an object (a table)"),
]


@pytest.mark.parametrize(("policy", "message"), BAD_POLICIES)
async def test_bad_retry_policies_write_nothing(env: Any, policy: Any, message: str) -> None:
    producer, client = env
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("f", job_id="bad", retry=policy)
    assert caught.value.code == "invalid_argument"
    assert caught.value.message.startswith(message), caught.value.message
    assert await client.keys("*") == []


async def test_every_retry_problem_in_one_message(env: Any) -> None:
    producer, _client = env
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("f", retry={"jitter": 2, "max_attempts": 0})
    assert caught.value.message == (
        "retry.max_attempts must be an integer >= 1, got 0; "
        "retry.jitter must be a number between 0 and 1, got 2"
    )


def test_check_retry_policy_reports_every_problem() -> None:
    problems = check_retry_policy({"jitter": 3, "max_attempts": 0, "nope": 1}, "functions.f")
    assert problems == [
        "unknown key 'functions.f.nope'; valid keys are: backoff, delay_seconds, delays, "
        "jitter, max_attempts, max_delay_seconds, max_snoozes, non_retryable_error_types, "
        "retry_for_seconds, retry_timeouts",
        "functions.f.max_attempts must be an integer >= 1, got 0",
        "functions.f.jitter must be a number between 0 and 1, got 3",
    ]
    assert check_retry_policy(FULL_POLICY) == []
    assert check_retry_policy({"delays": [0, 1]}) == []
    assert closest("retires", ("retries",)) == "retries"
    assert closest("jiter", ("jitter", "delays")) == "jitter"
    assert closest("zzzzzz", ("jitter",)) is None


# -- expires_at / expires_in -----------------------------------------------------------------


async def test_expires_at_and_expires_in(env: Any) -> None:
    producer, client = env
    await producer.enqueue(
        "f",
        job_id="e-at",
        enqueue_time="2026-01-01T12:00:00Z",
        expires_at=datetime(2099, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    )
    fields = await job(client, "e-at")
    assert fields["expires_at"] == "2099-01-02T03:04:05.123456+00:00"
    assert "retry_policy" not in fields
    await producer.enqueue("f", job_id="e-str", expires_at="2099-06-01T00:00:00Z")
    assert (await job(client, "e-str"))["expires_at"] == "2099-06-01T00:00:00+00:00"
    # a naive datetime is UTC, as for defer_until
    await producer.enqueue("f", job_id="e-naive", expires_at=datetime(2099, 6, 1))
    assert (await job(client, "e-naive"))["expires_at"] == "2099-06-01T00:00:00+00:00"

    before = time.time()
    await producer.enqueue("f", job_id="e-in", expires_in=90.5)
    fields = await job(client, "e-in")
    expires = datetime.fromisoformat(fields["expires_at"]).timestamp()
    enqueued = datetime.fromisoformat(fields["enqueue_time"]).timestamp()
    assert expires == pytest.approx(enqueued + 90.5, abs=1e-6)
    assert before + 90 < expires < time.time() + 91
    # same format as enqueue_time
    assert fields["expires_at"].endswith("+00:00")
    assert (
        len(fields["expires_at"]) == len(fields["enqueue_time"])
        or "." not in fields["enqueue_time"]
    )


async def test_expires_in_counts_from_the_clock_not_a_given_enqueue_time(env: Any) -> None:
    producer, client = env
    # as the TypeScript producer (PRODUCER.md §3.3): now + ceil(expires_in × 1000) ms
    before = time.time()
    await producer.enqueue("f", job_id="rel", enqueue_time="2020-01-01T00:00:00Z", expires_in=60)
    fields = await job(client, "rel")
    expires = datetime.fromisoformat(fields["expires_at"]).timestamp()
    assert before + 60 <= expires + 1e-6 and expires <= time.time() + 60.001


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        ({"expires_at": "2020-01-01T00:00:00Z"}, "invalid_argument", "expires_at is in the past"),
        (
            {"expires_at": datetime.now(UTC) - timedelta(seconds=1)},
            "invalid_argument",
            "expires_at is in the past",
        ),
        ({"expires_at": "tomorrow"}, "invalid_argument", "expires_at must be an RFC 3339"),
        ({"expires_at": 1893456000}, "invalid_argument", "expires_at must be an RFC 3339"),
        ({"expires_in": 0}, "invalid_argument", "expires_in must be a finite number > 0"),
        ({"expires_in": -5}, "invalid_argument", "expires_in must be a finite number > 0"),
        ({"expires_in": float("inf")}, "invalid_argument", "expires_in must be a finite number"),
        ({"expires_in": "60"}, "invalid_argument", "expires_in must be a finite number > 0"),
        (
            {"expires_in": 60, "expires_at": "2099-01-01T00:00:00Z"},
            "conflicting_options",
            "expires_at and expires_in are mutually exclusive",
        ),
    ],
)
async def test_bad_expiry_writes_nothing(
    env: Any, options: dict[str, Any], code: str, message: str
) -> None:
    producer, client = env
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("f", job_id="bad", **options)
    assert caught.value.code == code
    assert caught.value.message.startswith(message), caught.value.message
    assert await client.keys("*") == []


async def test_options_in_every_enqueue_form(env: Any) -> None:
    producer, client = env
    policy = {"max_attempts": 2, "backoff": "fixed", "delay_seconds": 1}
    await producer.enqueue_with_rate_limit(
        "f",
        job_id="rl",
        rate_limit_key="k",
        rate_limit_seconds=10,
        retry=policy,
        expires_in=60,
    )
    await producer.enqueue_with_debounce(
        "f", job_id="db", debounce_key="d", debounce_seconds=1, retry=policy, expires_in=60
    )
    await producer.enqueue_many(
        [
            {"function_name": "f", "options": {"job_id": "m1", "retry": policy}},
            {"function_name": "f", "options": {"job_id": "m2", "expires_in": 60}},
            {"function_name": "f", "options": {"job_id": "m3"}},
        ]
    )
    for job_id in ("rl", "db", "m1"):
        fields = await job(client, job_id)
        assert fields["retry_policy"] == '{"backoff":"fixed","delay_seconds":1,"max_attempts":2}'
        assert fields["max_retries"] == "2"
    for job_id in ("rl", "db", "m2"):
        assert "expires_at" in await job(client, job_id)
    plain = await job(client, "m3")
    assert "retry_policy" not in plain and "expires_at" not in plain
    assert "retry_policy" not in await job(client, "m2")
    assert "expires_at" not in await job(client, "m1")
    # a bad item makes the whole batch write nothing
    await client.flushall()
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue_many(
            [
                {"function_name": "f", "options": {"job_id": "ok"}},
                {"function_name": "f", "options": {"job_id": "bad", "retry": {"jitter": 5}}},
            ]
        )
    assert caught.value.code == "invalid_argument"
    assert await client.keys("*") == []


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_waiting_job(env: Any) -> None:
    producer, client = env
    job_id = await producer.enqueue("f", job_id="w1")
    result = await producer.cancel(job_id)
    assert result == CancelResult(cancelled=True, status="CANCELLED", reason=None)
    assert result.to_dict() == {"cancelled": True, "status": "CANCELLED"}
    fields = await job(client, job_id)
    assert fields["status"] == "CANCELLED"
    assert "completion_time" in fields
    assert await client.zcard("rrq:queue:default") == 0
    assert (await producer.get_job_status(job_id)).status == "CANCELLED"  # type: ignore[union-attr]
    # a second cancel is refused: the status no longer allows it
    again = await producer.cancel(job_id)
    assert again == CancelResult(cancelled=False, status="CANCELLED", reason="not_waiting")


async def test_cancel_missing_and_finished_jobs(env: Any) -> None:
    producer, client = env
    missing = await producer.cancel("nope")
    assert missing == CancelResult(cancelled=False, status=None, reason="not_found")
    assert missing.to_dict() == {"cancelled": False, "status": None, "reason": "not_found"}
    await client.hset("rrq:job:done", mapping={"id": "done", "status": "COMPLETED"})
    done = await producer.cancel("done")
    assert (done.cancelled, done.status, done.reason) == (False, "COMPLETED", "not_waiting")
    await client.hset("rrq:job:noq", mapping={"id": "noq", "status": "PENDING"})
    assert (await producer.cancel("noq")).reason == "no_queue"
    await client.hset(
        "rrq:job:gone", mapping={"id": "gone", "status": "PENDING", "queue_name": "rrq:queue:q"}
    )
    assert (await producer.cancel("gone")) == CancelResult(False, "PENDING", "not_in_queue")
    with pytest.raises(ProducerError) as caught:
        await producer.cancel("")
    assert caught.value.code == "invalid_argument"


async def test_cancel_running_job_under_rrqkit_fence(env: Any) -> None:
    producer, client = env
    await client.hset(
        "rrq:job:run1",
        mapping={
            "id": "run1",
            "function_name": "f",
            "status": "ACTIVE",
            "queue_name": "rrq:queue:default",
            "lease_fence": "7",
            "worker_id": "w-a",
            "runs": "2",
            "result_ttl_seconds": "60",
        },
    )
    await client.zadd("rrq:leases", {"run1": time.time() * 1000 + 30_000})
    await client.zadd("rrq:active:jobs:w-a", {"run1": 1})
    await client.set("rrq:lock:job:run1", "w-a")
    pubsub = client.pubsub()
    await pubsub.subscribe("rrq:cancel:w-a")
    await pubsub.get_message(timeout=1)
    result = await producer.cancel("run1")
    assert result == CancelResult(cancelled=True, status="CANCELLED")
    fields = await job(client, "run1")
    assert fields["status"] == "CANCELLED"
    assert fields["last_error"] == "Job cancelled while running"
    assert fields["run_2_outcome"] == "cancelled"
    assert fields["run_2_ended_at"] == fields["completion_time"]
    assert await client.exists("rrq:lock:job:run1") == 0
    assert await client.zscore("rrq:leases", "run1") is None
    assert await client.zscore("rrq:active:jobs:w-a", "run1") is None
    message = await pubsub.get_message(timeout=2)
    assert message is not None and message["data"] == "run1"
    await pubsub.aclose()


async def test_cancel_refuses_job_held_by_rrq(env: Any) -> None:
    producer, client = env
    await client.hset(
        "rrq:job:rrq1", mapping={"id": "rrq1", "status": "ACTIVE", "queue_name": "rrq:queue:q"}
    )
    result = await producer.cancel("rrq1")
    assert (result.cancelled, result.status) == (False, "ACTIVE")
    assert result.reason == "running_unfenced"
    assert (await job(client, "rrq1"))["status"] == "ACTIVE"


async def test_wait_for_completion_returns_at_once_on_cancel(env: Any) -> None:
    producer, _client = env
    job_id = await producer.enqueue("f", job_id="waited")

    async def cancel_soon() -> None:
        await asyncio.sleep(0.2)
        await producer.cancel(job_id)

    started = time.monotonic()
    task = asyncio.create_task(cancel_soon())
    result = await producer.wait_for_completion(
        job_id, timeout_seconds=10, block_interval_seconds=5
    )
    await task
    assert result is not None and result.status == "CANCELLED"
    assert time.monotonic() - started < 2  # woken by the events stream, not by the 5 s block


# -- the adapter -----------------------------------------------------------------------------


def test_adapter_cancel_and_job_control_options(redis_dsn: str, tmp_path: Path) -> None:
    import redis

    adapter = Adapter()
    client = redis.Redis.from_url(redis_dsn, decode_responses=True)
    try:
        assert adapter.call("configure", config={"redis_dsn": redis_dsn})["ok"]
        reply = adapter.call(
            "enqueue",
            function_name="f",
            params={},
            options={
                "job_id": "a1",
                "retry": {"max_attempts": 2, "delays": [1, 2]},
                "expires_at": "2099-01-01T00:00:00Z",
            },
        )
        assert reply == {"id": "enqueue", "ok": True, "result": "a1"}
        fields = client.hgetall("rrq:job:a1")
        assert fields["retry_policy"] == '{"delays":[1,2],"max_attempts":2}'
        assert fields["expires_at"] == "2099-01-01T00:00:00+00:00"
        assert fields["max_retries"] == "2"
        reply = adapter.call("enqueue", function_name="f", options={"retry": {"jitter": 9}})
        assert reply["ok"] is False
        assert reply["error"]["code"] == "invalid_argument"
        assert reply["error"]["message"].startswith("retry.jitter must be a number between 0")
        reply = adapter.call("enqueue", function_name="f", options={"expires_in": 30})
        assert reply["ok"] is True
        assert adapter.call("cancel", job_id="a1") == {
            "id": "cancel",
            "ok": True,
            "result": {"cancelled": True, "status": "CANCELLED"},
        }
        reply = adapter.call("cancel", job_id="a1")
        assert reply["ok"] is True
        assert reply["result"]["cancelled"] is False
        assert reply["result"]["status"] == "CANCELLED"
        assert reply["result"]["reason"] == "not_waiting"
        reply = adapter.call("cancel", job_id="missing")
        assert reply["result"]["cancelled"] is False and reply["result"]["status"] is None
        assert json.loads(json.dumps(reply))  # plain JSON
    finally:
        client.close()
        assert adapter.close() == 0


async def test_fields_only_on_the_job_this_call_wrote(env: Any) -> None:
    producer, client = env
    first = await producer.enqueue("f", job_id="u1", unique_key="once")
    # an idempotent hit returns the first job and adds nothing to it
    again = await producer.enqueue(
        "f", job_id="u2", unique_key="once", retry={"max_attempts": 2}, expires_in=60
    )
    assert again == first
    fields = await job(client, first)
    assert "retry_policy" not in fields and "expires_at" not in fields
    assert await client.exists("rrq:job:u2") == 0
    # a duplicate job id writes nothing, neither the job nor the fields
    await client.hset("rrq:job:taken", mapping={"id": "taken", "status": "COMPLETED"})
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("f", job_id="taken", retry={"max_attempts": 2})
    assert caught.value.code == "duplicate_job_id"
    assert await job(client, "taken") == {"id": "taken", "status": "COMPLETED"}
    # a rate-limited (dropped) call writes nothing
    await producer.enqueue_with_rate_limit(
        "f", job_id="r1", rate_limit_key="k", rate_limit_seconds=60
    )
    assert (
        await producer.enqueue_with_rate_limit(
            "f", job_id="r2", rate_limit_key="k", rate_limit_seconds=60, expires_in=60
        )
        is None
    )
    assert await client.exists("rrq:job:r2") == 0
    assert "expires_at" not in await job(client, "r1")


async def test_debounce_update_writes_the_new_fields(env: Any) -> None:
    producer, client = env
    first = await producer.enqueue_with_debounce(
        "f", {"v": 1}, job_id="d1", debounce_key="doc", debounce_seconds=30
    )
    assert "retry_policy" not in await job(client, first)
    second = await producer.enqueue_with_debounce(
        "f", {"v": 2}, debounce_key="doc", debounce_seconds=30, retry={"max_attempts": 3}
    )
    assert second == first
    fields = await job(client, first)
    assert fields["job_params"] == '{"v":2}'
    assert fields["retry_policy"] == '{"max_attempts":3}'
    assert fields["max_retries"] == "3"
