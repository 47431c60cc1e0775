"""Middleware: hooks around every enqueue (producer side) and around every handler (runner side).

The chains are plain functions over a list of middlewares, so :class:`~rrqkit.producer.Producer`,
the runner runtime and the testing producers run exactly the same rules.

Producer middleware (:meth:`Producer.use <rrqkit.producer.Producer.use>`):

- ``before_enqueue(job)`` hooks run in registration order on a mutable :class:`PendingEnqueue`;
  they may change its ``params`` and ``options``. A hook that raises (or returns)
  :class:`EnqueueVetoed` vetoes the enqueue (``ProducerError`` code ``enqueue_vetoed``); any other
  exception propagates unchanged. Either way nothing is written and later hooks do not run.
  Validation (options, the catalog's params check) runs after the hooks, on the final job.
- ``after_enqueue(job, job_id)`` hooks run in reverse registration order (an onion) once the job
  was written; an exception from one propagates to the caller although the job IS written.

Runner middleware (:meth:`Registry.use <rrqkit.registry.Registry.use>`): ``async def mw(request,
call_next)``; ``await call_next()`` runs the rest of the chain and the handler and returns what
the handler returned (a value or an ``ExecutionOutcome``) or raises what it raised. The first
registered middleware is the outermost.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from .errors import EnqueueVetoed, ProducerError
from .models import ExecutionRequest

__all__ = [
    "CallNext",
    "EnqueueVetoed",
    "PendingEnqueue",
    "ProducerMiddleware",
    "RunnerMiddleware",
    "call_handler",
    "check_producer_middleware",
    "check_runner_middleware",
    "run_after_enqueue",
    "run_before_enqueue",
    "run_handler_chain",
]

# -- producer side ------------------------------------------------------------------------------


@dataclass(eq=False)
class PendingEnqueue:
    """One enqueue before it is validated and written; ``before_enqueue`` hooks may change it.

    ``params`` and ``options`` are shallow copies of the caller's (changing them never touches
    the caller's objects); ``options`` holds the options mapping and the keyword options merged.
    ``function_name`` is fixed: a middleware changes what is enqueued, not which job.
    """

    function_name: str
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "function_name" and "function_name" in self.__dict__:
            raise AttributeError("PendingEnqueue.function_name cannot be changed")
        super().__setattr__(name, value)


class ProducerMiddleware(Protocol):
    """The full shape of a producer middleware. Both hooks are optional at runtime (an object
    with only one of them is accepted) and each may be sync or ``async``.

    >>> class Tenant:
    ...     async def before_enqueue(self, job):
    ...         job.params.setdefault("tenant", "acme")
    ...     async def after_enqueue(self, job, job_id):
    ...         print("enqueued", job.function_name, job_id)
    """

    def before_enqueue(self, job: PendingEnqueue) -> Awaitable[None] | None:
        """Runs before validation and the write; may change ``job`` or veto it."""

    def after_enqueue(self, job: PendingEnqueue, job_id: str) -> Awaitable[None] | None:
        """Runs after the job was written, with its id (the existing job's id when a debounce
        updated it). Not called when nothing was written (a rate-limited drop, a veto, an
        error)."""


_HOOKS = ("before_enqueue", "after_enqueue")


def check_producer_middleware(middleware: object) -> None:
    """Raises ``ProducerError`` ``invalid_argument`` unless ``middleware`` has at least one of
    the hooks and each hook it has is callable."""
    hooks = [getattr(middleware, hook, None) for hook in _HOOKS]
    if all(hook is None for hook in hooks) or any(
        hook is not None and not callable(hook) for hook in hooks
    ):
        raise ProducerError(
            "invalid_argument",
            "a producer middleware must have a callable before_enqueue and/or after_enqueue",
        )


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def run_before_enqueue(middlewares: Sequence[object], job: PendingEnqueue) -> None:
    """Runs every ``before_enqueue`` hook in registration order. A veto (an
    :class:`EnqueueVetoed` raised or returned) is raised again naming the function
    (``enqueue of <fn> vetoed: <reason>``); other exceptions propagate unchanged. The first one
    stops the chain."""
    for middleware in middlewares:
        hook = getattr(middleware, "before_enqueue", None)
        if hook is None:
            continue
        try:
            returned = await _maybe_await(hook(job))
        except EnqueueVetoed as exc:
            named = exc.for_function(job.function_name)
            if named is exc:
                raise
            raise named from exc
        if isinstance(returned, EnqueueVetoed):
            raise returned.for_function(job.function_name)


async def run_after_enqueue(
    middlewares: Sequence[object], job: PendingEnqueue, job_id: str
) -> None:
    """Runs every ``after_enqueue`` hook in reverse registration order with the written job's
    id. The first exception stops the chain and propagates (the job stays written)."""
    for middleware in reversed(middlewares):
        hook = getattr(middleware, "after_enqueue", None)
        if hook is not None:
            await _maybe_await(hook(job, job_id))


# -- runner side --------------------------------------------------------------------------------

#: ``await call_next()`` runs the rest of the chain; it may be called once.
CallNext: TypeAlias = Callable[[], Awaitable[Any]]

#: ``async def mw(request: ExecutionRequest, call_next: CallNext) -> Any``.
RunnerMiddleware: TypeAlias = Callable[[ExecutionRequest, CallNext], Awaitable[Any]]


def check_runner_middleware(middleware: object) -> None:
    """Raises ValueError unless ``middleware`` is callable (as :meth:`Registry.register` does
    for a handler)."""
    if not callable(middleware):
        raise ValueError("a runner middleware must be callable: async def mw(request, call_next)")


async def call_handler(handler: Callable[..., Any], request: ExecutionRequest) -> Any:
    """Runs one handler as the runtime always has: a coroutine function is awaited, a plain
    callable runs in a worker thread (with the caller's context variables) and an awaitable it
    returns is awaited."""
    if inspect.iscoroutinefunction(handler):
        return await handler(request)
    result = await asyncio.to_thread(handler, request)
    return await _maybe_await(result)


async def run_handler_chain(
    middlewares: Sequence[RunnerMiddleware],
    request: ExecutionRequest,
    handler: Callable[[], Awaitable[Any]],
) -> Any:
    """Runs ``request`` through ``middlewares`` (first = outermost) and then ``handler`` (a
    zero-argument coroutine function, e.g. ``lambda: call_handler(fn, request)``). Returns what
    the outermost middleware returns; a middleware that calls ``call_next`` a second time gets
    ``RuntimeError("middleware called next twice")``."""

    def link(index: int) -> CallNext:
        called = False

        async def call_next() -> Any:
            nonlocal called
            if called:
                raise RuntimeError("middleware called next twice")
            called = True
            if index == len(middlewares):
                return await handler()
            return await _maybe_await(middlewares[index](request, link(index + 1)))

        return call_next

    return await link(0)()
