"""Handler registry: maps function names to handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

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
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

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
