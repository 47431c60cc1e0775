"""The producer's read side: a job's status and progress, following its output, waiting for
its end, and cancelling it (the base of :class:`~rrqkit.producer.Producer`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from .errors import ProducerError
from .producer_options import check_finite, check_name
from .producer_plan import EVENTS_PREFIX, JOB_PREFIX
from .producer_redis import RedisAccess
from .producer_results import (
    CANCEL_REFUSALS,
    JOB_STATUSES,
    TERMINAL_STATUSES,
    CancelResult,
    JobResult,
    field_int,
    output_entry,
    progress_of,
)
from .timeutil import format_rfc3339, now_ns

__all__ = ["JobReads"]


class JobReads(RedisAccess):
    """Reads and cancels of jobs by id."""

    async def get_job_status(self, job_id: str) -> JobResult | None:
        """The job's status, result and last error; None when the job hash does not exist."""
        check_name(job_id, "job_id")
        data = await self._call(self._client().hgetall(JOB_PREFIX + job_id))
        if not data:
            return None
        status = data.get("status")
        raw = data.get("result")
        result: Any = None
        if raw is not None and raw != "" and raw.lower() != "null":
            try:
                result = json.loads(raw)
            except ValueError:
                result = raw
        return JobResult(
            status=status if status in JOB_STATUSES else "UNKNOWN",
            result=result,
            last_error=data.get("last_error"),
            progress=progress_of(data),
        )

    async def tail(
        self,
        job_id: str,
        attempt: int | None = None,
        cursor: str = "0",
        block_ms: int = 1000,
    ) -> AsyncIterator[dict[str, Any]]:
        """Follow the output a job's attempt streams (live jobs, README "Live jobs"), as the TS
        producer's ``tail``: yields each entry as it is written, ``{"id", "kind": "out" | "err"
        | "log", "data"}``, ``{"id", "kind": "truncated", "dropped"}``, and ends after
        ``{"id", "kind": "closed", "status"}`` (or when the job is final, gone or on a later
        attempt and its output stays quiet). Without ``attempt``: the latest attempt, waiting
        for the first to start."""
        check_name(job_id, "job_id")
        client = self._client()
        key = JOB_PREFIX + job_id
        run = attempt or 0
        while run < 1:
            runs, status = await self._call(client.hmget(key, "runs", "status"))
            run = field_int(runs)
            if run >= 1:
                break
            if status is None or status in TERMINAL_STATUSES:
                return
            await asyncio.sleep(min(block_ms, 250) / 1000)
        stream = f"rrq:output:{job_id}:{run}"
        ending = False
        while True:
            reply = await self._call(
                client.xread({stream: cursor or "0"}, count=1000, block=block_ms)
            )
            entries = reply[0][1] if reply else []
            for entry_id, fields in entries:
                cursor = entry_id
                entry = output_entry(entry_id, fields)
                yield entry
                if entry["kind"] == "closed":
                    return
            if entries:
                ending = False
                continue
            # a quiet stream: the closed marker follows the outcome, so a final job gets one
            # more wait before the end (an attempt whose worker died never gets its marker)
            if ending:
                return
            runs, status = await self._call(client.hmget(key, "runs", "status"))
            later = field_int(runs) > run
            if status is None or later or status in TERMINAL_STATUSES:
                ending = True

    async def cancel(self, job_id: str) -> CancelResult:
        """Cancel a job, waiting or running, with the shared script ``job-cancel-2.lua``.

        A job waiting in its queue (PENDING or RETRYING) is removed from it. A job running on an
        rrqkit orchestrator (ACTIVE with a lease) ends CANCELLED at once: its attempt's later
        writes are refused by the fence, and its orchestrator is told to stop the handler (the
        runner sees a ``cancel`` frame; a Python handler gets ``asyncio.CancelledError``). A job
        running on RRQ's own orchestrator cannot be cancelled safely and is refused. Either
        way the job gets ``status=CANCELLED`` and is not retried. A refusal is a result
        (``cancelled`` False), not an error; only Redis failures raise."""
        check_name(job_id, "job_id")
        completion = now_ns()
        completion -= completion % 1000  # microseconds, as the enqueue timestamps
        reply = await self._call(
            self._script("job-cancel-2.lua")(
                keys=[JOB_PREFIX + job_id, EVENTS_PREFIX + job_id],
                args=[job_id, format_rfc3339(completion), str(self.config.result_ttl_seconds)],
            )
        )
        code, status = int(reply[0]), str(reply[1])
        if code == 1:
            return CancelResult(cancelled=True, status="CANCELLED")
        reason = CANCEL_REFUSALS.get(code)
        if reason is None:
            raise ProducerError("redis_error", f"unexpected cancel status {code}")
        return CancelResult(cancelled=False, status=None if code == -1 else status, reason=reason)

    async def wait_for_completion(
        self,
        job_id: str,
        timeout_seconds: float = 30,
        block_interval_seconds: float = 0.25,
    ) -> JobResult | None:
        """Wait until the job is COMPLETED, FAILED or CANCELLED; None on timeout."""
        check_name(job_id, "job_id")
        timeout = check_finite(timeout_seconds, "timeout_seconds", positive=True)
        interval = check_finite(block_interval_seconds, "block_interval_seconds", positive=False)
        deadline = time.monotonic() + timeout
        stream = EVENTS_PREFIX + job_id
        last_id = "$"
        client = self._client()
        while True:
            status = await self.get_job_status(job_id)
            if status is not None and status.status in TERMINAL_STATUSES:
                return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            block = min(interval, remaining) if interval > 0 else remaining
            block_ms = max(1, int(block * 1000))
            reply = await self._call(client.xread({stream: last_id}, count=1, block=block_ms))
            if reply:
                entries = reply[0][1]
                if entries:
                    last_id = entries[-1][0]
            else:
                await asyncio.sleep(0)
