"""The quickstart example end to end: enqueue.py (producer) → Redis → a minimal dispatcher
written here (standing in for the orchestrator) → rrqkit-runner with the example's handlers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib

import redis

from helpers import PACKAGE_DIR, RUNNER_CMD, request, running

EXAMPLE = PACKAGE_DIR / "examples" / "quickstart"


def test_example_config_has_the_runner_table() -> None:
    config = tomllib.loads((EXAMPLE / "rrq.toml").read_text())["rrq"]
    runner = config["runners"]["python"]
    assert config["default_runner_name"] == "python"
    assert runner["cmd"][1:] == ["--settings", "myapp.handlers:registry"]
    assert runner["transport"] in ("stdio", "unix", "tcp")
    assert runner["max_in_flight"] <= 64


def test_example_handlers_in_the_runner() -> None:
    cmd = [*RUNNER_CMD, "--settings", "myapp.handlers:registry"]
    with running("unix", "json", cmd=cmd, cwd=str(EXAMPLE)) as runner:
        conn = runner.connect()
        ok = conn.send_request("send_welcome_email", {"to": "ada@example.com"})
        bad = conn.send_request("send_welcome_email", {"to": "nobody"})
        retry = conn.send_request("send_welcome_email", {"to": "a@b.c", "mail_server_down": True})
        total = conn.send_request("sum_numbers", {"numbers": [1, 2, 3.5]})
        wrong = conn.send_request("sum_numbers", {"numbers": ["x"]})
        out = conn.responses([ok, bad, retry, total, wrong])
    assert out[ok]["result"] == {"sent_to": "ada@example.com", "attempt": 1}
    assert out[bad]["error"]["code"] == "bad_to"
    assert (out[retry]["status"], out[retry]["retry_after_seconds"]) == ("retry", 5)
    assert out[total]["result"] == {"total": 6.5, "count": 3}
    assert (out[wrong]["status"], out[wrong]["error"]["type"]) == ("error", "ValueError")


def test_example_end_to_end(redis_dsn: str) -> None:
    cmd = [*RUNNER_CMD, "--settings", "myapp.handlers:registry"]
    store = redis.Redis.from_url(redis_dsn, decode_responses=True)
    env = {**os.environ, "RRQ_REDIS_DSN": redis_dsn, "EXAMPLE_TIMEOUT": "20"}
    env.pop("RRQ_CONFIG", None)
    with running("stdio", "msgpack", cmd=cmd, cwd=str(EXAMPLE)) as runner:
        conn = runner.connect()
        producer = subprocess.Popen(
            [sys.executable, "enqueue.py"],
            cwd=EXAMPLE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        done = 0
        deadline = time.monotonic() + 20
        while done < 2:
            assert time.monotonic() < deadline, "jobs were not dispatched"
            popped = store.zpopmin("rrq:queue:default")
            if not popped:
                time.sleep(0.02)
                continue
            job_id = popped[0][0]
            job = store.hgetall(f"rrq:job:{job_id}")
            payload = request(job["function_name"], json.loads(job["job_params"]), job_id=job_id)
            conn.send("request", payload)
            outcome = conn.response(payload["request_id"])
            assert outcome["status"] == "success", outcome
            store.hset(
                f"rrq:job:{job_id}",
                mapping={"status": "COMPLETED", "result": json.dumps(outcome["result"])},
            )
            store.xadd(
                f"rrq:events:job:{job_id}",
                {"event": "completed", "job_id": job_id, "status": "COMPLETED"},
            )
            done += 1
        stdout, stderr = producer.communicate(timeout=20)
    store.close()
    assert producer.returncode == 0, stderr
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("enqueued ")
    assert "COMPLETED {'sent_to': 'ada@example.com', 'attempt': 1}" in lines[1]
    assert "COMPLETED {'total': 6.5, 'count': 3}" in lines[2]
