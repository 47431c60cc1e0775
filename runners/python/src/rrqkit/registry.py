"""Handler registry: maps function names to handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from .middleware import RunnerMiddleware, check_runner_middleware
from .models import ExecutionRequest

__all__ = ["Handler", "Registry", "handler_names"]

#: ``async def handler(request: ExecutionRequest) -> ExecutionOutcome | Any``. Plain (sync)
#: callables are accepted too and run in a worker thread.
Handler: TypeAlias = Callable[[ExecutionRequest], Awaitable[Any] | Any]


class Registry:
    """Function name → handler.

    >>> registry = Registry()
    >>> @registry.handler("send_email")
    ... async def send_email(request): ...

    Middleware (:meth:`use`, :meth:`middleware`) wraps every handler of the registry.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._middleware: list[RunnerMiddleware] = []

    def register(self, name: str, handler: Handler, *, replace: bool = False) -> None:
        """Register ``handler`` under ``name``. Raises ValueError for an empty name, a
        non-callable handler, or a name already taken (unless ``replace=True``)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("handler name must be a non-empty string")
        if not callable(handler):
            raise ValueError(f"handler for '{name}' must be callable")
        if name in self._handlers and not replace:
            raise ValueError(f"a handler is already registered for '{name}'")
        self._handlers[name] = handler

    def handler(self, name: str | None = None, *, replace: bool = False) -> Callable[[Any], Any]:
        """Decorator form of :meth:`register`; the name defaults to the function's name."""

        def decorate(fn: Handler) -> Handler:
            self.register(name or fn.__name__, fn, replace=replace)
            return fn

        return decorate

    def use(self, middleware: RunnerMiddleware) -> Registry:
        """Add a middleware around every handler and return the registry.

        ``async def mw(request, call_next)``: ``await call_next()`` runs the rest of the chain
        and the handler, and returns what the handler returned (a value or an
        ``ExecutionOutcome``) or raises what it raised. The first middleware added is the
        outermost. A middleware may time or log around ``call_next``, change
        ``request.params`` before it, map errors (catch and raise e.g. ``NonRetryableError``,
        or return an outcome) or return without calling it; calling it twice raises
        ``RuntimeError("middleware called next twice")`` (an error outcome). Runner-side
        contract validation runs before the chain; a missing handler is ``handler_not_found``
        without running any middleware. Raises ValueError for a non-callable."""
        check_runner_middleware(middleware)
        self._middleware.append(middleware)
        return self

    def middleware(self, fn: RunnerMiddleware) -> RunnerMiddleware:
        """Decorator form of :meth:`use`; returns the function unchanged.

        >>> @registry.middleware
        ... async def timed(request, call_next):
        ...     started = time.monotonic()
        ...     try:
        ...         return await call_next()
        ...     finally:
        ...         print(request.function_name, time.monotonic() - started)
        """
        self.use(fn)
        return fn

    @property
    def middlewares(self) -> list[RunnerMiddleware]:
        """The runner middleware, outermost first (a copy)."""
        return list(self._middleware)

    def unregister(self, name: str) -> bool:
        """Remove a handler; True if one was registered."""
        return self._handlers.pop(name, None) is not None

    def get_handler(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def get_registered_functions(self) -> list[str]:
        return list(self._handlers)

    @property
    def names(self) -> list[str]:
        return list(self._handlers)

    def clear(self) -> None:
        self._handlers.clear()

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)


def handler_names(source: Any) -> list[str]:
    """The sorted handler names of a handler source: a :class:`Registry`, RRQ's registry
    (``get_registered_functions()``), or any object with a ``names`` list. Raises TypeError
    for a source that cannot list its handlers (``--list-handlers`` needs one that can)."""
    names = getattr(source, "names", None)
    if callable(names):
        names = names()
    if names is None:
        lister = getattr(source, "get_registered_functions", None)
        names = lister() if callable(lister) else None
    if names is None or isinstance(names, str | bytes):
        raise TypeError(f"a {type(source).__name__} cannot list its handlers")
    return sorted(str(name) for name in names)
