"""Testing modes: FakeProducer and InlineProducer (rrqkit.testing), and the shared scenarios of
conformance/cases/testing/inline.json run in inline and fake+drain modes."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rrqkit import NonRetryableError, ProducerError, Registry, SnoozeJob, job_context
from rrqkit.contracts import JobCatalog
from rrqkit.errors import BulkEnqueueError, EnqueueVetoed
from rrqkit.testing import DrainLimitError, FakeProducer, InlineDefaults, InlineProducer

CASES = Path(__file__).resolve().parents[3] / "conformance" / "cases" / "testing" / "inline.json"
SCENARIOS: list[dict[str, Any]] = json.loads(CASES.read_text())["scenarios"]
MODES = ("inline", "fake")


def scenario_registry(box: dict[str, Any]) -> Registry:
    """The test handlers of inline.json; ``box["producer"]`` is the producer under test."""
    registry = Registry()
    snoozed: Counter[str] = Counter()

    @registry.handler("echo")
    async def echo(request: Any) -> Any:
        return request.params

    @registry.handler("flaky")
    async def flaky(request: Any) -> Any:
        if request.context.attempt <= request.params["fail_times"]:
            raise RuntimeError(f"attempt {request.context.attempt} fails")
        return request.params["result"]

    @registry.handler("sleep")
    async def sleep(request: Any) -> Any:
        await asyncio.sleep(request.params["ms"] / 1000)  # cancelled at the job timeout
        return {"slept": request.params["ms"]}

    @registry.handler("fail_permanent")
    async def fail_permanent(request: Any) -> Any:
        raise NonRetryableError(request.params["message"])

    @registry.handler("enqueue_child")
    async def enqueue_child(request: Any) -> Any:
        child = await box["producer"].enqueue(request.params["name"], request.params["params"])
        return {"child_id": child}

    @registry.handler("snooze")
    async def snooze(request: Any) -> Any:
        snoozed[request.job_id] += 1
        if snoozed[request.job_id] <= request.params["times"]:
            raise SnoozeJob(request.params["seconds"])
        return request.params["result"]

    return registry


def make(mode: str, registry: Registry | None = None, **kwargs: Any) -> FakeProducer:
    cls = InlineProducer if mode == "inline" else FakeProducer
    return cls(registry=registry, **kwargs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
async def test_shared_scenario(scenario: dict[str, Any], mode: str) -> None:
    box: dict[str, Any] = {}
    catalog = JobCatalog.from_contracts(scenario["catalog"]) if "catalog" in scenario else None
    producer = box["producer"] = make(mode, scenario_registry(box), catalog=catalog)
    expect = scenario["expect"]
    enqueue = producer.enqueue(scenario["handler"], scenario["handler_params"], scenario["options"])
    if "refused" in expect:
        with pytest.raises(ProducerError) as refused:
            await enqueue
        assert refused.value.code == expect["refused"]["error"]
        if "field" in expect["refused"]:
            assert refused.value.field == expect["refused"]["field"]
        assert producer.jobs == []
        return
    job_id = await enqueue
    if mode == "fake":
        assert producer.job(job_id).status == "PENDING"  # recorded only, until drained
        await producer.drain()
    job = producer.job(job_id)
    assert job is not None
    assert job.status == expect["status"]
    assert job.attempts == expect["attempts"]
    status = await producer.get_job_status(job_id)
    assert status is not None and status.status == expect["status"]
    if "result" in expect:
        assert job.result == expect["result"] == status.result
    if "error_type" in expect:
        assert job.error_type == expect["error_type"]
    if "snoozes" in expect:
        assert job.snoozes == expect["snoozes"]
    if "retry_delays" in expect:
        assert job.retry_delays == expect["retry_delays"]
    if "deferred_seconds" in expect:
        assert job.deferred_seconds == expect["deferred_seconds"]
    if "child" in expect:
        child = producer.job(job.result["child_id"])
        assert child is not None
        got = {"function_name": child.function_name, "status": child.status}
        if "result" in expect["child"]:
            got["result"] = child.result
        assert got == expect["child"]


# -- no network at all --------------------------------------------------------------------


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("a testing producer opened a network connection")


async def _refuse_async(*_args: Any, **_kwargs: Any) -> Any:
    _refuse()


@pytest.mark.parametrize("mode", MODES)
async def test_no_network_connection(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(asyncio, "open_connection", _refuse_async)
    monkeypatch.setattr(asyncio, "open_unix_connection", _refuse_async)
    loop_class = type(asyncio.get_running_loop())
    monkeypatch.setattr(loop_class, "create_connection", _refuse_async)
    monkeypatch.setattr(loop_class, "create_unix_connection", _refuse_async)
    with pytest.raises(AssertionError):  # the stubs are in place
        socket.create_connection(("127.0.0.1", 9))

    box: dict[str, Any] = {}
    producer = box["producer"] = make(mode, scenario_registry(box))
    ids = [
        await producer.enqueue("enqueue_child", {"name": "echo", "params": {"n": 1}}),
        await producer.enqueue("flaky", {"fail_times": 1, "result": 2}, unique_key="u"),
        await producer.enqueue_with_rate_limit(
            "echo", {}, rate_limit_key="r", rate_limit_seconds=5
        ),
        await producer.enqueue_with_debounce("echo", {}, debounce_key="d", debounce_seconds=5),
        *(await producer.enqueue_many([{"function_name": "echo", "params": {"i": 1}}])),
    ]
    await producer.drain()
    assert all(job.status == "COMPLETED" for job in producer.jobs)
    assert len(producer.jobs) == len(ids) + 1  # and the child
    await producer.close()


# -- producer API ---------------------------------------------------------------------------


async def test_fake_records_final_params_and_options() -> None:
    producer = FakeProducer()
    job_id = await producer.enqueue(
        "send_email", {"to": "a@b.c"}, {"queue_name": "mail"}, max_retries=2, job_id="j1"
    )
    assert job_id == "j1"
    [job] = producer.jobs_for("send_email")
    options = {"queue_name": "mail", "max_retries": 2, "job_id": "j1"}
    assert (job.params, job.options) == ({"to": "a@b.c"}, options)
    assert (job.queue_name, job.max_retries, job.status) == ("rrq:queue:mail", 2, "PENDING")
    assert (await producer.get_job_status("j1")).status == "PENDING"  # type: ignore[union-attr]
    assert await producer.get_job_status("nope") is None
    assert await producer.wait_for_completion("j1") is None  # not final, and nothing runs it
    with pytest.raises(ProducerError) as duplicate:
        await producer.enqueue("send_email", job_id="j1")
    assert duplicate.value.code == "duplicate_job_id"
    producer.clear()
    assert producer.jobs == []


async def test_same_validation_as_the_real_producer() -> None:
    producer = FakeProducer()
    cases = [
        ({"max_retries": -1}, "invalid_argument"),
        ({"no_such_option": 1}, "invalid_argument"),
        ({"defer_by_seconds": 1, "defer_until": "2030-01-01T00:00:00Z"}, "conflicting_options"),
        ({"retry": {"max_attempts": 0}}, "invalid_argument"),
    ]
    for options, code in cases:
        with pytest.raises(ProducerError) as refused:
            await producer.enqueue("f", {}, options)
        assert refused.value.code == code, options
    with pytest.raises(ProducerError) as not_object:
        await producer.enqueue("f", [1, 2])  # type: ignore[arg-type]
    assert not_object.value.code == "invalid_params"
    assert producer.jobs == []


async def test_unique_key_rate_limit_and_debounce() -> None:
    producer = FakeProducer()
    first = await producer.enqueue("f", {}, unique_key="k")
    assert await producer.enqueue("f", {"other": 1}, unique_key="k") == first
    assert await producer.enqueue_with_rate_limit("f", rate_limit_key="r", rate_limit_seconds=60)
    assert (
        await producer.enqueue_with_rate_limit("f", rate_limit_key="r", rate_limit_seconds=60)
        is None
    )
    with pytest.raises(ProducerError) as limited:
        await producer.enqueue("f", rate_limit_key="r", rate_limit_seconds=60)
    assert limited.value.code == "rate_limited"
    one = await producer.enqueue_with_debounce("f", {"v": 1}, debounce_key="d", debounce_seconds=9)
    two = await producer.enqueue_with_debounce("g", {"v": 2}, debounce_key="d", debounce_seconds=9)
    assert one == two
    job = producer.job(one)
    assert job is not None
    assert (job.function_name, job.params, job.deferred_seconds) == ("g", {"v": 2}, 9)
    assert len(producer.jobs) == 3


async def test_enqueue_many_is_all_or_nothing() -> None:
    producer = FakeProducer()
    await producer.enqueue("f", job_id="taken")
    with pytest.raises(BulkEnqueueError) as taken:
        await producer.enqueue_many(
            [
                {"function_name": "f", "options": {"job_id": "x"}},
                {"function_name": "f", "options": {"job_id": "taken"}},
            ]
        )
    assert taken.value.written_ids == []
    with pytest.raises(ProducerError):
        await producer.enqueue_many([{"function_name": "f"}, {"function_name": "f", "params": 1}])
    assert len(producer.jobs) == 1
    ids = await producer.enqueue_many([{"function_name": "f"}, {"function_name": "g"}])
    assert [job.id for job in producer.jobs[1:]] == ids


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def before_enqueue(self, job: Any) -> None:
        self.log.append(f"before {self.name}")
        job.params.setdefault("tenant", self.name)
        if job.params.get("veto"):
            raise EnqueueVetoed("no thanks")

    def after_enqueue(self, job: Any, job_id: str) -> None:
        self.log.append(f"after {self.name} {job_id}")


@pytest.mark.parametrize("mode", MODES)
async def test_producer_middleware_chain(mode: str) -> None:
    log: list[str] = []
    registry = Registry()
    registry.register("f", lambda request: request.params)
    producer = make(mode, registry).use(Recorder("a", log)).use(Recorder("b", log))
    job_id = await producer.enqueue("f", {}, job_id="j")
    assert log == ["before a", "before b", "after b j", "after a j"]
    assert producer.job(job_id).params == {"tenant": "a"}  # type: ignore[union-attr]
    with pytest.raises(ProducerError) as vetoed:
        await producer.enqueue("f", {"veto": True})
    assert vetoed.value.code == "enqueue_vetoed"
    assert str(vetoed.value) == "enqueue of f vetoed: no thanks"
    assert len(producer.jobs) == 1
    catalog = JobCatalog.from_contracts(
        [{"name": "f", "params": {"type": "object", "required": ["tenant"]}}]
    )
    checked = make(mode, registry, catalog=catalog)
    with pytest.raises(ProducerError):
        await checked.enqueue("f", {})
    # validation runs after the hooks, on the final params
    await checked.use(Recorder("c", [])).enqueue("f", {})
    assert len(checked.jobs) == 1


async def test_registry_middleware_and_job_context_and_sync_handlers() -> None:
    registry = Registry()
    calls: list[str] = []

    @registry.middleware
    async def around(request: Any, call_next: Any) -> Any:
        calls.append("before")
        result = await call_next()
        calls.append("after")
        return {"wrapped": result}

    @registry.handler("sync_job")
    def sync_job(request: Any) -> Any:
        ctx = job_context()
        ctx.progress(0.5, "half")
        ctx.output.write("hello\n")
        return {"thread": threading.current_thread() is not threading.main_thread()}

    producer = InlineProducer(registry=registry)
    job = producer.job(await producer.enqueue("sync_job"))
    assert job is not None
    assert job.result == {"wrapped": {"thread": True}}
    assert calls == ["before", "after"]
    assert job.progress == [{"progress": 0.5, "message": "half", "detail": None}]
    assert job.output == "hello\n"


async def test_missing_handler_fails_at_once() -> None:
    producer = InlineProducer(registry=Registry())
    job = producer.job(await producer.enqueue("nothing", max_retries=5))
    assert job is not None
    assert (job.status, job.attempts, job.error_type) == ("FAILED", 1, "handler_not_found")


async def test_function_policies_and_retry_outcomes() -> None:
    registry = Registry()

    @registry.handler("charge")
    async def charge(request: Any) -> Any:
        raise ValueError("gateway said no")

    defaults = InlineDefaults(
        function_policies={"charge": {"non_retryable_error_types": ["ValueError"]}}
    )
    producer = InlineProducer(registry=registry, defaults=defaults)
    job = producer.job(await producer.enqueue("charge"))
    assert job is not None
    assert (job.status, job.attempts, job.error_type) == ("FAILED", 1, "ValueError")
    assert (
        job.last_error == "gateway said no (not retried: error type 'ValueError' is non-retryable)"
    )
    # RRQ's exponential backoff without a policy: 5, 10, 20, 40 s (recorded, not slept)
    plain = InlineProducer(registry=registry)
    job = plain.job(await plain.enqueue("charge"))
    assert job is not None and job.retry_delays == [5, 10, 20, 40]


async def test_drain_stops_after_the_execution_limit() -> None:
    box: dict[str, Any] = {}
    registry = Registry()

    @registry.handler("forever")
    async def forever(request: Any) -> Any:
        await box["producer"].enqueue("forever")

    producer = box["producer"] = FakeProducer(registry, defaults=InlineDefaults(max_executions=50))
    await producer.enqueue("forever")
    with pytest.raises(DrainLimitError):
        await producer.drain()
    assert producer.executions == 50
