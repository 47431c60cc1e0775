"""Runner process behaviour: hello negotiation, signals, stdin EOF, parent death, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    PACKAGE_DIR,
    RUNNER_CMD,
    VECTORS_DIR,
    free_port,
    new_id,
    process_gone,
    running,
)

MANIFEST = json.loads((VECTORS_DIR / "manifest.json").read_text())
INVALID = [v for v in MANIFEST["vectors"] if v["kind"] == "invalid"]


@pytest.mark.parametrize("transport", ["stdio", "unix", "tcp"])
def test_no_hello_without_env(transport: str) -> None:
    with running(transport, "json", hello=False) as runner:
        conn = runner.connect(expect_hello=False)
        rid = conn.send_request("echo", {"n": 1})
        first = conn.next_frame()
        assert first.type == "response"
        assert first.raw["payload"]["request_id"] == rid
        conn.ping()  # ping is still answered


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_hello_on_every_connection(runner_pool: Any, transport: str) -> None:
    runner = runner_pool.get(transport, "msgpack")
    for _ in range(3):
        conn = runner.connect()  # asserts hello is the first frame
        assert conn.hello is not None and conn.hello["runtime"] == "rrqkit-python"
        conn.close()


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_cancel_and_responses_stay_on_their_connections(runner_pool: Any, transport: str) -> None:
    runner = runner_pool.get(transport, "json")
    a, b, c = runner.connect(), runner.connect(), runner.connect()
    job = new_id("job")
    on_a = [a.send_request("sleep", {"ms": 5000}, job_id=job) for _ in range(2)]
    on_b = b.send_request("sleep", {"ms": 5000}, job_id=job)
    a.ping()
    b.ping()
    c.cancel(job)  # cancel over a third connection, as RRQ's orchestrator does
    assert {r["error"]["type"] for r in a.responses(on_a, timeout=3).values()} == {"cancelled"}
    assert b.response(on_b, timeout=3)["error"]["type"] == "cancelled"
    assert [f for f in c.drain(0.3) if f.type == "response"] == []
    for conn in (a, b, c):
        conn.close()


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_connection_close_aborts_only_its_requests(runner_pool: Any, transport: str) -> None:
    runner = runner_pool.get(transport, "json")
    doomed, other = runner.connect(), runner.connect()
    job = new_id("job")
    for _ in range(3):
        doomed.send_request("sleep", {"ms": 5000}, job_id=job)
    survivor = other.send_request("sleep", {"ms": 300}, job_id=new_id("job"))
    doomed.ping()
    doomed.close()
    time.sleep(0.1)
    other.cancel(job)  # the aborted requests are gone: nothing is answered anywhere
    assert other.response(survivor)["status"] == "success"
    assert [f for f in other.drain(0.2) if f.type == "response"] == []


def _invalid_id(vector: dict[str, Any]) -> str:
    return f"{vector['encoding']}-{vector['name']}"


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("vector", INVALID, ids=_invalid_id)
def test_invalid_vector_actions_on_socket(
    runner_pool: Any, transport: str, vector: dict[str, Any]
) -> None:
    runner = runner_pool.get(transport, vector["encoding"])
    conn = runner.connect()
    conn.send_raw((VECTORS_DIR / vector["file"]).read_bytes())
    if vector["action"] == "close":
        if vector["error"] == "frame_truncated":
            conn.shutdown_write()
        assert conn.expect_closed(timeout=3) == []
        fresh = runner.connect()
        fresh.ping()
        fresh.close()
    elif vector["action"] == "reply_error":
        out = conn.response(vector["reply"]["request_id"])
        for key, value in vector["reply"].items():
            if key == "error":
                for k, v in value.items():
                    assert out["error"][k] == v
            else:
                assert out[key] == value
        conn.ping()  # connection kept
    else:
        assert vector["action"] == "ignore"
        conn.ping()
        assert [f for f in conn.drain(0.1) if f.type == "response"] == []
    conn.close()


@pytest.mark.parametrize("name", ["malformed-json", "unknown-type", "request-missing-job-id"])
def test_invalid_frame_on_stdio_closes_and_exits(name: str) -> None:
    with running("stdio", "json") as runner:
        conn = runner.connect()
        conn.send_raw((VECTORS_DIR / f"invalid/json/{name}.bin").read_bytes())
        assert conn.expect_closed(timeout=3) == []
        assert runner.wait(5) == 1
        assert "Traceback" not in runner.stderr_text


def test_stdin_eof_aborts_in_flight_and_exits_zero() -> None:
    with running("stdio", "msgpack") as runner:
        conn = runner.connect()
        conn.send_request("sleep", {"ms": 5000})
        conn.ping()
        started = time.monotonic()
        conn.shutdown_write()
        assert runner.wait(3) == 0
        assert time.monotonic() - started < 1.5
        assert [f for f in conn.drain(0.2) if f.type == "response"] == []


@pytest.mark.parametrize("transport", ["stdio", "unix", "tcp"])
def test_sigterm_exits_promptly(transport: str) -> None:
    with running(transport, "json") as runner:
        conn = runner.connect()
        conn.send_request("sleep", {"ms": 10_000})
        conn.ping()
        started = time.monotonic()
        runner.proc.send_signal(signal.SIGTERM)
        assert runner.wait(3) == 0
        assert time.monotonic() - started < 1.5
        if transport == "unix":
            assert not os.path.exists(runner.address)  # socket file removed


def test_sigterm_while_a_handler_blocks_the_loop() -> None:
    with running("unix", "json") as runner:
        conn = runner.connect()
        conn.send_request("ignore_cancel", {"ms": 10_000})
        time.sleep(0.2)
        started = time.monotonic()
        runner.proc.send_signal(signal.SIGTERM)
        runner.wait(3)
        assert time.monotonic() - started < 1.5


def _spawn_via_parent(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start a parent process that launches a runner and prints the runner's pid."""
    sock = tmp_path / "r.sock"
    script = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen({[*RUNNER_CMD[:2], "rrqkit.conformance_runner"]!r}
                                 + ["--unix-socket", {str(sock)!r}])
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    while not sock.exists():  # the runner is up (guard installed) once it listens
        assert time.monotonic() < deadline, "runner did not start"
        time.sleep(0.02)
    return parent, pid


def test_parent_death_kills_runner_within_one_second(tmp_path: Path) -> None:
    parent, pid = _spawn_via_parent({}, tmp_path)
    try:
        parent.kill()
        parent.wait(5)
        killed = time.monotonic()
        while not process_gone(pid):
            assert time.monotonic() - killed < 1.0, "runner outlived its parent by 1 s"
            time.sleep(0.02)
    finally:
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_parent_guard_can_be_disabled(tmp_path: Path) -> None:
    parent, pid = _spawn_via_parent({"RRQ_RUNNER_PARENT_GUARD": "0"}, tmp_path)
    try:
        parent.kill()
        parent.wait(5)
        time.sleep(1.2)
        assert not process_gone(pid)
    finally:
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_crash_handler_exits_without_reply() -> None:
    with running("stdio", "json") as runner:
        conn = runner.connect()
        conn.send_request("crash", {"code": 3})
        assert conn.expect_closed(timeout=3) == []
        assert runner.wait(3) == 3
    with running("stdio", "json") as runner:
        conn = runner.connect()
        conn.send_request("crash", {"signal": "SIGKILL"})
        assert runner.wait(3) == -signal.SIGKILL


def test_exec_log(tmp_path: Path) -> None:
    log = tmp_path / "exec.log"
    with running("unix", "json", env={"RRQ_TEST_EXEC_LOG": str(log)}) as runner:
        conn = runner.connect()
        r1 = conn.send_request("echo", {}, job_id="job-a", attempt=2)
        r2 = conn.send_request("sleep", {"ms": 1}, job_id="job-b")
        conn.responses([r1, r2])
        lines = [json.loads(line) for line in log.read_text().splitlines()]
    # ts_ms: the handler's start, epoch milliseconds (conformance/handlers.md).
    assert all(abs(line.pop("ts_ms") - time.time() * 1000) < 60_000 for line in lines)
    assert sorted(lines, key=lambda x: x["job_id"]) == [
        {
            "job_id": "job-a",
            "request_id": r1,
            "attempt": 2,
            "function_name": "echo",
            "pid": runner.proc.pid,
        },
        {
            "job_id": "job-b",
            "request_id": r2,
            "attempt": 1,
            "function_name": "sleep",
            "pid": runner.proc.pid,
        },
    ]


# ------------------------------------------------------------------------------------------
# rrqkit-runner with a user registry


APP = textwrap.dedent(
    """
    import os
    import subprocess
    import sys

    from rrqkit import Registry, RetryJob

    print("import-time noise on stdout")
    registry = Registry()


    @registry.handler("greet")
    async def greet(request):
        return {"hello": request.params.get("name", "world")}


    @registry.handler("shout")
    async def shout(request):
        print("print noise")
        os.write(1, b"fd 1 noise\\n")
        subprocess.run(["echo", "child process noise"], check=True)
        return request.params["text"].upper()


    @registry.handler("again")
    async def again(request):
        raise RetryJob("not yet", retry_after_seconds=1.5)


    @registry.handler("again_plain")
    async def again_plain(request):
        raise RetryJob()


    @registry.handler("empty_error")
    async def empty_error(request):
        raise ValueError()


    @registry.handler("sync_handler")
    def sync_handler(request):
        return {"thread": True}


    class Settings:
        def __init__(self, registry):
            self.registry = registry


    settings = Settings(registry)
    """
)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "handlers.py").write_text(APP)
    return tmp_path


@pytest.mark.parametrize(
    ("flag", "spec"),
    [
        ("--settings", "myapp.handlers:registry"),
        ("--settings", "myapp.handlers.registry"),
        ("--registry", "myapp.handlers:settings"),
    ],
)
def test_user_registry_over_stdio_with_fd_noise(app_dir: Path, flag: str, spec: str) -> None:
    cmd = [*RUNNER_CMD, flag, spec]
    with running("stdio", "msgpack", cmd=cmd, cwd=str(app_dir)) as runner:
        conn = runner.connect()
        rid = conn.send_request("shout", {"text": "hi"})
        assert conn.response(rid)["result"] == "HI"
        rid = conn.send_request("greet", {"name": "ada"})
        assert conn.response(rid)["result"] == {"hello": "ada"}
        rid = conn.send_request("again")
        out = conn.response(rid)
        assert (out["status"], out["retry_after_seconds"], out["error"]["message"]) == (
            "retry",
            1.5,
            "not yet",
        )
        rid = conn.send_request("again_plain")
        out = conn.response(rid)
        assert (out["status"], out["retry_after_seconds"], out["error"]["message"]) == (
            "retry",
            None,
            "Job requested retry",
        )
        rid = conn.send_request("empty_error")
        error = conn.response(rid)["error"]
        assert error.pop("traceback").endswith("ValueError\n")  # RUNNER_PROTOCOL.md §7.1
        assert error == {
            "message": "Unhandled handler error",
            "type": "ValueError",
            "code": None,
            "details": None,
        }
        rid = conn.send_request("sync_handler")
        assert conn.response(rid)["result"] == {"thread": True}
        assert conn.decode_error is None
        conn.shutdown_write()
        assert runner.wait(5) == 0
        stderr = runner.stderr_text
    for noise in (
        "import-time noise on stdout",
        "print noise",
        "fd 1 noise",
        "child process noise",
    ):
        assert noise in stderr


def test_bad_settings_path_fails_to_start(app_dir: Path) -> None:
    result = subprocess.run(
        [*RUNNER_CMD, "--settings", "myapp.handlers:nope", "--unix-socket", str(app_dir / "s")],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "nope" in result.stderr


def test_non_loopback_tcp_is_refused_unless_allowed() -> None:
    port = free_port()
    refused = subprocess.run(
        [*RUNNER_CMD, "--settings", "x:y", "--tcp-socket", f"0.0.0.0:{port}"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert refused.returncode == 2
    assert "RRQ_RUNNER_ALLOW_REMOTE" in refused.stderr
    cmd = [sys.executable, "-m", "rrqkit.conformance_runner"]
    proc = subprocess.Popen(
        [*cmd, "--tcp-socket", f"0.0.0.0:{port}"],
        env={**os.environ, "RRQ_RUNNER_ALLOW_REMOTE": "1"},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        import socket

        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.parametrize(
    "args",
    [
        ["--stdio", "--encoding", "cbor"],
        ["--stdio", "--unix-socket", "/tmp/x"],
        [],
        ["--tcp-socket", "localhost"],
        ["--tcp-socket", "::1:80"],
    ],
)
def test_bad_command_lines(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rrqkit.conformance_runner", *args],
        capture_output=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2


def test_console_scripts_are_installed() -> None:
    bindir = Path(sys.executable).parent
    for name in ("rrqkit-runner", "rrqkit-conformance-runner", "rrqkit-producer-adapter"):
        assert (bindir / name).exists(), name
    version = subprocess.run(
        [str(bindir / "rrqkit-runner"), "--version"], capture_output=True, text=True, timeout=20
    )
    assert version.returncode == 0 and "0.1.0" in version.stdout
    assert (PACKAGE_DIR / "src" / "rrqkit" / "py.typed").exists()


def test_ipv6_loopback_tcp() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrqkit.conformance_runner", "--tcp-socket", f"[::1]:{port}"],
        stderr=subprocess.PIPE,
    )
    try:
        import socket

        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.skip("IPv6 loopback is not available here")
            try:
                socket.create_connection(("::1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.skip("IPv6 loopback is not available here")
                time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_parent_watchdog_without_pdeathsig(tmp_path: Path) -> None:
    """The getppid() watchdog alone (no PR_SET_PDEATHSIG, as on non-Linux) meets the 1 s rule."""
    ready = tmp_path / "ready"
    child_code = textwrap.dedent(
        f"""
        import pathlib, time
        from rrqkit import parent_guard
        parent_guard._set_pdeathsig = lambda sig: False
        assert parent_guard.install()
        pathlib.Path({str(ready)!r}).write_text("ok")
        time.sleep(30)
        """
    )
    script = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {child_code!r}])
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        parent.kill()
        parent.wait(5)
        killed = time.monotonic()
        while not process_gone(pid):
            assert time.monotonic() - killed < 1.0, "watchdog did not end the process within 1 s"
            time.sleep(0.02)
    finally:
        parent.stdout.close()
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)
