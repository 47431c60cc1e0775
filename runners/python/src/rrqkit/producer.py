"""The producer: enqueue jobs into Redis exactly as RRQ 0.11 does (PRODUCER.md).

Every enqueue runs one of the shared Lua scripts (``rrqkit/lua/*.lua``, byte-identical copies of
``src/store/lua``), so all writes of one enqueue are atomic. Validation happens before any I/O
(:mod:`rrqkit.producer_plan`): a call that fails validation writes nothing.

Enqueue scripts go over the producer's own pipelined connection (:mod:`rrqkit.producer_wire`):
one EVALSHA per enqueue, with no per-command client machinery. Reads, cancels, the
MULTI/EXEC of jobs with rrqkit's additive fields, and producers given a ``redis`` client or a
DSN the lane cannot serve (TLS) use redis-py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from .config import ProducerConfig, load_toml, resolve_config_path
from .errors import BulkEnqueueError, ProducerError
from .middleware import (
    PendingEnqueue,
    check_producer_middleware,
    run_after_enqueue,
    run_before_enqueue,
)
from .producer_options import invalid, pending_enqueue
from .producer_plan import (
    BULK_CHUNK_SIZE,
    MAX_PARAMS_BYTES,
    Mode,
    Plan,
    build_plan,
)
from .producer_reads import JobReads
from .producer_results import (
    CANCEL_REFUSALS,
    TERMINAL_STATUSES,
    CancelResult,
    JobProgress,
    JobResult,
)

if TYPE_CHECKING:
    from .contracts import JobCatalog

__all__ = [
    "BULK_CHUNK_SIZE",
    "CANCEL_REFUSALS",
    "MAX_PARAMS_BYTES",
    "TERMINAL_STATUSES",
    "CancelResult",
    "JobProgress",
    "JobResult",
    "Producer",
    "load_toml_catalog",
]

_ITEM_KEYS: Final = frozenset({"function_name", "params", "options"})
#: rrqkit.testing.fake builds its recorded jobs with the same function
_pending = pending_enqueue


def load_toml_catalog(path: str | os.PathLike[str] | None = None) -> JobCatalog | None:
    """The job catalog the resolved ``rrq.toml`` names in ``job_catalog`` (a directory,
    relative to the file), or None when it names none. A catalog that cannot be loaded is
    ``ProducerError`` code ``invalid_config`` (its message lists every problem)."""
    from .contracts import CatalogError, catalog_path_from_toml, load_job_catalog

    resolved = resolve_config_path(path)
    try:
        directory = catalog_path_from_toml(resolved)
        return None if directory is None else load_job_catalog(directory)
    except CatalogError as exc:
        raise ProducerError("invalid_config", f"job_catalog: {exc.message}") from None


def _bulk_message(reason: str, written: list[str], total: int) -> str:
    """A failed bulk enqueue's message: the reason, then exactly what was written."""
    is_oom = "OOM" in reason or "OutOfMemoryError" in reason
    oom = "Redis is out of memory (maxmemory reached, noeviction); " if is_oom else ""
    if not written:
        return f"{oom}{reason}; none of the {total} jobs was written"
    return (
        f"{oom}{reason}; {len(written)} of the {total} jobs were written (the first "
        f"{len(written) // BULK_CHUNK_SIZE} chunk(s) of {BULK_CHUNK_SIZE}; ids in written_ids), "
        "the rest were not"
    )


# --------------------------------------------------------------------------------------------


class Producer(JobReads):
    """Enqueue jobs and read their status.

    ``config`` is a :class:`ProducerConfig` or a mapping with its keys (``redis_dsn``,
    ``queue_name``, ``max_retries``, ``job_timeout_seconds``, ``result_ttl_seconds``,
    ``idempotency_ttl_seconds``, ``correlation_mappings``); omitted keys take the defaults.
    ``redis`` may be an existing ``redis.asyncio.Redis`` client (it must decode responses).

    Omitted settings take RRQ's built-in defaults; ``rrq.toml`` is read only by
    :meth:`from_toml`. With a ``catalog`` (:func:`rrqkit.contracts.load_job_catalog`) every
    enqueue of a catalogued function checks its params against the contract first and raises
    ``ProducerError`` code ``invalid_params`` (with ``function_name`` and ``field``) without
    writing anything; functions not in the catalog are not checked. When Redis cannot be
    reached a call fails within ``redis_connect_timeout_seconds`` (default 5) with
    ``ProducerError`` code ``redis_unavailable``, naming the DSN without its password.

    :meth:`use` adds middleware around every enqueue (:mod:`rrqkit.middleware`).
    """

    def __init__(
        self,
        config: ProducerConfig | Mapping[str, Any] | None = None,
        *,
        redis: Any = None,
        catalog: JobCatalog | None = None,
    ) -> None:
        if config is None:
            config = ProducerConfig()
        elif not isinstance(config, ProducerConfig):
            config = ProducerConfig.from_mapping(config)
        super().__init__(config, redis)
        #: The job contracts params are checked against (None: nothing is checked).
        self.catalog: JobCatalog | None = catalog
        self._middleware: list[object] = []

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str] | None = None) -> Producer:
        """Build a producer from ``rrq.toml`` (explicit path, ``RRQ_CONFIG``, ``./rrq.toml``),
        with the job catalog its ``job_catalog`` key names (relative to the file), if any; an
        unusable catalog is ``invalid_config``."""
        config = load_toml(path)
        return cls(config, catalog=load_toml_catalog(path))

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _plan(
        self,
        function_name: Any,
        params: Any,
        options: Mapping[str, Any] | None,
        extra: Mapping[str, Any],
        mode: Mode | None,
    ) -> Plan:
        """The validated script call of one enqueue (pure: no I/O)."""
        return build_plan(self.config, self.catalog, function_name, params, options, extra, mode)

    _SCRIPT_FOR: Final = {
        "enqueue": "enqueue-3.lua",
        "rate_limit": "enqueue-rate-limited-3.lua",
        "debounce": "enqueue-debounced-2.lua",
    }

    def _interpret(self, plan: Plan, reply: Any) -> str | None:
        code, job_id = int(reply[0]), reply[1]
        if code in (0, 1):
            return str(job_id)
        if code == -1:
            raise ProducerError("duplicate_job_id", "job_id already exists")
        if code == 2 and plan.mode == "rate_limit":
            return None
        raise ProducerError("redis_error", f"unexpected enqueue status {code}")

    async def _run(self, plan: Plan) -> str | None:
        name = self._SCRIPT_FOR[plan.mode]
        if not plan.extra:
            reply = await self._eval(name, plan.keys, plan.args)
        else:
            script = self._script(name)
            reply = (
                await self._call(
                    self._transaction([(script, plan.keys, plan.args), self._fields_call(plan)])
                )
            )[0]
        return self._interpret(plan, reply)

    def _fields_call(self, plan: Plan) -> tuple[Any, list[str], list[str]]:
        """The enqueue-fields-1.lua call that adds ``plan.extra`` (retry_policy, expires_at,
        the flow-control fields) to the job the plan's enqueue script writes. The enqueue
        scripts stay RRQ's verbatim; this one runs right after them in the same MULTI ... EXEC,
        so nothing can claim the job in between, and writes only to the job this call wrote
        (not to an idempotent hit's). With ``ordering_key`` it also records the job's place in
        its session (``rrq:fc:order:<key>``)."""
        fields = plan.args[1:] if plan.mode == "debounce" else plan.args
        function_name, job_params, queue = fields[1], fields[2], fields[10]
        if plan.mode == "debounce":
            key, target = plan.keys[1], "debounce"
        else:
            key, target = plan.keys[0], "job"
        return (
            self._script("enqueue-fields-1.lua"),
            [key],
            [target, function_name, job_params, queue, *plan.extra],
        )

    async def _prepare(
        self,
        function_name: Any,
        params: Any,
        options: Mapping[str, Any] | None,
        extra: Mapping[str, Any],
        mode: Mode | None,
    ) -> tuple[PendingEnqueue | None, Plan]:
        """The plan of one enqueue: without middleware straight from the arguments; with some,
        from the job the before-hooks leave (validation runs on that final job)."""
        if not self._middleware:
            return None, self._plan(function_name, params, options, extra, mode)
        job = _pending(function_name, params, options, extra)
        await run_before_enqueue(self._middleware, job)
        return job, self._plan(job.function_name, job.params, job.options, {}, mode)

    async def _after(self, job: PendingEnqueue | None, job_id: str | None) -> None:
        if job is not None and job_id is not None:
            await run_after_enqueue(self._middleware, job, job_id)

    # -- public API ------------------------------------------------------------------------

    def use(self, middleware: object) -> Producer:
        """Add a middleware around every enqueue (single, rate-limited, debounced, bulk) and
        return the producer. ``middleware`` has a ``before_enqueue(job)`` and/or an
        ``after_enqueue(job, job_id)`` method, each sync or ``async`` (see
        :class:`~rrqkit.middleware.ProducerMiddleware`):

        - before-hooks run in registration order on a :class:`~rrqkit.middleware.PendingEnqueue`
          (``function_name``, ``params``, ``options``) and may change its params and options;
          validation (options, the catalog) runs after them on the final job;
        - ``raise EnqueueVetoed(reason)`` in one refuses the enqueue: ProducerError code
          ``enqueue_vetoed``, message ``enqueue of <fn> vetoed: <reason>``; any other exception
          propagates unchanged; either way nothing is written and later hooks do not run;
        - after-hooks run in reverse registration order once the job was written, with its id
          (a debounce update's existing id); not for a rate-limited drop. An exception from an
          after-hook reaches the caller although the job IS written.

        Raises ProducerError ``invalid_argument`` for an object with neither hook."""
        check_producer_middleware(middleware)
        self._middleware.append(middleware)
        return self

    async def enqueue(
        self,
        function_name: str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """Enqueue a job; returns its id (an existing id for an idempotent hit or a debounce
        update). Options may be a mapping, keyword arguments, or both. With rate-limit options
        a dropped call raises ProducerError(``rate_limited``)."""
        if not self._middleware:  # the common call: no hooks to await
            job_id = await self._run(self._plan(function_name, params, options, kwargs, None))
            if job_id is None:
                raise ProducerError("rate_limited", "enqueue was rate-limited")
            return job_id
        job, plan = await self._prepare(function_name, params, options, kwargs, None)
        job_id = await self._run(plan)
        if job_id is None:
            raise ProducerError("rate_limited", "enqueue was rate-limited")
        await self._after(job, job_id)
        return job_id

    async def enqueue_with_rate_limit(
        self,
        function_name: str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str | None:
        """Enqueue unless a job with the same ``rate_limit_key`` was enqueued in the last
        ``rate_limit_seconds``; returns None when limited."""
        job, plan = await self._prepare(function_name, params, options, kwargs, "rate_limit")
        job_id = await self._run(plan)
        await self._after(job, job_id)
        return job_id

    async def enqueue_with_debounce(
        self,
        function_name: str,
        params: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """Trailing-edge debounce on ``debounce_key``: the job runs ``debounce_seconds`` after
        the last call, with the last call's function, params and options."""
        job, plan = await self._prepare(function_name, params, options, kwargs, "debounce")
        job_id = await self._run(plan)
        assert job_id is not None
        await self._after(job, job_id)
        return job_id

    async def enqueue_many(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """Enqueue several jobs, all or nothing. Each item is
        ``{"function_name", "params", "options"}`` (no rate-limit or debounce options). All
        items are validated before anything is written (a job id repeated in ``items`` is
        ``duplicate_job_id``; params that break their contract are ``invalid_params`` with a
        message that starts with ``items[<index>]: ``); then one script call per
        ``BULK_CHUNK_SIZE`` (500) items writes each chunk whole or not at all: Redis out of
        memory, or a job id that already exists, leaves the chunk unwritten. A failure raises
        :class:`BulkEnqueueError`, whose ``written_ids`` are exactly the jobs earlier chunks
        wrote (none for up to 500 items).

        With middleware (:meth:`use`) every item's before-hooks run, in item order, before any
        item is validated; a veto or an error fails the whole call with nothing written. The
        after-hooks run per written item, in item order (also for the items a failing call did
        write, before its BulkEnqueueError is raised: that error wins over a hook's)."""
        plans: list[Plan] = []
        jobs: list[PendingEnqueue] = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise invalid(f"item {index} must be a mapping")
            if not _ITEM_KEYS.issuperset(item):
                unknown = set(item) - _ITEM_KEYS
                raise invalid(f"unknown item key '{sorted(unknown)[0]}' in item {index}")
            fn, params, options = item.get("function_name"), item.get("params"), item.get("options")
            if self._middleware:
                jobs.append(_pending(fn, params, options, {}))
            else:
                plans.append(self._bulk_plan(index, fn, params, options))
        if self._middleware:
            # Every item's before-hooks run before anything is checked or written: all or nothing.
            for job in jobs:
                await run_before_enqueue(self._middleware, job)
            plans = [
                self._bulk_plan(index, job.function_name, job.params, job.options)
                for index, job in enumerate(jobs)
            ]
        seen: set[str] = set()
        for plan in plans:
            if plan.job_id in seen:
                raise ProducerError("duplicate_job_id", f"job_id '{plan.job_id}' is repeated")
            seen.add(plan.job_id)
        try:
            written = await self._write_bulk(plans)
        except BulkEnqueueError as exc:
            # The bulk error says what was written; it wins over an after-hook's error.
            with contextlib.suppress(Exception):
                for job, job_id in zip(jobs, exc.written_ids, strict=False):
                    await run_after_enqueue(self._middleware, job, job_id)
            raise
        for job, job_id in zip(jobs, written, strict=False):
            await run_after_enqueue(self._middleware, job, job_id)
        return written

    def _bulk_plan(self, index: int, function_name: Any, params: Any, options: Any) -> Plan:
        try:
            return self._plan(function_name, params, options, {}, "enqueue")
        except ProducerError as exc:
            if exc.field is None:
                raise
            # a contract failure names its item, so the caller can find it in the batch
            raise ProducerError(
                exc.code,
                f"items[{index}]: {exc.message}",
                function_name=exc.function_name,
                field=exc.field,
            ) from None

    async def _write_bulk(self, plans: list[Plan]) -> list[str]:
        """Writes the validated ``plans`` one chunk per script call; their ids in order."""
        written: list[str] = []
        for start in range(0, len(plans), BULK_CHUNK_SIZE):
            chunk = plans[start : start + BULK_CHUNK_SIZE]
            keys = [key for plan in chunk for key in plan.keys]
            args = [arg for plan in chunk for arg in plan.args]
            fields_calls = [self._fields_call(plan) for plan in chunk if plan.extra]
            try:
                if fields_calls:
                    script = self._script("enqueue-batch-n.lua")
                    replies = (
                        await self._call(self._transaction([(script, keys, args), *fields_calls]))
                    )[0]
                else:
                    replies = await self._eval("enqueue-batch-n.lua", keys, args)
            except ProducerError as exc:
                raise BulkEnqueueError(
                    exc.code, _bulk_message(exc.message, written, len(plans)), list(written)
                ) from None
            duplicates = [
                plan.job_id
                for plan, reply in zip(chunk, replies, strict=True)
                if int(reply[0]) == -1
            ]
            if duplicates:
                more = f" and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""
                reason = "job_id already exists: " + ", ".join(duplicates[:10]) + more
                raise BulkEnqueueError(
                    "duplicate_job_id", _bulk_message(reason, written, len(plans)), list(written)
                )
            written.extend(str(reply[1]) for reply in replies)
        return written
