"""``LiveRrq``: a private ``redis-server`` and a real ``rrq worker run`` for one test.

The orchestrator is ``RRQ_ORCHESTRATOR`` (a command line, split as a shell would, e.g.
``node /path/to/rrqkit/bin/rrq.js``) or ``rrq`` on PATH; ``redis-server`` comes from PATH and
listens on a free loopback port. The worker serves the runner command you give (your handlers
in a runner process, e.g. ``[sys.executable, "-m", "rrqkit.cli", "--settings",
"myapp.handlers:registry"]``) from a temporary ``rrq.toml``. When something is missing,
:meth:`LiveRrq.start` raises :class:`LiveRrqUnavailable` saying what (the pytest fixture skips
with that reason).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..producer import Producer

__all__ = ["LiveRrq", "LiveRrqUnavailable", "find_orchestrator", "toml_text"]

_START_TIMEOUT_SECONDS = 30
_WORKER_ARGS = ("worker", "run", "--log-format", "json")


class LiveRrqUnavailable(RuntimeError):
    """The orchestrator or ``redis-server`` cannot be found; the message says which."""


def find_orchestrator(env: Mapping[str, str] | None = None) -> list[str]:
    """The orchestrator command: ``RRQ_ORCHESTRATOR`` split, else ``rrq`` on PATH."""
    env = os.environ if env is None else env
    given = env.get("RRQ_ORCHESTRATOR", "").strip()
    if given:
        return shlex.split(given)
    found = shutil.which("rrq")
    if found is None:
        raise LiveRrqUnavailable(
            "no rrqkit orchestrator: set RRQ_ORCHESTRATOR to its command line "
            "(e.g. 'node /path/to/rrqkit/bin/rrq.js') or put 'rrq' on PATH"
        )
    return [found]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string for these values
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to rrq.toml")


def _table(name: str, values: Mapping[str, Any]) -> list[str]:
    lines = [f"[{name}]"]
    nested = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            nested.append((f"{name}.{json.dumps(key)}", value))
        else:
            lines.append(f"{key} = {_value(value)}")
    for sub, table in nested:
        lines += ["", *_table(sub, table)]
    return lines


def toml_text(redis_dsn: str, config: Mapping[str, Any]) -> str:
    """The ``rrq.toml`` of a live run. ``config``: ``cmd`` (the runner command, required),
    ``runner`` (its name, default ``"python"``), ``runner_options`` (more keys of its table,
    e.g. ``pool_size``), ``rrq`` (more ``[rrq]`` keys, e.g. ``default_max_retries``)."""
    cmd = config.get("cmd")
    if not cmd or isinstance(cmd, str):
        raise ValueError("the live config needs 'cmd': the runner command as a list")
    name = str(config.get("runner", "python"))
    rrq = {"redis_dsn": redis_dsn, "default_runner_name": name, **config.get("rrq", {})}
    runner = {"cmd": list(cmd), "pool_size": 1, **config.get("runner_options", {})}
    return "\n".join([*_table("rrq", rrq), "", *_table(f"rrq.runners.{name}", runner), ""])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveRrq:
    """A running ``redis-server`` and orchestrator; :meth:`stop` ends both.

    >>> live = LiveRrq({"cmd": [sys.executable, "-m", "rrqkit.cli", "--settings", "app:registry"]})
    >>> live.start()
    >>> job_id = await live.producer.enqueue("send_email", {"to": "a@b.c"})
    >>> await live.producer.wait_for_completion(job_id)
    >>> live.stop()
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = dict(config)
        self.cwd = os.fspath(cwd) if cwd is not None else os.getcwd()
        self.env = dict(os.environ if env is None else env)
        self.redis_url = ""
        self.config_path: Path | None = None
        self._dir: str | None = None
        self._redis: subprocess.Popen[bytes] | None = None
        self._worker: subprocess.Popen[bytes] | None = None
        self._producer: Producer | None = None

    @property
    def producer(self) -> Producer:
        """A real :class:`~rrqkit.Producer` on the private Redis (made on first use)."""
        if self._producer is None:
            if not self.redis_url:
                raise RuntimeError("LiveRrq is not started")
            self._producer = Producer({"redis_dsn": self.redis_url})
        return self._producer

    def start(self) -> LiveRrq:
        """Starts Redis, then the worker, and waits until the worker reports itself healthy.
        Raises :class:`LiveRrqUnavailable` when a program is missing, RuntimeError (with the
        worker's output) when the worker exits or is not up within 30 s."""
        orchestrator = find_orchestrator(self.env)
        redis_server = shutil.which("redis-server", path=self.env.get("PATH"))
        if redis_server is None:
            raise LiveRrqUnavailable("redis-server is not on PATH")
        self._dir = tempfile.mkdtemp(prefix="rrqkit-live-")
        try:
            self._start_redis(redis_server)
            self.config_path = Path(self._dir) / "rrq.toml"
            self.config_path.write_text(toml_text(self.redis_url, self.config), encoding="utf-8")
            self._start_worker(orchestrator)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_redis(self, binary: str) -> None:
        assert self._dir is not None
        port = _free_port()
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._redis = subprocess.Popen(
            [binary, *args, "--dir", self._dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self._wait(lambda: self._redis_ping(port), self._redis, "redis-server")

    @staticmethod
    def _redis_ping(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _start_worker(self, orchestrator: list[str]) -> None:
        assert self._dir is not None and self.config_path is not None
        log = open(Path(self._dir) / "worker.log", "wb")  # noqa: SIM115 - the child's output
        with log:
            self._worker = subprocess.Popen(
                [*orchestrator, "--config", str(self.config_path), *_WORKER_ARGS],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait(self._worker_healthy, self._worker, "the rrq worker")

    def _worker_healthy(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            return bool(client.keys("rrq:health:worker:*"))
        except redis.RedisError:
            return False
        finally:
            client.close()

    def worker_log(self) -> str:
        """What the worker printed so far."""
        if self._dir is None:
            return ""
        path = Path(self._dir) / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait(self, ready: Any, proc: subprocess.Popen[bytes], what: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}:\n{self.worker_log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start in time:\n{self.worker_log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stops the worker (SIGTERM, then SIGKILL after 10 s) and Redis; removes the files.
        Close the producer first (``await live.producer.close()``) when it was used."""
        for proc in (self._worker, self._redis):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._worker = self._redis = None
        if self._dir is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self._dir)
            self._dir = None
