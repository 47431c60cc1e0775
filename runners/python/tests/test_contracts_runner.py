"""The runner with a job catalog (``RRQ_JOB_CATALOG`` or ``run_runner(..., catalog=)``): params
of a catalogued function are checked before its handler runs, a failure is an ``error`` outcome
of type ``invalid_params``; and ``--list-handlers`` prints the handler names and exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import CONFORMANCE_CMD, FrameClient, running

# the conformance runner's "echo" handler under a contract: a required string "to"
ECHO_CONTRACT = {
    "name": "echo",
    "params": {
        "type": "object",
        "properties": {"to": {"type": "string"}},
        "required": ["to"],
    },
}


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    directory = tmp_path / "jobs"
    directory.mkdir()
    (directory / "echo.json").write_text(json.dumps(ECHO_CONTRACT))
    return directory


def check_outcomes(client: FrameClient) -> None:
    bad = client.response(client.send_request("echo", {"to": 1}))
    assert bad["status"] == "error"
    assert bad["error"]["type"] == "invalid_params"
    assert bad["error"]["message"] == "echo: params/to 1 is not of type 'string'"
    missing = client.response(client.send_request("echo", {}))
    assert missing["error"]["type"] == "invalid_params"
    assert missing["error"]["message"].startswith("echo: params 'to' is a required property")
    good = client.response(client.send_request("echo", {"to": "a@b"}))
    assert good["status"] == "success" and good["result"] == {"to": "a@b"}
    # not catalogued: not checked
    other = client.response(client.send_request("inspect", {"to": 1}))
    assert other["status"] == "success"
    # no handler: still handler_not_found, not a params problem
    unknown = client.response(client.send_request("nope", {"to": 1}))
    assert unknown["error"]["type"] == "handler_not_found"


@pytest.mark.parametrize("transport", ["stdio", "unix"])
def test_env_catalog_checks_params(catalog: Path, transport: str) -> None:
    with running(transport, env={"RRQ_JOB_CATALOG": str(catalog)}) as runner:
        check_outcomes(runner.connect())


def test_run_runner_catalog_option(catalog: Path) -> None:
    code = (
        "import sys\n"
        "from rrqkit.cli import run_runner\n"
        "from rrqkit.conformance_runner import build_registry\n"
        "catalog = sys.argv.pop(1)\n"
        "run_runner('t', sys.argv[1:], lambda _a: build_registry(), catalog=catalog)\n"
    )
    cmd = [sys.executable, "-c", code, str(catalog)]
    with running("unix", cmd=cmd) as runner:
        check_outcomes(runner.connect())


def test_unusable_catalog_stops_the_runner(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CONFORMANCE_CMD, "--stdio"],
        env={**_env(), "RRQ_JOB_CATALOG": str(tmp_path / "missing")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "invalid job catalog" in proc.stderr
    assert "is not a directory" in proc.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "RRQ_JOB_CATALOG"}


def list_handlers(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, "--list-handlers"],
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        **kwargs,
    )


def test_list_handlers_of_the_conformance_runner() -> None:
    proc = list_handlers(CONFORMANCE_CMD)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert list(line) == ["runtime", "version", "handlers"]
    assert line["runtime"] == "python"
    assert line["handlers"] == sorted(line["handlers"])
    assert {"echo", "inspect", "sleep"} <= set(line["handlers"])


def test_list_handlers_of_a_settings_module(tmp_path: Path) -> None:
    (tmp_path / "myjobs.py").write_text(
        "from rrqkit import Registry\n"
        "print('imported!')  # must not reach stdout's JSON line\n"
        "registry = Registry()\n"
        "registry.register('zeta', lambda r: None)\n"
        "registry.register('alpha', lambda r: None)\n"
    )
    cmd = [sys.executable, "-m", "rrqkit.cli", "--settings", "myjobs:registry"]
    proc = list_handlers(cmd, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["handlers"] == ["alpha", "zeta"]
    assert "imported!" in proc.stderr

    missing = list_handlers([*cmd[:-1], "nomodule:registry"], cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert "cannot import settings" in missing.stderr


def test_a_transport_is_still_required_without_list_handlers() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rrqkit.cli", "--settings", "x:y"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "one of the arguments --tcp-socket --unix-socket --stdio is required" in proc.stderr
