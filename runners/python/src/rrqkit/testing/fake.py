"""``FakeProducer``: the Producer's enqueue API, recorded in memory (no Redis, no network).

Every enqueue goes through the same steps as :class:`rrqkit.Producer`'s: the producer
middleware before-hooks, then the same validation (options, params, the catalog check, which
is the real producer's own planning code), then the write (here: a :class:`FakeJob`), then the
after-hooks. :meth:`FakeProducer.drain` runs the recorded jobs through the registry's handlers
with the inline rules (:mod:`rrqkit.testing.rules`).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import ProducerConfig
from ..errors import BulkEnqueueError, ProducerError
from ..middleware import PendingEnqueue, run_after_enqueue, run_before_enqueue
from ..producer import TERMINAL_STATUSES, JobResult, Producer, _pending
from ..timeutil import parse_rfc3339
from ._attempt import Recorder, run_attempt
from .rules import AttemptState, InlineDefaults, decide, resolve_policy

if TYPE_CHECKING:
    from ..contracts import JobCatalog
    from ..registry import Registry

__all__ = ["DrainLimitError", "FakeJob", "FakeProducer"]


class DrainLimitError(RuntimeError):
    """``drain()`` ran more executions than ``InlineDefaults.max_executions`` (10,000)."""


@dataclass(slots=True)
class FakeJob:
    """One recorded job: what the producer wrote and, once run, how it ended.

    ``params`` and ``options`` are the final ones (after middleware); ``status`` is
    ``PENDING``, ``ACTIVE``, ``RETRYING``, ``COMPLETED`` or ``FAILED``; ``attempts`` counts
    attempts (not snoozes). Delays are recorded, never slept: ``deferred_seconds`` before the
    first run, ``retry_delays`` between attempts, ``snooze_delays`` per snooze.
    """

    id: str
    function_name: str
    params: dict[str, Any]
    options: dict[str, Any]
    queue_name: str
    enqueue_time: str
    timeout_seconds: int
    max_retries: int
    trace_context: dict[str, str] = field(default_factory=dict)
    retry_policy: str | None = None
    status: str = "PENDING"
    attempts: int = 0
    snoozes: int = 0
    result: Any = None
    last_error: str | None = None
    error_type: str | None = None
    deferred_seconds: float = 0
    retry_delays: list[float] = field(default_factory=list)
    snooze_delays: list[float] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""
    #: the params as stored (canonical JSON): each attempt decodes its own copy
    params_json: str = "{}"

    def wire_params(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.params_json)
        return value

    @property
    def final(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_result(self) -> JobResult:
        return JobResult(status=self.status, result=self.result, last_error=self.last_error)


def _fields(plan: Any) -> tuple[list[str], dict[str, str]]:
    """The job hash fields a plan would write (as the Lua scripts read their arguments)."""
    fields = plan.args[1:16] if plan.mode == "debounce" else plan.args[:15]
    extra = dict(zip(plan.extra[::2], plan.extra[1::2], strict=True))
    return fields, extra


def _make(pending: PendingEnqueue, plan: Any) -> FakeJob:
    """The job a plan would write, as the orchestrator will read it."""
    fields, extra = _fields(plan)
    job_id, enqueue_time, run_at = fields[0], fields[3], fields[6]
    deferred = max(0, parse_rfc3339(run_at) - parse_rfc3339(enqueue_time)) / 1e9
    return FakeJob(
        id=job_id,
        function_name=fields[1],
        params=json.loads(fields[2]),
        options=dict(pending.options),
        queue_name=fields[10],
        enqueue_time=enqueue_time,
        max_retries=int(fields[7]),
        timeout_seconds=int(fields[8]),
        trace_context=json.loads(fields[12]) if fields[12] else {},
        retry_policy=extra.get("retry_policy"),
        deferred_seconds=deferred,
        params_json=fields[2],
    )


class FakeProducer:
    """A producer that records jobs in memory. See the module docs and docs/testing.md.

    ``registry`` holds the handlers :meth:`drain` runs; ``catalog`` checks params as the real
    producer does; ``config`` (a :class:`~rrqkit.config.ProducerConfig` or mapping) gives the
    producer defaults (queue, ``max_retries`` 5, ``job_timeout_seconds`` 300); ``defaults``
    the orchestrator settings of the inline rules.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        catalog: JobCatalog | None = None,
        *,
        config: ProducerConfig | Mapping[str, Any] | None = None,
        defaults: InlineDefaults | None = None,
    ) -> None:
        # Only its pure planning (validation and encoding) is used: it never connects.
        self._planner = Producer(config, catalog=catalog)
        self.registry = registry
        self.defaults = defaults or InlineDefaults(
            default_max_retries=self._planner.config.max_retries
        )
        self._jobs: dict[str, FakeJob] = {}
        self._pending: deque[str] = deque()
        self._unique: dict[str, tuple[str, float]] = {}
        self._rate: dict[str, float] = {}
        self._debounce: dict[str, str] = {}
        self.executions = 0

    @property
    def catalog(self) -> JobCatalog | None:
        return self._planner.catalog

    @property
    def config(self) -> ProducerConfig:
        return self._planner.config

    # -- recorded jobs ---------------------------------------------------------------------

    @property
    def jobs(self) -> list[FakeJob]:
        """Every recorded job, in enqueue order."""
        return list(self._jobs.values())

    def jobs_for(self, function_name: str) -> list[FakeJob]:
        return [job for job in self._jobs.values() if job.function_name == function_name]

    def job(self, job_id: str) -> FakeJob | None:
        return self._jobs.get(job_id)

    def clear(self) -> None:
        """Forget every job and key (unique, rate-limit, debounce)."""
        self._jobs.clear()
        self._pending.clear()
        self._unique.clear()
        self._rate.clear()
        self._debounce.clear()

    # -- middleware ------------------------------------------------------------------------

    def use(self, middleware: object) -> FakeProducer:
        """Add a producer middleware, as :meth:`rrqkit.Producer.use` (``before_enqueue`` /
        ``after_enqueue`` hooks; the same chain runs)."""
        self._planner.use(middleware)
        return self

    async def __aenter__(self) -> FakeProducer:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing to close; kept for the Producer's API."""

    # -- enqueue ---------------------------------------------------------------------------

    async def _prepare(
        self,
        function_name: Any,
        params: Any,
        options: Mapping[str, Any] | None,
        extra: Mapping[str, Any],
        mode: Any,
    ) -> tuple[PendingEnqueue, Any, PendingEnqueue | None]:
        """The real producer's steps before a write: the before-hooks, then validation of the
        final job. The job as recorded, its plan, and the job the after-hooks get."""
        hooked, plan = await self._planner._prepare(function_name, params, options, extra, mode)
        return hooked or _pending(function_name, params, options, extra), plan, hooked

    def _record(self, pending: Any, plan: Any) -> FakeJob:
        job = _make(pending, plan)
        self._jobs[job.id] = job
        self._pending.append(job.id)
        return job

    def _write(self, pending: Any, plan: Any) -> str | None:
        """The single-process equivalent of the enqueue scripts: the job id written (or the
        existing one for a unique-key hit or a debounce update), None when rate-limited."""
        now = time.monotonic()
        if plan.mode == "rate_limit":
            key = plan.keys[2]
            if self._rate.get(key, 0) > now:
                return None
            self._rate[key] = now + math.ceil(float(plan.args[-1]))
        if plan.mode == "debounce":
            existing = self._jobs.get(self._debounce.get(plan.keys[1], ""))
            if existing is not None and existing.status == "PENDING":
                # the pending job takes the last call's function, params and options
                updated = _make(pending, plan)
                updated.id = existing.id
                self._jobs[existing.id] = updated
                return existing.id
        unique = plan.keys[2] if plan.mode == "enqueue" else ""
        if unique and unique != "rrq:idempotency:":
            hit = self._unique.get(unique)
            if hit is not None and hit[1] > now and hit[0] in self._jobs:
                return hit[0]
        if plan.job_id in self._jobs:
            raise ProducerError("duplicate_job_id", "job_id already exists")
        job = self._record(pending, plan)
        if unique and unique != "rrq:idempotency:":
            self._unique[unique] = (job.id, now + int(plan.args[15]))
        if plan.mode == "debounce":
            self._debounce[plan.keys[1]] = job.id
        return job.id

    async def _enqueue(
        self,
        function_name: Any,
        params: Any,
        options: Mapping[str, Any] | None,
        extra: Mapping[str, Any],
        mode: Any,
    ) -> str | None:
        job, plan, hooked = await self._prepare(function_name, params, options, extra, mode)
        job_id = self._write(job, plan)
        if job_id is None and mode is None:
            raise ProducerError("rate_limited", "enqueue was rate-limited")
        await self._planner._after(hooked, job_id)
        if job_id is not None:
            await self._written([job_id])
        return job_id

    async def _written(self, job_ids: Sequence[str]) -> None:
        """Called after jobs were written; the inline producer runs them here."""

    async def enqueue(
        self,
        function_name: str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """As :meth:`rrqkit.Producer.enqueue`: the job's id (an existing id for a unique-key hit
        or a debounce update); a rate-limited call raises ``ProducerError(rate_limited)``."""
        job_id = await self._enqueue(function_name, params, options, kwargs, None)
        assert job_id is not None
        return job_id

    async def enqueue_with_rate_limit(
        self,
        function_name: str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str | None:
        """None when a job with the same ``rate_limit_key`` was enqueued in the last
        ``rate_limit_seconds`` (real time)."""
        return await self._enqueue(function_name, params, options, kwargs, "rate_limit")

    async def enqueue_with_debounce(
        self,
        function_name: str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """While the job of ``debounce_key`` has not run, a call replaces its function, params
        and options and returns its id."""
        job_id = await self._enqueue(function_name, params, options, kwargs, "debounce")
        assert job_id is not None
        return job_id

    async def enqueue_many(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """All or nothing, as :meth:`rrqkit.Producer.enqueue_many`: hooks and validation of
        every item first; a job id repeated or already recorded writes nothing."""
        jobs: list[PendingEnqueue] = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ProducerError("invalid_argument", f"item {index} must be a mapping")
            unknown = set(item) - {"function_name", "params", "options"}
            if unknown:
                message = f"unknown item key '{sorted(unknown)[0]}' in item {index}"
                raise ProducerError("invalid_argument", message)
            fn, params, options = item.get("function_name"), item.get("params"), item.get("options")
            if not self._planner._middleware:
                self._planner._bulk_plan(index, fn, params, options)  # checked in item order
            jobs.append(_pending(fn, params, options, {}))
        # as the real producer: every item's before-hooks, then every item's validation
        for job in jobs:
            await run_before_enqueue(self._planner._middleware, job)
        plans = [
            self._planner._bulk_plan(index, job.function_name, job.params, job.options)
            for index, job in enumerate(jobs)
        ]
        seen: set[str] = set()
        for plan in plans:
            if plan.job_id in seen:
                raise ProducerError("duplicate_job_id", f"job_id '{plan.job_id}' is repeated")
            seen.add(plan.job_id)
        taken = [plan.job_id for plan in plans if plan.job_id in self._jobs]
        if taken:
            reason = "job_id already exists: " + ", ".join(taken[:10])
            message = f"{reason}; none of the {len(plans)} jobs was written"
            raise BulkEnqueueError("duplicate_job_id", message, [])
        ids = [self._record(job, plan).id for job, plan in zip(jobs, plans, strict=True)]
        for job, job_id in zip(jobs, ids, strict=True):
            await run_after_enqueue(self._planner._middleware, job, job_id)
        await self._written(ids)
        return ids

    # -- status ----------------------------------------------------------------------------

    async def get_job_status(self, job_id: str) -> JobResult | None:
        """The job's status, result and last error; None for an unknown id."""
        job = self._jobs.get(job_id)
        return None if job is None else job.to_result()

    async def wait_for_completion(
        self,
        job_id: str,
        timeout_seconds: float = 30,
        block_interval_seconds: float = 0.25,
    ) -> JobResult | None:
        """The job's final state, or None at once when it is not final (nothing runs a fake
        producer's jobs but :meth:`drain`; an inline producer's are final when enqueued)."""
        job = self._jobs.get(job_id)
        return job.to_result() if job is not None and job.final else None

    # -- running ---------------------------------------------------------------------------

    async def drain(self) -> list[FakeJob]:
        """Runs every pending job, including jobs enqueued while draining, to its final
        status; the jobs that ran. Raises :class:`DrainLimitError` after
        ``defaults.max_executions`` executions in all."""
        ran: dict[str, FakeJob] = {}
        while self._pending:
            job = self._jobs.get(self._pending.popleft())
            if job is None or job.final:
                continue
            await self._run_once(job)
            ran[job.id] = job
            if not job.final:
                self._pending.append(job.id)
        return list(ran.values())

    async def _run_to_end(self, job: FakeJob) -> None:
        """Runs ``job`` attempt after attempt until it is final (the inline producer)."""
        while not job.final:
            await self._run_once(job)

    async def _run_once(self, job: FakeJob) -> None:
        """One execution of ``job`` (an attempt, or a run that snoozes) and its decision."""
        if self.executions >= self.defaults.max_executions:
            raise DrainLimitError(
                f"stopped after {self.executions} executions "
                f"(max_executions {self.defaults.max_executions}): do jobs keep enqueueing?"
            )
        self.executions += 1
        job.status = "ACTIVE"
        recorder = Recorder()
        started = time.monotonic()
        outcome = await run_attempt(self.registry, job, job.attempts + 1, recorder)
        job.progress += recorder.progress_reports
        job.output += "".join(recorder.output_parts)
        elapsed = sum(job.retry_delays) + sum(job.snooze_delays) + time.monotonic() - started
        policy = resolve_policy(self.defaults, job.function_name, job.retry_policy)
        state = AttemptState(
            job.attempts, job.max_retries, job.snoozes, elapsed, job.timeout_seconds
        )
        decision = decide(outcome, state, policy, self.defaults)
        if decision.kind == "snooze":
            job.snoozes += 1
            job.snooze_delays.append(decision.delay_seconds)
            job.status = "PENDING"
            return
        job.attempts += 1
        if decision.kind == "complete":
            job.status, job.result = "COMPLETED", decision.result
            return
        job.last_error, job.error_type = decision.error, decision.error_type
        if decision.kind == "retry":
            job.retry_delays.append(decision.delay_seconds)
            job.status = "RETRYING"
        else:
            job.status = "FAILED"
