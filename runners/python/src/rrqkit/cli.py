"""``rrqkit-runner``: run handlers from a registry for an orchestrator.

    rrqkit-runner --settings myapp.handlers:registry --tcp-socket 127.0.0.1:9000
    rrqkit-runner --settings myapp.handlers.registry --unix-socket /tmp/x/runner.sock
    rrqkit-runner --settings myapp.handlers:registry --stdio --encoding msgpack

``--settings`` (alias ``--registry``) names a :class:`~rrqkit.registry.Registry`, or a settings
object holding one in ``.registry`` (RRQ's ``PythonRunnerSettings`` works too), as
``module:attr`` or ``dotted.module.attr``. The current directory is put on ``sys.path``.

    rrqkit-runner --settings myapp.handlers:registry --list-handlers

prints ``{"runtime":"python","version":"…","handlers":["a","b"]}`` (names sorted) and exits 0
without listening (``rrq jobs check`` uses it). ``RRQ_JOB_CATALOG=<dir>`` (or ``run_runner(...,
catalog=...)``) checks the params of catalogued functions before their handler runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import ipaddress
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from ._version import __version__
from .codec import Encoding

if TYPE_CHECKING:
    from .contracts import JobCatalog

__all__ = [
    "RunnerArgs",
    "load_handler_source",
    "main",
    "new_event_loop",
    "parse_tcp_socket",
    "run_runner",
]

_FORCED_EXIT_AFTER = 0.5  # seconds the event loop gets to acknowledge SIGTERM


class UsageError(Exception):
    pass


def parse_tcp_socket(value: str, *, allow_remote: bool | None = None) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (IPv6 as ``[::1]:PORT``; ``localhost`` is 127.0.0.1).

    A non-loopback host is refused unless ``RRQ_RUNNER_ALLOW_REMOTE=1``.
    """
    if allow_remote is None:
        allow_remote = os.environ.get("RRQ_RUNNER_ALLOW_REMOTE") == "1"
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise UsageError(f"invalid --tcp-socket {value!r}: expected [IPv6]:PORT")
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise UsageError(f"invalid --tcp-socket {value!r}: expected HOST:PORT")
        if ":" in host:
            raise UsageError(f"invalid --tcp-socket {value!r}: write IPv6 hosts as [addr]:PORT")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"invalid --tcp-socket {value!r}: port must be 0-65535")
    port = int(port_text)
    if host.lower() == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not allow_remote:
            raise UsageError(
                f"--tcp-socket host {host!r} must be a loopback IP address or localhost "
                "(set RRQ_RUNNER_ALLOW_REMOTE=1 to allow other hosts)"
            ) from None
        return host, port
    if not address.is_loopback and not allow_remote:
        raise UsageError(
            f"--tcp-socket host {host} is not a loopback address "
            "(set RRQ_RUNNER_ALLOW_REMOTE=1 to allow it)"
        )
    return host, port


def _resolve_object(spec: str) -> Any:
    if ":" in spec:
        module_name, attr_path = spec.split(":", 1)
        candidates = [(module_name, attr_path)]
    else:
        parts = spec.split(".")
        candidates = [
            (".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)
        ]
    if not candidates or not all(m and a for m, a in candidates):
        raise UsageError(f"invalid settings path {spec!r}: use module:attr or module.attr")
    last_error: Exception | None = None
    for module_name, attr_path in candidates:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only try a shorter module path when this exact module does not exist.
            if exc.name is not None and module_name.startswith(exc.name):
                last_error = exc
                continue
            raise
        obj: Any = module
        try:
            for part in attr_path.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            raise UsageError(f"{spec!r}: {exc}") from None
        return obj
    raise UsageError(f"cannot import settings {spec!r}: {last_error}")


def load_handler_source(spec: str) -> Any:
    """Import ``spec`` and return the registry it names (or the one its object holds)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    obj = _resolve_object(spec)
    if hasattr(obj, "get_handler"):
        return obj
    registry = getattr(obj, "registry", None)
    if registry is not None and hasattr(registry, "get_handler"):
        return registry
    raise UsageError(
        f"{spec!r} is a {type(obj).__name__}, not a Registry or an object with a .registry"
    )


@dataclass(slots=True)
class RunnerArgs:
    settings: str | None
    tcp_socket: str | None
    unix_socket: str | None
    stdio: bool
    encoding: Encoding
    list_handlers: bool = False


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The runner's event loop: uvloop's (the ``fast`` extra) when installed, else asyncio's.
    ``RRQKIT_EVENT_LOOP=asyncio`` forces asyncio's, ``uvloop`` requires uvloop (exit 2 without
    it); empty or ``auto`` picks."""
    choice = os.environ.get("RRQKIT_EVENT_LOOP", "").strip().lower() or "auto"
    if choice not in ("auto", "asyncio", "uvloop"):
        raise UsageError(f"RRQKIT_EVENT_LOOP={choice!r}: expected auto, asyncio or uvloop")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise UsageError(
                    "RRQKIT_EVENT_LOOP=uvloop but uvloop is not installed "
                    "(pip install 'rrqkit[fast]')"
                ) from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _parser(prog: str, with_settings: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="rrqkit Python runner")
    if with_settings:
        parser.add_argument(
            "--settings",
            "--registry",
            dest="settings",
            required=True,
            help="Registry (or settings object with .registry) as module:attr or module.attr",
        )
    # required unless --list-handlers (checked in _parse; argparse cannot say "unless")
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--tcp-socket", metavar="HOST:PORT", help="listen on loopback TCP")
    transport.add_argument("--unix-socket", metavar="PATH", help="listen on a Unix socket")
    transport.add_argument("--stdio", action="store_true", help="frames on stdin/stdout")
    parser.add_argument("--encoding", choices=["json", "msgpack"], default="json")
    parser.add_argument(
        "--list-handlers",
        action="store_true",
        help="print the registered handler names as one JSON line and exit",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _parse(prog: str, argv: Sequence[str] | None, with_settings: bool) -> RunnerArgs:
    parser = _parser(prog, with_settings)
    ns = parser.parse_args(argv)
    if not ns.list_handlers and not (ns.tcp_socket or ns.unix_socket or ns.stdio):
        parser.error("one of the arguments --tcp-socket --unix-socket --stdio is required")
    return RunnerArgs(
        settings=getattr(ns, "settings", None),
        tcp_socket=ns.tcp_socket,
        unix_socket=ns.unix_socket,
        stdio=bool(ns.stdio),
        encoding=ns.encoding,
        list_handlers=bool(ns.list_handlers),
    )


def _fail(prog: str, message: str, code: int = 2) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _load_source(args: RunnerArgs, source_factory: Callable[[RunnerArgs], Any] | None) -> Any:
    if source_factory is not None:
        return source_factory(args)
    assert args.settings is not None
    return load_handler_source(args.settings)


def _list_handlers(
    prog: str, args: RunnerArgs, source_factory: Callable[[RunnerArgs], Any] | None
) -> NoReturn:
    """``--list-handlers``: one JSON line on stdout, exit 0, no transport."""
    from .registry import handler_names

    try:
        # what user modules print while importing must not mix with the JSON line
        with contextlib.redirect_stdout(sys.stderr):
            names = handler_names(_load_source(args, source_factory))
    except (UsageError, TypeError) as exc:
        _fail(prog, str(exc), 1)
    line = {"runtime": "python", "version": __version__, "handlers": names}
    print(json.dumps(line, separators=(",", ":")), flush=True)
    sys.exit(0)


def _resolve_catalog(prog: str, catalog: JobCatalog | str | os.PathLike[str] | None) -> Any:
    """The catalog to validate with: ``catalog`` (loaded when it is a directory), else the one
    ``RRQ_JOB_CATALOG`` names, else None. An unusable catalog stops the runner (exit 1)."""
    if catalog is None and not os.environ.get("RRQ_JOB_CATALOG", "").strip():
        return None
    from .contracts import CatalogError, catalog_from_env, load_job_catalog

    try:
        if catalog is None:
            return catalog_from_env()
        if isinstance(catalog, str | os.PathLike):
            return load_job_catalog(catalog)
        return catalog
    except CatalogError as exc:
        _fail(prog, str(exc), 1)


def run_runner(
    prog: str,
    argv: Sequence[str] | None,
    source_factory: Callable[[RunnerArgs], Any] | None = None,
    *,
    catalog: JobCatalog | str | os.PathLike[str] | None = None,
    tags: Iterable[str] | None = None,
) -> NoReturn:
    """Parse the runner command line, then serve until stopped; never returns.

    ``source_factory`` builds the handler source; without it ``--settings`` is required.
    ``catalog`` (a :class:`~rrqkit.contracts.JobCatalog` or its directory; default: the one
    ``RRQ_JOB_CATALOG`` names) turns on the params check of catalogued functions.
    ``tags`` are the capability tags the hello announces, merged with ``RRQ_RUNNER_TAGS``
    (a settings object's ``tags`` attribute is used when ``tags`` is None).
    """
    from . import parent_guard, stdio_guard
    from .runtime import RunnerRuntime

    args = _parse(prog, argv, with_settings=source_factory is None)
    if args.list_handlers:
        _list_handlers(prog, args, source_factory)
    job_catalog = _resolve_catalog(prog, catalog)
    stdio_fds: tuple[int, int] | None = None
    if args.stdio:
        # Before any user module is imported: nothing else may ever write to the frame stream.
        stdio_fds = stdio_guard.install()
    host_port: tuple[str, int] | None = None
    try:
        if args.tcp_socket is not None:
            host_port = parse_tcp_socket(args.tcp_socket)
    except UsageError as exc:
        _fail(prog, str(exc))

    try:
        loop = new_event_loop()
    except UsageError as exc:
        _fail(prog, str(exc))
    asyncio.set_event_loop(loop)
    acknowledged = threading.Event()
    signalled = threading.Event()
    runtime: RunnerRuntime | None = None

    def acknowledge_stop() -> None:
        acknowledged.set()
        if runtime is None:
            os._exit(0)
        runtime.stop()

    def force_exit_unless_acknowledged() -> None:
        if not acknowledged.wait(_FORCED_EXIT_AFTER):
            os._exit(0)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signalled.is_set():
            os._exit(1)  # a second signal: stop now
        signalled.set()
        try:
            loop.call_soon_threadsafe(acknowledge_stop)
        except RuntimeError:
            os._exit(0)
        threading.Thread(target=force_exit_unless_acknowledged, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent_guard.install()

    try:
        source = _load_source(args, source_factory)
    except UsageError as exc:
        _fail(prog, str(exc))
    if tags is None and args.settings is not None:
        tags = getattr(_resolve_object(args.settings), "tags", None)
    try:
        runtime = RunnerRuntime(source, tags=tags, catalog=job_catalog)
    except (TypeError, ValueError) as exc:
        _fail(prog, f"capability tags: {exc}")

    exit_code = 0
    try:
        if stdio_fds is not None:
            clean = loop.run_until_complete(
                runtime.serve_stdio(stdio_fds[0], stdio_fds[1], encoding=args.encoding)
            )
            exit_code = 0 if clean else 1
        elif args.unix_socket is not None:
            loop.run_until_complete(runtime.serve_unix(args.unix_socket, encoding=args.encoding))
        else:
            assert host_port is not None
            loop.run_until_complete(
                runtime.serve_tcp(host_port[0], host_port[1], encoding=args.encoding)
            )
    except OSError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        exit_code = 1
    acknowledged.set()
    runtime.telemetry.shutdown(2.0)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    # Handlers still running in threads (or ignoring cancellation) must not delay the exit.
    os._exit(exit_code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    run_runner("rrqkit-runner", argv)


if __name__ == "__main__":
    main()
