"""The standard test-handler set of conformance/handlers.md.

    rrqkit-conformance-runner (--tcp-socket HOST:PORT | --unix-socket PATH | --stdio)
                              [--encoding json|msgpack]

With ``RRQ_TEST_EXEC_LOG=<path>`` every handler invocation appends one JSON line
``{"job_id", "request_id", "attempt", "function_name", "pid", "ts_ms"}`` to that file before the
handler body runs (``ts_ms``: epoch milliseconds, as conformance/handlers.md specifies).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from . import outcomes
from .errors import NonRetryableError, SnoozeJob
from .live import job_context
from .models import ExecutionOutcome, ExecutionRequest, OutcomeError
from .registry import Handler, Registry

__all__ = ["build_registry", "main"]


def _param(request: ExecutionRequest, name: str, default: Any) -> Any:
    value = request.params.get(name, default)
    return default if value is None else value


async def echo(request: ExecutionRequest) -> Any:
    return request.params


async def inspect_request(request: ExecutionRequest) -> Any:
    return {
        "job_id": request.job_id,
        "request_id": request.request_id,
        "function_name": request.function_name,
        "params": request.params,
        "context": request.context.to_wire(),
    }


async def sleep(request: ExecutionRequest) -> Any:
    ms = _param(request, "ms", 100)
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


async def fail(request: ExecutionRequest) -> ExecutionOutcome:
    return ExecutionOutcome(
        status="error",
        error=OutcomeError(
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
        error=OutcomeError(message=message) if message else None,
    )


async def flaky(request: ExecutionRequest) -> Any:
    until = _param(request, "fail_until_attempt", 1)
    mode = _param(request, "mode", "error")
    attempt = request.context.attempt
    if attempt <= until:
        if mode == "retry":
            return ExecutionOutcome(status="retry", retry_after_seconds=0)
        return outcomes.error(f"flaky failure on attempt {attempt}")
    return {"attempt": attempt}


async def timeout(request: ExecutionRequest) -> Any:
    message = request.params.get("message")
    raise TimeoutError(message) if message else TimeoutError()


async def large(request: ExecutionRequest) -> Any:
    return {"data": "x" * int(_param(request, "bytes", 1048576))}


async def nan(request: ExecutionRequest) -> Any:
    return {"value": math.nan}


async def crash(request: ExecutionRequest) -> Any:
    sys.stderr.flush()
    name = request.params.get("signal")
    if name:
        os.kill(os.getpid(), signal.Signals[str(name)])
        time.sleep(5)  # noqa: ASYNC251 - a catchable signal may need a moment; never reply
    os._exit(int(_param(request, "code", 1)))


async def noise(request: ExecutionRequest) -> Any:
    lines = int(_param(request, "lines", 3))
    for i in range(lines):
        print(f"noise {i}")
        print(f"noise {i}", file=sys.stderr)
    sys.stdout.flush()
    return {"lines": lines}


async def ignore_cancel(request: ExecutionRequest) -> Any:
    ms = _param(request, "ms", 1000)
    time.sleep(ms / 1000)  # noqa: ASYNC251 - deliberately blocks the loop, ignores cancellation
    return {"slept_ms": ms}


async def fail_permanently(request: ExecutionRequest) -> Any:
    raise NonRetryableError(_param(request, "message", "boom"))


#: snoozes so far per job_id, in this process (handlers.md: `snooze`)
_SNOOZES: dict[str, int] = {}


async def snooze(request: ExecutionRequest) -> Any:
    seconds = _param(request, "seconds", 0.1)
    times = int(_param(request, "times", 1))
    count = _SNOOZES.get(request.job_id, 0)
    if count < times:
        _SNOOZES[request.job_id] = count + 1
        raise SnoozeJob(seconds)
    return {"snoozed": times, "attempt": request.context.attempt}


async def report_progress(request: ExecutionRequest) -> Any:
    values = _param(request, "values", [0.25, 0.5, 0.75, 1])
    message = request.params.get("message")
    detail = request.params.get("detail")
    delay_ms = _param(request, "delay_ms", 0)
    ctx = job_context()
    for i, value in enumerate(values):
        ctx.progress(
            value, message if message is not None else f"step {i + 1} of {len(values)}", detail
        )
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
    return {"reported": len(values)}


async def write_output(request: ExecutionRequest) -> Any:
    lines = int(_param(request, "lines", 3))
    text = _param(request, "text", "line")
    size = request.params.get("size")
    as_json = bool(request.params.get("json"))
    delay_ms = _param(request, "delay_ms", 0)
    out = job_context().output
    for i in range(lines):
        if size is not None:
            out.write("x" * int(size))
        elif as_json:
            out.json({"line": i, "text": text})
        else:
            out.write(f"{text} {i}\n")
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
    return {"lines": lines}


HANDLERS: dict[str, Handler] = {
    "echo": echo,
    "inspect": inspect_request,
    "sleep": sleep,
    "fail": fail,
    "throw": throw,
    "retry": retry,
    "flaky": flaky,
    "timeout": timeout,
    "large": large,
    "nan": nan,
    "crash": crash,
    "noise": noise,
    "ignore_cancel": ignore_cancel,
    "fail_permanently": fail_permanently,
    "snooze": snooze,
    "report_progress": report_progress,
    "write_output": write_output,
}


def _logged(name: str, handler: Handler, path: str) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: ExecutionRequest) -> Any:
        line = json.dumps(
            {
                "job_id": request.job_id,
                "request_id": request.request_id,
                "attempt": request.context.attempt,
                "function_name": request.function_name,
                "pid": os.getpid(),
                "ts_ms": time.time() * 1000,
            },
            separators=(",", ":"),
        )
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        return await handler(request)

    return wrapper


def build_registry(exec_log: str | None = None) -> Registry:
    """The conformance handler set; with ``exec_log`` every invocation is logged there."""
    registry = Registry()
    for name, handler in HANDLERS.items():
        registry.register(name, _logged(name, handler, exec_log) if exec_log else handler)
    return registry


def main(argv: Sequence[str] | None = None) -> NoReturn:
    from .cli import run_runner

    run_runner(
        "rrqkit-conformance-runner",
        argv,
        lambda _args: build_registry(os.environ.get("RRQ_TEST_EXEC_LOG") or None),
    )


if __name__ == "__main__":
    main()
