"""One attempt of a job, run in process as a runner would run it (testing modes internal).

The handler gets the :class:`~rrqkit.models.ExecutionRequest` the orchestrator would send
(context with the attempt number, enqueue time, queue, deadline, trace context), runs with
:func:`rrqkit.job_context` current (progress and output are recorded on the job), sync
handlers in a worker thread, and raised exceptions map to outcomes exactly as in the runner
runtime. ``job_timeout_seconds`` is a real timer here: when it fires the handler's task is
cancelled (``asyncio.CancelledError`` in the handler) and the attempt is a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from typing import Any

from .. import outcomes
from ..live import JobContext, set_job_context
from ..models import ExecutionContext, ExecutionOutcome, ExecutionRequest, ProgressUpdate
from ..runtime import RunnerRuntime
from ..timeutil import format_rfc3339, now_ns

__all__ = ["Recorder", "run_attempt"]


class Recorder:
    """Stands in for the runtime's live channel: keeps what the handler reports.

    ``progress`` gets one dict per report (``{"progress", "message", "detail"}``), ``output``
    the text written to ``ctx.output``. Thread-safe: sync handlers report from a thread.
    """

    progress_enabled = True
    output_enabled = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.progress_reports: list[dict[str, Any]] = []
        self.output_parts: list[str] = []

    def progress(self, update: ProgressUpdate) -> None:
        report = {"progress": update.progress, "message": update.message, "detail": update.detail}
        with self._lock:
            self.progress_reports.append(report)

    def output(self, text: str) -> None:
        with self._lock:
            self.output_parts.append(text)

    def _log(self, message: str) -> None:  # JobContext logs dropped details through this
        pass


class _RuntimeView:
    """What ``RunnerRuntime._invoke`` reads of its runtime: the registry."""

    __slots__ = ("registry",)

    def __init__(self, registry: Any) -> None:
        self.registry = registry


def _request(job: Any, attempt: int) -> ExecutionRequest:
    deadline = now_ns() + job.timeout_seconds * 1_000_000_000
    return ExecutionRequest(
        request_id=uuid.uuid4().hex,
        job_id=job.id,
        function_name=job.function_name,
        # a copy per attempt, as each request is decoded anew from the job hash
        params=job.wire_params(),
        context=ExecutionContext(
            job_id=job.id,
            attempt=attempt,
            enqueue_time=job.enqueue_time,
            queue_name=job.queue_name,
            deadline=format_rfc3339(deadline),
            trace_context=job.trace_context or None,
            worker_id="rrqkit-testing",
        ),
    )


async def _invoke(registry: Any, request: ExecutionRequest, recorder: Recorder) -> Any:
    handler = registry.get_handler(request.function_name) if registry is not None else None
    if handler is None:
        return outcomes.handler_not_found(request.function_name)
    set_job_context(JobContext(recorder, request.job_id, request.request_id))  # type: ignore[arg-type]
    # The runtime's own invocation: the registry's middleware chain around the handler, sync
    # handlers in a thread, returns and exceptions mapped to outcomes (one place for it).
    return await RunnerRuntime._invoke(_RuntimeView(registry), handler, request)  # type: ignore[arg-type]


async def run_attempt(
    registry: Any, job: Any, attempt: int, recorder: Recorder
) -> ExecutionOutcome:
    """Runs one attempt of ``job`` through ``registry``'s handler; its outcome."""
    request = _request(job, attempt)
    # a task of its own: its context (job_context) and its cancellation stay with the attempt
    task = asyncio.ensure_future(_invoke(registry, request, recorder))
    done, _ = await asyncio.wait({task}, timeout=job.timeout_seconds)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return outcomes.timeout("Job execution timed out")
    outcome: ExecutionOutcome = task.result()
    return outcome
