"""Runner (handler) middleware (issue 24): an onion around every handler of a registry, first
registered outermost; it may change params, map errors, short-circuit; calling next twice is an
error outcome; contract validation and handler_not_found come before it; the job context, the
cancel signal and the deadline reach it. Served by an in-process runtime on a Unix socket."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rrqkit import NonRetryableError, Registry, job_context
from rrqkit.contracts import load_job_catalog
from rrqkit.middleware import CallNext, call_handler, run_handler_chain
from rrqkit.models import ExecutionOutcome, ExecutionRequest
from rrqkit.runtime import RunnerRuntime

from helpers import FrameClient, request, rfc3339, socket_client


@contextmanager
def serving(registry: Registry, **kwargs: Any) -> Iterator[FrameClient]:
    """``registry`` served by a RunnerRuntime on its own event loop thread."""
    runtime = RunnerRuntime(registry, hello=False, **kwargs)
    path = os.path.join(tempfile.mkdtemp(prefix="rrqk-mw-"), "r.sock")
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runtime.serve_unix(path, on_ready=lambda _p: ready.set()))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    client = socket_client(sock, "json")
    try:
        yield client
    finally:
        client.close()
        runtime.stop()
        thread.join(5)
        loop.close()


def call(client: FrameClient, function_name: str, params: Any = None) -> dict[str, Any]:
    return client.response(client.send_request(function_name, params))


def test_onion_order_and_changed_params() -> None:
    log: list[str] = []
    registry = Registry()

    @registry.middleware
    async def outer(request: ExecutionRequest, call_next: CallNext) -> Any:
        log.append("outer in")
        result = await call_next()
        log.append("outer out")
        return {"outer": result}

    async def inner(request: ExecutionRequest, call_next: CallNext) -> Any:
        log.append("inner in")
        request.params["tenant"] = "acme"
        result = await call_next()
        log.append("inner out")
        return result

    assert registry.use(inner) is registry
    assert registry.middlewares == [outer, inner]

    @registry.handler("echo")
    async def echo(request: ExecutionRequest) -> Any:
        log.append("handler")
        return request.params

    with serving(registry) as client:
        out = call(client, "echo", {"n": 1})
    assert out["status"] == "success"
    assert out["result"] == {"outer": {"n": 1, "tenant": "acme"}}
    assert log == ["outer in", "inner in", "handler", "inner out", "outer out"]


def test_sync_handlers_and_the_job_context() -> None:
    registry = Registry()
    seen: list[Any] = []

    @registry.middleware
    async def context(request: ExecutionRequest, call_next: CallNext) -> Any:
        seen.append(job_context().job_id == request.job_id)
        job_context().progress(0.5, "from middleware")  # a no-op unless watched
        return await call_next()

    @registry.handler("sync")
    def sync(request: ExecutionRequest) -> Any:
        seen.append(threading.current_thread() is not threading.main_thread())
        seen.append(job_context().job_id == request.job_id)
        return "done"

    with serving(registry) as client:
        out = call(client, "sync")
    assert (out["status"], out["result"]) == ("success", "done")
    assert seen == [True, True, True]


def test_short_circuit_and_error_mapping() -> None:
    registry = Registry()
    ran: list[str] = []

    @registry.middleware
    async def cache(request: ExecutionRequest, call_next: CallNext) -> Any:
        if request.params.get("cached"):
            return {"from": "cache"}
        return await call_next()

    @registry.middleware
    async def errors(request: ExecutionRequest, call_next: CallNext) -> Any:
        try:
            return await call_next()
        except KeyError as exc:
            raise NonRetryableError(f"missing {exc}") from exc
        except LookupError:
            return ExecutionOutcome(status="retry", retry_after_seconds=7)

    @registry.handler("work")
    async def work(request: ExecutionRequest) -> Any:
        ran.append("work")
        if request.params.get("fail") == "key":
            raise KeyError("sku")
        if request.params.get("fail") == "index":
            raise IndexError("page")
        return "ok"

    with serving(registry) as client:
        cached = call(client, "work", {"cached": True})
        mapped = call(client, "work", {"fail": "key"})
        outcome = call(client, "work", {"fail": "index"})
        plain = call(client, "work")
    assert (cached["status"], cached["result"]) == ("success", {"from": "cache"})
    assert mapped["status"] == "error"
    assert mapped["error"]["type"] == "non_retryable"
    assert mapped["error"]["message"] == "missing 'sku'"
    assert (outcome["status"], outcome["retry_after_seconds"]) == ("retry", 7)
    assert plain["result"] == "ok"
    assert ran == ["work", "work", "work"]  # not for the cached call


def test_next_twice_is_an_error_outcome() -> None:
    registry = Registry()
    calls: list[int] = []

    @registry.middleware
    async def twice(request: ExecutionRequest, call_next: CallNext) -> Any:
        await call_next()
        return await call_next()

    @registry.handler("once")
    def once(_request: ExecutionRequest) -> Any:
        calls.append(1)
        return 1

    with serving(registry) as client:
        out = call(client, "once")
    assert out["status"] == "error"
    assert out["error"]["message"] == "middleware called next twice"
    assert calls == [1]


def test_validation_and_missing_handlers_come_before_the_chain(tmp_path: Path) -> None:
    catalog = tmp_path / "jobs"
    catalog.mkdir()
    contract = {
        "name": "echo",
        "params": {"type": "object", "properties": {"to": {"type": "string"}}},
    }
    (catalog / "echo.json").write_text(json.dumps(contract))
    registry = Registry()
    entered: list[str] = []

    @registry.middleware
    async def spy(request: ExecutionRequest, call_next: CallNext) -> Any:
        entered.append(request.function_name)
        return await call_next()

    registry.register("echo", lambda request: request.params)
    with serving(registry, catalog=load_job_catalog(catalog)) as client:
        bad = call(client, "echo", {"to": 1})
        missing = call(client, "nope")
        good = call(client, "echo", {"to": "a"})
    assert bad["error"]["type"] == "invalid_params"
    assert missing["error"]["type"] == "handler_not_found"
    assert good["result"] == {"to": "a"}
    assert entered == ["echo"]  # only the valid call reached the middleware


def test_the_deadline_and_the_cancel_signal_cover_the_chain() -> None:
    registry = Registry()
    entered = {"slow": threading.Event(), "cancel": threading.Event()}
    stopped = {"slow": threading.Event(), "cancel": threading.Event()}

    @registry.middleware
    async def lingers(request: ExecutionRequest, call_next: CallNext) -> Any:
        result = await call_next()
        entered[request.params["name"]].set()
        try:
            await asyncio.sleep(60)  # after the handler: still inside the deadline
        except asyncio.CancelledError:
            stopped[request.params["name"]].set()
            raise
        return result

    registry.register("quick", lambda _request: "ok")
    with serving(registry) as client:
        payload = request("quick", {"name": "slow"}, deadline=rfc3339(1))
        client.send("request", payload)
        timed_out = client.response(payload["request_id"], timeout=10)
        rid = client.send_request("quick", {"name": "cancel"}, job_id="job-c")
        assert entered["cancel"].wait(10)
        client.cancel("job-c", rid)
        cancelled = client.response(rid, timeout=10)
        assert stopped["cancel"].wait(5)
        # (a machine too slow to reach the middleware within the deadline times out earlier)
        assert stopped["slow"].wait(5) or not entered["slow"].is_set()
    assert timed_out["status"] == "timeout"
    assert (cancelled["status"], cancelled["error"]["type"]) == ("error", "cancelled")


def test_registry_use_checks_its_argument() -> None:
    with pytest.raises(ValueError, match="must be callable"):
        Registry().use("not a function")  # type: ignore[arg-type]


async def test_the_chain_function_on_its_own() -> None:
    """What the testing producers reuse: run_handler_chain over any handler call."""
    order: list[str] = []

    async def first(request: ExecutionRequest, call_next: CallNext) -> Any:
        order.append("first")
        return await call_next()

    def handler(request: ExecutionRequest) -> Any:
        order.append("handler")
        return request

    sentinel: Any = object()
    result = await run_handler_chain([first], sentinel, lambda: call_handler(handler, sentinel))
    assert result is sentinel
    assert order == ["first", "handler"]
    bare = await run_handler_chain([], sentinel, lambda: call_handler(handler, sentinel))
    assert bare is sentinel
