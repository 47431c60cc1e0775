"""rrqkit for Python: a runner runtime and a producer, wire-compatible with RRQ 0.11.

Runner side::

    from rrqkit import NonRetryableError, Registry, RetryJob, SnoozeJob, job_context

    registry = Registry()

    @registry.handler("send_email")
    async def send_email(request):
        job_context().progress(0.5, "connecting")  # live progress (a no-op unless watched)
        return {"sent_to": request.params["to"]}

Producer side::

    from rrqkit import Producer

    producer = Producer({"redis_dsn": "redis://localhost:6379/0"})
    job_id = await producer.enqueue("send_email", {"to": "a@example.com"})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    BulkEnqueueError,
    DecodeError,
    EnqueueVetoed,
    NonRetryableError,
    ProducerError,
    RetryJob,
    SnoozeJob,
)
from .middleware import PendingEnqueue, ProducerMiddleware
from .models import (
    CancelRequest,
    ExecutionContext,
    ExecutionOutcome,
    ExecutionRequest,
    Hello,
    LiveOptions,
    OutcomeError,
    OutputChunk,
    Ping,
    ProgressUpdate,
)
from .registry import Registry

if TYPE_CHECKING:
    from .config import ProducerConfig
    from .live import JobContext, job_context
    from .producer import CancelResult, JobProgress, JobResult, Producer
    from .runtime import RunnerRuntime

__all__ = [
    "BulkEnqueueError",
    "CancelRequest",
    "CancelResult",
    "DecodeError",
    "EnqueueVetoed",
    "ExecutionContext",
    "ExecutionOutcome",
    "ExecutionRequest",
    "Hello",
    "JobContext",
    "JobProgress",
    "JobResult",
    "LiveOptions",
    "NonRetryableError",
    "OutcomeError",
    "OutputChunk",
    "PendingEnqueue",
    "Ping",
    "Producer",
    "ProducerConfig",
    "ProducerError",
    "ProducerMiddleware",
    "ProgressUpdate",
    "Registry",
    "RetryJob",
    "RunnerRuntime",
    "SnoozeJob",
    "__version__",
    "job_context",
]

_LAZY = {
    "Producer": "producer",
    "JobResult": "producer",
    "JobProgress": "producer",
    "CancelResult": "producer",
    "ProducerConfig": "config",
    "RunnerRuntime": "runtime",
    "JobContext": "live",
    "job_context": "live",
}


def __getattr__(name: str) -> Any:
    # The producer pulls in redis; keep `import rrqkit` light for runner start-up.
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rrqkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module_name}", __name__), name)
