"""Test helpers: a blocking frame client and real runner subprocesses."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rrqkit.codec import Encoding, Frame, FrameDecoder, encode_frame
from rrqkit.errors import DecodeError

REPO_ROOT = Path(__file__).resolve().parents[3]
VECTORS_DIR = REPO_ROOT / "protocol" / "vectors"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONFORMANCE_CMD = [sys.executable, "-m", "rrqkit.conformance_runner"]
RUNNER_CMD = [sys.executable, "-m", "rrqkit.cli"]

_EOF = object()


class Closed(Exception):
    """The peer closed the stream."""


def rfc3339(delta_seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=delta_seconds)
    return moment.isoformat().replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def request(
    function_name: str,
    params: Any = None,
    *,
    job_id: str | None = None,
    request_id: str | None = None,
    deadline: str | None = None,
    protocol_version: str | None = "2",
    attempt: int = 1,
) -> dict[str, Any]:
    job_id = job_id or new_id("job")
    payload: dict[str, Any] = {
        "protocol_version": protocol_version,
        "request_id": request_id or new_id("req"),
        "job_id": job_id,
        "function_name": function_name,
        "params": {} if params is None else params,
        "context": {
            "job_id": job_id,
            "attempt": attempt,
            "enqueue_time": rfc3339(-1),
            "queue_name": "rrq:queue:default",
            "deadline": deadline,
            "trace_context": None,
            "correlation_context": None,
            "worker_id": "worker-test",
        },
    }
    if protocol_version is None:
        del payload["protocol_version"]
    return payload


class FrameClient:
    """Speaks frames over a byte stream; a reader thread decodes incoming frames."""

    def __init__(
        self,
        read: Callable[[], bytes],
        write: Callable[[bytes], None],
        encoding: Encoding,
        close_write: Callable[[], None],
        close: Callable[[], None],
    ) -> None:
        self.encoding = encoding
        self._write = write
        self._close_write = close_write
        self._close = close
        self._frames: queue.Queue[Any] = queue.Queue()
        self._stash: dict[str, list[dict[str, Any]]] = {}
        self._others: list[Frame] = []
        self._lock = threading.Lock()
        self.hello: dict[str, Any] | None = None
        self.closed = False
        self.decode_error: DecodeError | None = None
        self._thread = threading.Thread(target=self._pump, args=(read,), daemon=True)
        self._thread.start()

    def _pump(self, read: Callable[[], bytes]) -> None:
        decoder = FrameDecoder(self.encoding)
        try:
            while True:
                try:
                    data = read()
                except OSError:
                    data = b""
                if not data:
                    break
                for item in decoder.feed(data):
                    self._frames.put(item)
        except DecodeError as exc:
            self.decode_error = exc
        self._frames.put(_EOF)

    # -- sending -------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        with self._lock:
            self._write(data)

    def send(self, frame_type: str, payload: dict[str, Any]) -> None:
        self.send_raw(encode_frame({"type": frame_type, "payload": payload}, self.encoding))

    def send_request(self, function_name: str, params: Any = None, **kwargs: Any) -> str:
        payload = request(function_name, params, **kwargs)
        self.send("request", payload)
        return str(payload["request_id"])

    def cancel(self, job_id: str, request_id: str | None = None, version: str = "2") -> None:
        payload: dict[str, Any] = {"protocol_version": version, "job_id": job_id}
        if request_id is not None:
            payload["request_id"] = request_id
        payload["hard_kill"] = False
        self.send("cancel", payload)

    def shutdown_write(self) -> None:
        self._close_write()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._close()

    # -- receiving -----------------------------------------------------------------------

    def next_frame(self, timeout: float = 5.0) -> Frame:
        if self.closed:
            raise Closed()
        try:
            item = self._frames.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no frame within {timeout}s") from None
        if item is _EOF:
            self.closed = True
            raise Closed()
        assert isinstance(item, Frame)
        return item

    def _route(self, item: Frame) -> None:
        if item.type == "response":
            key = item.raw["payload"].get("request_id") or "<none>"
            self._stash.setdefault(key, []).append(item.raw["payload"])
        else:
            self._others.append(item)

    def response(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next outcome for ``request_id`` (other frames are kept for later)."""
        end = time.monotonic() + timeout
        while True:
            bucket = self._stash.get(request_id)
            if bucket:
                return bucket.pop(0)
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no response for {request_id} within {timeout}s")
            self._route(self.next_frame(remaining))

    def responses(self, request_ids: list[str], timeout: float = 5.0) -> dict[str, dict[str, Any]]:
        end = time.monotonic() + timeout
        return {rid: self.response(rid, max(0.01, end - time.monotonic())) for rid in request_ids}

    def frame_of_type(self, frame_type: str, timeout: float = 5.0) -> Frame:
        end = time.monotonic() + timeout
        while True:
            for index, item in enumerate(self._others):
                if item.type == frame_type:
                    return self._others.pop(index)
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {frame_type} frame within {timeout}s")
            self._route(self.next_frame(remaining))

    def ping(self, timeout: float = 5.0) -> float:
        """Round trip a ping; returns the seconds it took."""
        nonce = new_id("n")
        started = time.monotonic()
        self.send("ping", {"nonce": nonce})
        while True:
            pong = self.frame_of_type("pong", timeout)
            if pong.raw["payload"]["nonce"] == nonce:
                return time.monotonic() - started

    def drain(self, seconds: float) -> list[Frame]:
        """Collect every frame that arrives within ``seconds`` (stops at EOF)."""
        end = time.monotonic() + seconds
        got: list[Frame] = []
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return got
            try:
                got.append(self.next_frame(remaining))
            except (TimeoutError, Closed):
                return got

    def pending_responses(self, request_id: str) -> list[dict[str, Any]]:
        return list(self._stash.get(request_id, []))

    def expect_closed(self, timeout: float = 5.0) -> list[Frame]:
        """Wait for EOF; returns frames received before it."""
        end = time.monotonic() + timeout
        got: list[Frame] = []
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("connection was not closed")
            try:
                got.append(self.next_frame(remaining))
            except Closed:
                return got


def socket_client(sock: socket.socket, encoding: Encoding) -> FrameClient:
    return FrameClient(
        read=lambda: sock.recv(1 << 20),
        write=sock.sendall,
        encoding=encoding,
        close_write=lambda: sock.shutdown(socket.SHUT_WR),
        close=sock.close,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RunnerProcess:
    """A real runner subprocess on one transport."""

    def __init__(
        self,
        transport: str,
        encoding: Encoding = "json",
        *,
        hello: bool = True,
        cmd: list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        tmp_root: str | None = None,
    ) -> None:
        self.transport = transport
        self.encoding: Encoding = encoding
        self.hello = hello
        self._tmp = tempfile.mkdtemp(prefix="rrqk-", dir=tmp_root or "/tmp")
        self.address: Any = None
        args = list(cmd or CONFORMANCE_CMD)
        if transport == "tcp":
            self.address = ("127.0.0.1", free_port())
            args += ["--tcp-socket", f"127.0.0.1:{self.address[1]}"]
        elif transport == "unix":
            self.address = os.path.join(self._tmp, "r.sock")
            args += ["--unix-socket", self.address]
        else:
            args += ["--stdio"]
        if encoding == "msgpack":
            args += ["--encoding", "msgpack"]
        full_env = dict(os.environ)
        full_env.pop("RRQ_RUNNER_HELLO", None)
        for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            full_env.pop(key, None)
        if hello:
            full_env["RRQ_RUNNER_HELLO"] = "1"
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.stderr_path = os.path.join(self._tmp, "stderr.log")
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if transport == "stdio" else subprocess.DEVNULL,
            stdout=subprocess.PIPE if transport == "stdio" else subprocess.DEVNULL,
            stderr=self._stderr,
            env=full_env,
            cwd=cwd,
        )
        self._stdio_client: FrameClient | None = None

    @property
    def stderr_text(self) -> str:
        return Path(self.stderr_path).read_text(errors="replace")

    def connect(self, timeout: float = 15.0, *, expect_hello: bool | None = None) -> FrameClient:
        """A new connection (for stdio: the one connection, created on first call)."""
        if expect_hello is None:
            expect_hello = self.hello
        if self.transport == "stdio":
            if self._stdio_client is None:
                assert self.proc.stdin is not None and self.proc.stdout is not None
                stdin, stdout = self.proc.stdin, self.proc.stdout
                out_fd = stdout.fileno()

                def write(data: bytes) -> None:
                    stdin.write(data)
                    stdin.flush()

                self._stdio_client = FrameClient(
                    read=lambda: os.read(out_fd, 1 << 20),
                    write=write,
                    encoding=self.encoding,
                    close_write=stdin.close,
                    close=stdin.close,
                )
                if expect_hello:
                    self._take_hello(self._stdio_client, timeout)
            return self._stdio_client
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runner exited early:\n{self.stderr_text}")
            family = socket.AF_INET if self.transport == "tcp" else socket.AF_UNIX
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.connect(self.address)
                break
            except OSError:
                sock.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.02)
        client = socket_client(sock, self.encoding)
        if expect_hello:
            self._take_hello(client, timeout)
        return client

    def _take_hello(self, client: FrameClient, timeout: float) -> None:
        first = client.next_frame(timeout)
        assert first.type == "hello", f"first frame was {first.type}, expected hello"
        client.hello = first.raw["payload"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.close()


@contextlib.contextmanager
def running(*args: Any, **kwargs: Any) -> Iterator[RunnerProcess]:
    runner = RunnerProcess(*args, **kwargs)
    try:
        yield runner
    finally:
        runner.stop()


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")
