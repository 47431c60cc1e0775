"""Producer middleware (issue 24): before-hooks in registration order on a mutable job,
validation after them, a veto or an error writes nothing, after-hooks in reverse order for
written jobs only, on every enqueue path including enqueue_many (all or nothing). Runs against
the private redis-server of conftest.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from rrqkit import Producer, ProducerError
from rrqkit.contracts import load_job_catalog
from rrqkit.middleware import (
    EnqueueVetoed,
    PendingEnqueue,
    run_after_enqueue,
    run_before_enqueue,
)

CATALOG = Path(__file__).resolve().parents[3] / "conformance" / "fixtures" / "catalog"


class Recorder:
    """A middleware that logs its hook calls into a shared list; sync or async hooks."""

    def __init__(self, name: str, log: list[Any], *, use_async: bool = True) -> None:
        self.name = name
        self.log = log
        self.use_async = use_async

    def _before(self, job: PendingEnqueue) -> None:
        self.log.append((self.name, "before", job.function_name, copy.deepcopy(job.params)))
        job.params.setdefault("seen_by", []).append(self.name)

    def _after(self, job: PendingEnqueue, job_id: str) -> None:
        self.log.append((self.name, "after", job.function_name, job_id))

    def before_enqueue(self, job: PendingEnqueue) -> Any:
        if not self.use_async:
            return self._before(job)

        async def run() -> None:
            self._before(job)

        return run()

    async def after_enqueue(self, job: PendingEnqueue, job_id: str) -> None:
        self._after(job, job_id)


class Veto:
    def __init__(self, reason: str, *, only: str | None = None, returned: bool = False) -> None:
        self.reason = reason
        self.only = only
        self.returned = returned

    async def before_enqueue(self, job: PendingEnqueue) -> EnqueueVetoed | None:
        if self.only is not None and job.params.get("n") != self.only:
            return None
        if self.returned:
            return EnqueueVetoed(self.reason)
        raise EnqueueVetoed(self.reason)


async def nothing_written(client: Any) -> bool:
    return [key async for key in client.scan_iter("rrq:*")] == []


async def stored(client: Any, job_id: str) -> dict[str, str]:
    return dict(await client.hgetall(f"rrq:job:{job_id}"))


# -- order and mutation ---------------------------------------------------------------------


async def test_hooks_run_in_onion_order_and_change_the_job(env: Any) -> None:
    producer, client = env
    log: list[Any] = []
    assert producer.use(Recorder("a", log)) is producer
    producer.use(Recorder("b", log, use_async=False))

    class Routing:
        def before_enqueue(self, job: PendingEnqueue) -> None:
            job.options["queue_name"] = "emails"
            job.options["job_id"] = "routed-1"

    producer.use(Routing())
    params = {"n": 1}
    job_id = await producer.enqueue("send", params, max_retries=2)
    assert job_id == "routed-1"
    assert log == [
        ("a", "before", "send", {"n": 1}),
        ("b", "before", "send", {"n": 1, "seen_by": ["a"]}),
        ("b", "after", "send", "routed-1"),
        ("a", "after", "send", "routed-1"),
    ]
    assert params == {"n": 1}  # the caller's dict is untouched
    fields = await stored(client, job_id)
    assert fields["job_params"] == '{"n":1,"seen_by":["a","b"]}'
    assert fields["queue_name"] == "rrq:queue:emails"
    assert fields["max_retries"] == "2"


async def test_the_hooks_see_the_options_and_keywords_merged(env: Any) -> None:
    producer, _client = env
    seen: list[PendingEnqueue] = []

    class Look:
        def before_enqueue(self, job: PendingEnqueue) -> None:
            seen.append(job)

    producer.use(Look())
    await producer.enqueue("fn", options={"params": {"x": 1}, "max_retries": 1}, job_id="k")
    assert seen[0].params == {"x": 1}
    assert seen[0].options == {"max_retries": 1, "job_id": "k"}
    with pytest.raises(AttributeError):
        seen[0].function_name = "other"


# -- veto and errors ------------------------------------------------------------------------


@pytest.mark.parametrize("returned", [False, True])
async def test_a_veto_writes_nothing_and_stops_the_chain(env: Any, returned: bool) -> None:
    producer, client = env
    log: list[Any] = []
    producer.use(Recorder("a", log))
    producer.use(Veto("no recipient", returned=returned))
    producer.use(Recorder("late", log))
    with pytest.raises(EnqueueVetoed) as caught:
        await producer.enqueue("send_email", {"to": ""})
    error = caught.value
    assert isinstance(error, ProducerError)
    assert error.code == "enqueue_vetoed"
    assert error.function_name == "send_email"
    assert error.reason == "no recipient"
    assert str(error) == "enqueue of send_email vetoed: no recipient"
    assert [entry[0] for entry in log] == ["a"]  # neither later hooks nor after-hooks ran
    assert await nothing_written(client)


async def test_any_other_before_error_propagates_unchanged(env: Any) -> None:
    producer, client = env
    boom = KeyError("tenant")

    class Fails:
        def before_enqueue(self, job: PendingEnqueue) -> None:
            raise boom

    producer.use(Fails())
    with pytest.raises(KeyError) as caught:
        await producer.enqueue("fn", {"n": 1})
    assert caught.value is boom
    assert await nothing_written(client)


async def test_an_after_hook_error_reaches_the_caller_but_the_job_is_written(env: Any) -> None:
    producer, client = env

    class AfterFails:
        async def after_enqueue(self, job: PendingEnqueue, job_id: str) -> None:
            raise RuntimeError(f"audit down for {job_id}")

    producer.use(AfterFails())
    with pytest.raises(RuntimeError, match="audit down for j-1"):
        await producer.enqueue("fn", job_id="j-1")
    assert await client.exists("rrq:job:j-1")


def test_use_rejects_an_object_without_hooks() -> None:
    producer = Producer()
    for bad in (object(), {"before_enqueue": None}, type("H", (), {"before_enqueue": 3})()):
        with pytest.raises(ProducerError) as caught:
            producer.use(bad)
        assert caught.value.code == "invalid_argument"


# -- validation runs after the hooks ----------------------------------------------------------


async def test_validation_checks_the_final_job(env: Any) -> None:
    producer, client = env
    producer.catalog = load_job_catalog(CATALOG)

    class Fill:
        def before_enqueue(self, job: PendingEnqueue) -> None:
            if job.function_name == "send_email":
                job.params.setdefault("subject", "(none)")
                job.options.pop("bogus", None)
            else:
                job.options["max_retries"] = -1

    producer.use(Fill())
    # the caller's params and options are invalid; the hook repairs them
    job_id = await producer.enqueue("send_email", {"to": "a@b"}, {"bogus": 1})
    assert (await stored(client, job_id))["job_params"] == '{"subject":"(none)","to":"a@b"}'
    # the caller's job is valid; the hook breaks it
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("other", {})
    assert caught.value.code == "invalid_argument"
    assert "max_retries" in caught.value.message

    class Breaks:
        def before_enqueue(self, job: PendingEnqueue) -> None:
            job.params["to"] = 1

    producer.use(Breaks())
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue("send_email", {"to": "a@b", "subject": "s"})
    assert (caught.value.code, caught.value.field) == ("invalid_params", "/to")
    assert await client.zcard("rrq:queue:default") == 1  # only the repaired job


# -- rate limit and debounce ------------------------------------------------------------------


async def test_a_rate_limited_drop_calls_no_after_hook(env: Any) -> None:
    producer, _client = env
    log: list[Any] = []
    producer.use(Recorder("a", log))
    options = {"rate_limit_key": "user:1", "rate_limit_seconds": 30}
    first = await producer.enqueue_with_rate_limit("fn", {"n": 1}, options)
    assert first is not None
    assert await producer.enqueue_with_rate_limit("fn", {"n": 2}, options) is None
    assert [(e[1], e[3]) for e in log if e[1] == "after"] == [("after", first)]
    assert [e[1] for e in log].count("before") == 2
    with pytest.raises(ProducerError) as caught:  # enqueue() of a drop raises, no after-hook
        await producer.enqueue("fn", {"n": 3}, options)
    assert caught.value.code == "rate_limited"
    assert [e[1] for e in log].count("after") == 1


async def test_a_debounce_update_gives_the_after_hooks_the_existing_id(env: Any) -> None:
    producer, _client = env
    log: list[Any] = []
    producer.use(Recorder("a", log))
    options = {"debounce_key": "d", "debounce_seconds": 30}
    first = await producer.enqueue_with_debounce("fn", {"n": 1}, options)
    second = await producer.enqueue_with_debounce("fn", {"n": 2}, options)
    assert first == second
    assert [e[3] for e in log if e[1] == "after"] == [first, first]


# -- enqueue_many -----------------------------------------------------------------------------


def batch(count: int) -> list[dict[str, Any]]:
    return [
        {"function_name": "work", "params": {"n": str(i)}, "options": {"job_id": f"b-{i}"}}
        for i in range(count)
    ]


async def test_bulk_runs_the_hooks_per_item(env: Any) -> None:
    producer, client = env
    log: list[Any] = []
    producer.use(Recorder("a", log))
    producer.use(Recorder("b", log))
    ids = await producer.enqueue_many(batch(3))
    assert ids == ["b-0", "b-1", "b-2"]
    befores = [(e[0], e[3]["n"]) for e in log if e[1] == "before"]
    assert befores == [("a", "0"), ("b", "0"), ("a", "1"), ("b", "1"), ("a", "2"), ("b", "2")]
    afters = [(e[0], e[3]) for e in log if e[1] == "after"]
    onion = [[("b", job_id), ("a", job_id)] for job_id in ("b-0", "b-1", "b-2")]
    assert afters == [pair for item in onion for pair in item]
    assert (await stored(client, "b-2"))["job_params"] == '{"n":"2","seen_by":["a","b"]}'


async def test_a_bulk_veto_or_error_writes_nothing(env: Any) -> None:
    producer, client = env
    log: list[Any] = []
    producer.use(Recorder("a", log))
    producer.use(Veto("item two", only="2"))
    with pytest.raises(EnqueueVetoed) as caught:
        await producer.enqueue_many(batch(4))
    assert str(caught.value) == "enqueue of work vetoed: item two"
    assert [e[3]["n"] for e in log] == ["0", "1", "2"]  # item order; stops at the veto
    assert await nothing_written(client)


async def test_bulk_validation_runs_after_every_items_hooks(env: Any) -> None:
    producer, client = env
    producer.catalog = load_job_catalog(CATALOG)
    log: list[Any] = []

    class Breaks:
        def before_enqueue(self, job: PendingEnqueue) -> None:
            log.append(job.params["to"])
            if job.params["to"] == "broken":
                job.params["to"] = 7

    producer.use(Breaks())
    good = {"function_name": "send_email", "params": {"to": "a@b", "subject": "s"}}
    bad = {"function_name": "send_email", "params": {"to": "broken", "subject": "s"}}
    with pytest.raises(ProducerError) as caught:
        await producer.enqueue_many([good, bad, good])
    assert caught.value.code == "invalid_params"
    assert caught.value.field == "/to"
    assert caught.value.message.startswith("items[1]: send_email: params/to ")
    assert len(log) == 3  # every item's hooks ran before anything was checked
    assert await nothing_written(client)


# -- the chain functions on their own (what the testing producers reuse) ----------------------


async def test_chain_functions_without_a_producer() -> None:
    log: list[Any] = []
    job = PendingEnqueue("fn", {"n": 1}, {})
    middlewares = [Recorder("a", log), object(), Recorder("b", log)]  # no hooks: skipped
    await run_before_enqueue(middlewares, job)
    await run_after_enqueue(middlewares, job, "id-1")
    expected = [("a", "before"), ("b", "before"), ("b", "after"), ("a", "after")]
    assert [(e[0], e[1]) for e in log] == expected
    named = EnqueueVetoed("x", function_name="f")
    assert named.for_function("g") is named
    assert str(named) == "enqueue of f vetoed: x"
