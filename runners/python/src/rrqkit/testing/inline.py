"""``InlineProducer``: the Producer's enqueue API, each job run at once in process.

``await producer.enqueue(...)`` records the job as :class:`~rrqkit.testing.FakeProducer` does,
then runs it through the registry's handler attempt after attempt (the inline rules: retries,
backoff recorded but not slept, snoozes, timeouts) and returns its id once it is final, so
:meth:`get_job_status` already shows ``COMPLETED`` or ``FAILED``. A handler that enqueues runs
its child inline too, before it continues. ``enqueue_many`` writes every job, then runs them
in order. A debounced job runs at once (there is no trailing window to wait for).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from .fake import FakeProducer

__all__ = ["InlineProducer"]


class InlineProducer(FakeProducer):
    """A :class:`FakeProducer` whose enqueues run their jobs before returning."""

    async def _written(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is None or job.final:
                continue
            with contextlib.suppress(ValueError):  # already taken by a drain
                self._pending.remove(job_id)
            await self._run_to_end(job)
