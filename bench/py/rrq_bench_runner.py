"""Settings for RRQ 0.11's own Python runner in `npm run bench`:

    rrq-runner --settings rrq_bench_runner.settings --tcp-socket 127.0.0.1:PORT

(with this directory on PYTHONPATH). `echo` returns its params, like the conformance runners'
`echo`; `sleep` waits `ms` milliseconds. With RRQ_TEST_EXEC_LOG set, each invocation appends
`{"job_id", "ts_ms"}` to that file, as the conformance runners do.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from rrq.registry import Registry
from rrq.runner_settings import PythonRunnerSettings

_LOG = os.environ.get("RRQ_TEST_EXEC_LOG")


def _log(request: Any) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as f:
            f.write(
                json.dumps({"job_id": request.job_id, "ts_ms": time.time() * 1000})
                + "\n"
            )


async def echo(request: Any) -> Any:
    _log(request)
    return request.params or {}


async def sleep(request: Any) -> Any:
    _log(request)
    ms = (request.params or {}).get("ms", 100)
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


registry = Registry()
registry.register("echo", echo)
registry.register("sleep", sleep)
settings = PythonRunnerSettings(registry=registry)
