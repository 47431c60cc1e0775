"""rrqkit-producer-adapter (conformance/PRODUCER_ADAPTER.md), driven as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis


class Adapter:
    def __init__(self, env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if k not in ("RRQ_CONFIG", "RRQ_REDIS_DSN")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rrqkit.producer_adapter"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            text=True,
        )

    def raw(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply, self.proc.stderr.read() if self.proc.stderr else ""
        return json.loads(reply)  # type: ignore[no-any-return]

    def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        reply = self.raw(json.dumps({"id": op, "op": op, **arguments}))
        assert reply["id"] == op
        return reply

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code


def test_adapter_round_trip(redis_dsn: str, tmp_path: Path) -> None:
    adapter = Adapter()
    try:
        assert adapter.call("configure", config={"redis_dsn": redis_dsn}) == {
            "id": "configure",
            "ok": True,
            "result": None,
        }
        reply = adapter.call(
            "enqueue",
            function_name="fn",
            params={"b": 1, "a": 2},
            options={"job_id": "j1", "defer_until": "2030-01-01T00:00:00Z"},
        )
        assert reply == {"id": "enqueue", "ok": True, "result": "j1"}
        opts = {"rate_limit_key": "k", "rate_limit_seconds": 5}
        first = adapter.call("enqueue_with_rate_limit", function_name="fn", params={}, options=opts)
        second = adapter.call(
            "enqueue_with_rate_limit", function_name="fn", params={}, options=opts
        )
        assert first["ok"] and isinstance(first["result"], str)
        assert second == {"id": "enqueue_with_rate_limit", "ok": True, "result": None}
        debounced = adapter.call(
            "enqueue_with_debounce",
            function_name="fn",
            params={},
            options={"debounce_key": "d", "debounce_seconds": 5},
        )
        assert debounced["ok"]
        many = adapter.call(
            "enqueue_many",
            items=[
                {"function_name": "x", "params": {"i": 1}, "options": {"job_id": "m1"}},
                {"function_name": "y"},
            ],
        )
        assert many["ok"] and many["result"][0] == "m1" and len(many["result"]) == 2
        status = adapter.call("get_job_status", job_id="j1")
        assert status["result"] == {"status": "PENDING", "result": None, "last_error": None}
        assert adapter.call("get_job_status", job_id="nope")["result"] is None
        client = redis.Redis.from_url(redis_dsn, decode_responses=True)
        client.hset("rrq:job:j1", mapping={"status": "COMPLETED", "result": '{"x":1}'})
        client.close()
        waited = adapter.call("wait_for_completion", job_id="j1", timeout_seconds=2)
        assert waited["result"] == {"status": "COMPLETED", "result": {"x": 1}, "last_error": None}
        timed_out = adapter.call(
            "wait_for_completion", job_id="m1", timeout_seconds=0.2, block_interval_seconds=0.05
        )
        assert timed_out == {"id": "wait_for_completion", "ok": True, "result": None}
        error = adapter.call("enqueue", function_name="", params={}, options={})
        assert error["ok"] is False
        assert error["error"] == {
            "code": "invalid_argument",
            "message": "function_name cannot be empty",
        }
        error = adapter.call("enqueue", function_name="fn", params={}, options=opts)
        assert error["error"]["code"] == "rate_limited"
        error = adapter.call("enqueue", function_name="fn", params={}, options={"job_id": "j1"})
        assert error["error"]["code"] == "duplicate_job_id"
        bad = adapter.call("configure", config={"redis_dsn": redis_dsn, "nope": 1})
        assert bad["error"]["code"] == "invalid_config"
        assert adapter.raw("{not json")["id"] is None
        assert adapter.raw("{not json")["error"]["code"] == "adapter_error"
        assert adapter.raw('{"id": 7, "op": "fly"}') == {
            "id": 7,
            "ok": False,
            "error": {"code": "adapter_error", "message": "unknown op 'fly'"},
        }
    finally:
        assert adapter.close() == 0


def test_adapter_load_config(redis_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "rrq.toml").write_text(
        f'[rrq]\nredis_dsn = "{redis_dsn}"\ndefault_queue_name = "q"\ndefault_max_retries = 3\n'
    )
    other = tmp_path / "other.toml"
    other.write_text('redis_dsn = "redis://other:1/0"\n')
    adapter = Adapter(cwd=str(tmp_path))
    try:
        # Without configure, the producer comes from rrq.toml resolution.
        reply = adapter.call("enqueue", function_name="fn", params={}, options={"job_id": "a"})
        assert reply["ok"], reply
        client = redis.Redis.from_url(redis_dsn, decode_responses=True)
        assert client.hget("rrq:job:a", "queue_name") == "rrq:queue:q"
        client.close()
        loaded = adapter.call("load_config")
        assert loaded["result"] == {
            "redis_dsn": redis_dsn,
            "queue_name": "rrq:queue:q",
            "max_retries": 3,
            "job_timeout_seconds": 300,
            "result_ttl_seconds": 86400,
            "idempotency_ttl_seconds": 21600,
            "correlation_mappings": {},
        }
        assert (
            adapter.call("load_config", path=str(other))["result"]["redis_dsn"]
            == "redis://other:1/0"
        )
        missing = adapter.call("load_config", path=str(tmp_path / "missing.toml"))
        assert missing["error"]["code"] == "config_not_found"
    finally:
        assert adapter.close() == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    adapter = Adapter(cwd=str(empty), env={"RRQ_REDIS_DSN": redis_dsn})
    try:
        reply = adapter.call("get_job_status", job_id="a")
        assert reply["error"] == {
            "code": "config_not_found",
            "message": "RRQ config not found. Provide --config, set RRQ_CONFIG, or add rrq.toml.",
        }
    finally:
        assert adapter.close() == 0
