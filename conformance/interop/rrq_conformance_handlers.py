"""The standard test-handler set (conformance/handlers.md), written for RRQ 0.11's own runtime.

RRQ's ``rrq-runner`` loads runner settings from a dotted path, so the conformance harness runs:

    rrq-runner --settings rrq_conformance_handlers.settings --tcp-socket 127.0.0.1:PORT

with this directory on PYTHONPATH. It lets the harness check RRQ's released runtime against the
same cases as rrqkit's runners (RRQ interop). When the environment names an OTLP traces endpoint,
RRQ's OpenTelemetry integration is switched on with an OTLP/HTTP exporter, as a user of RRQ
would do in their own settings module.

``fail_permanently`` and ``snooze`` are deliberately not registered: RRQ 0.11's runtime has no
permanent-error or snooze API to build them from, so the cases that call them are its listed
known failures (known-failures/rrq.txt), not handlers faked here from hand-made outcomes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

from rrq.exc import RetryJob
from rrq.registry import Registry
from rrq.runner import ExecutionError, ExecutionOutcome, ExecutionRequest
from rrq.runner_settings import PythonRunnerSettings


def _param(request: ExecutionRequest, name: str, default: Any) -> Any:
    value = request.params.get(name)
    return default if value is None else value


async def echo(request: ExecutionRequest) -> Any:
    return request.params


async def inspect(request: ExecutionRequest) -> Any:
    return {
        "job_id": request.job_id,
        "request_id": request.request_id,
        "function_name": request.function_name,
        "params": request.params,
        "context": request.context.model_dump(mode="json"),
    }


async def sleep(request: ExecutionRequest) -> Any:
    ms = _param(request, "ms", 100)
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


async def fail(request: ExecutionRequest) -> ExecutionOutcome:
    return ExecutionOutcome(
        status="error",
        error=ExecutionError(
            message=_param(request, "message", "boom"),
            type=request.params.get("type"),
            code=request.params.get("code"),
        ),
    )


async def throw(request: ExecutionRequest) -> Any:
    raise RuntimeError(_param(request, "message", "boom"))


async def retry(request: ExecutionRequest) -> ExecutionOutcome:
    message = request.params.get("message")
    return ExecutionOutcome(
        status="retry",
        retry_after_seconds=request.params.get("after_seconds"),
        error=ExecutionError(message=message) if message else None,
    )


async def flaky(request: ExecutionRequest) -> Any:
    attempt = request.context.attempt
    if attempt <= _param(request, "fail_until_attempt", 1):
        if _param(request, "mode", "error") == "retry":
            raise RetryJob(f"flaky retry on attempt {attempt}", defer_seconds=0)
        return ExecutionOutcome(
            status="error",
            error=ExecutionError(message=f"flaky failure on attempt {attempt}"),
        )
    return {"attempt": attempt}


async def timeout(request: ExecutionRequest) -> Any:
    message = request.params.get("message")
    raise TimeoutError(message) if message else TimeoutError()


async def large(request: ExecutionRequest) -> Any:
    return {"data": "x" * _param(request, "bytes", 1048576)}


async def nan(request: ExecutionRequest) -> Any:
    return {"value": float("nan")}


async def crash(request: ExecutionRequest) -> Any:
    name = request.params.get("signal")
    if name:
        os.kill(os.getpid(), getattr(signal, name))
        time.sleep(1)  # noqa: ASYNC251 -- wait for the signal to end the process
    os._exit(_param(request, "code", 1))


async def noise(request: ExecutionRequest) -> Any:
    lines = _param(request, "lines", 3)
    for i in range(lines):
        print(f"noise {i}", flush=True)
        print(f"noise {i}", file=sys.stderr, flush=True)
    return {"lines": lines}


async def ignore_cancel(request: ExecutionRequest) -> Any:
    ms = _param(request, "ms", 1000)
    time.sleep(ms / 1000)  # noqa: ASYNC251 -- deliberately blocks the event loop
    return {"slept_ms": ms}


def _enable_tracing() -> None:
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not endpoint:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from rrq.integrations import otel

    service = os.environ.get("OTEL_SERVICE_NAME", "rrq-runner")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    otel.enable(service_name=service)


registry = Registry()
for _handler in (
    echo,
    inspect,
    sleep,
    fail,
    throw,
    retry,
    flaky,
    timeout,
    large,
    nan,
    crash,
    noise,
):
    registry.register(_handler.__name__, _handler)
registry.register("ignore_cancel", ignore_cancel)

_enable_tracing()
settings = PythonRunnerSettings(registry=registry)
