"""Runner behaviour over every transport × encoding, against the real conformance runner."""

from __future__ import annotations

import struct
import time

import pytest

from helpers import FrameClient, RunnerProcess, new_id, request, rfc3339

FIFTEEN_MIB = 15 * 1024 * 1024


def test_hello_is_first_frame(client: FrameClient, shared_runner: RunnerProcess) -> None:
    hello = client.hello
    assert hello is not None
    assert hello["protocol_version"] == "2"
    assert hello["runtime"] == "rrqkit-python"
    assert hello["pid"] == shared_runner.proc.pid
    assert hello["max_in_flight"] == 64
    assert hello["features"] == ["ping", "cancel_by_job", "stdout_guard", "progress", "output"]
    assert list(hello) == [
        "protocol_version",
        "runtime",
        "runtime_version",
        "pid",
        "max_in_flight",
        "features",
    ]


def test_success_echo(client: FrameClient) -> None:
    params = {"to": "ünïcødé", "n": 3, "ratio": 0.25, "nested": {"list": [1, "two", None, True]}}
    rid = client.send_request("echo", params, job_id="job-echo")
    out = client.response(rid)
    assert out == {
        "job_id": "job-echo",
        "request_id": rid,
        "status": "success",
        "result": params,
        "error": None,
        "retry_after_seconds": None,
    }
    assert list(out) == ["job_id", "request_id", "status", "result", "error", "retry_after_seconds"]


def test_raw_value_and_inspect(client: FrameClient) -> None:
    payload = request("inspect", {"k": "v"})
    payload["context"]["trace_context"] = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    payload["context"]["correlation_context"] = {"tenant": "acme"}
    client.send("request", payload)
    out = client.response(payload["request_id"])
    assert out["status"] == "success"
    result = out["result"]
    assert result["job_id"] == payload["job_id"]
    assert result["request_id"] == payload["request_id"]
    assert result["function_name"] == "inspect"
    assert result["params"] == {"k": "v"}
    assert result["context"] == payload["context"]


def test_absent_optionals_read_as_null(client: FrameClient) -> None:
    payload = request("inspect", protocol_version=None)
    del payload["params"]
    for key in ("deadline", "trace_context", "correlation_context", "worker_id"):
        del payload["context"][key]
    client.send("request", payload)
    out = client.response(payload["request_id"])
    assert out["status"] == "success"
    assert out["result"]["params"] == {}
    assert out["result"]["context"]["deadline"] is None
    assert list(out["result"]["context"]) == [
        "job_id",
        "attempt",
        "enqueue_time",
        "queue_name",
        "deadline",
        "trace_context",
        "correlation_context",
        "worker_id",
    ]


def test_returned_error_outcome(client: FrameClient) -> None:
    rid = client.send_request(
        "fail", {"message": "bad input", "type": "ValidationError", "code": "E1"}
    )
    out = client.response(rid)
    assert out["status"] == "error"
    assert out["error"] == {
        "message": "bad input",
        "type": "ValidationError",
        "code": "E1",
        "details": None,
    }


def test_thrown_error(client: FrameClient) -> None:
    rid = client.send_request("throw", {"message": "kaboom"})
    out = client.response(rid)
    assert out["status"] == "error"
    assert out["error"]["message"] == "kaboom"
    assert out["error"]["type"] == "RuntimeError"
    traceback = out["error"]["traceback"]  # RUNNER_PROTOCOL.md §7.1
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert 'conformance_runner.py", line ' in traceback
    assert 'raise RuntimeError(_param(request, "message", "boom"))' in traceback
    assert traceback.endswith("RuntimeError: kaboom\n")


def test_retry_with_retry_after_seconds(client: FrameClient) -> None:
    rid = client.send_request("retry", {"after_seconds": 2.5, "message": "later"})
    out = client.response(rid)
    assert out["status"] == "retry"
    assert out["retry_after_seconds"] == 2.5
    assert out["error"]["message"] == "later"
    rid = client.send_request("flaky", {"fail_until_attempt": 2, "mode": "retry"}, attempt=2)
    out = client.response(rid)
    # A retry outcome without an error gets the default message (RUNNER_PROTOCOL.md §7).
    assert (out["status"], out["retry_after_seconds"]) == ("retry", 0)
    assert out["error"]["message"] == "Job requested retry"
    rid = client.send_request("flaky", {"fail_until_attempt": 2}, attempt=3)
    assert client.response(rid)["result"] == {"attempt": 3}
    rid = client.send_request("flaky", {"fail_until_attempt": 2}, attempt=1)
    assert client.response(rid)["error"]["message"] == "flaky failure on attempt 1"


def test_handler_not_found(client: FrameClient) -> None:
    rid = client.send_request("missing")
    out = client.response(rid)
    assert out["status"] == "error"
    assert out["error"]["type"] == "handler_not_found"
    assert out["error"]["message"] == "No handler registered for function 'missing'"


def test_timeout_error_raised_by_handler(client: FrameClient) -> None:
    rid = client.send_request("timeout")
    out = client.response(rid)
    assert (out["status"], out["error"]["type"], out["error"]["message"]) == (
        "timeout",
        "timeout",
        "Job execution timed out",
    )
    rid = client.send_request("timeout", {"message": "upstream too slow"})
    assert client.response(rid)["error"]["message"] == "upstream too slow"


def test_past_deadline(client: FrameClient) -> None:
    rid = client.send_request("echo", {"x": 1}, deadline=rfc3339(-1))
    out = client.response(rid)
    assert out["status"] == "timeout"
    assert out["error"]["type"] == "timeout"
    assert out["error"]["message"] == "Job deadline exceeded"


def test_deadline_expires_during_execution(client: FrameClient) -> None:
    started = time.monotonic()
    rid = client.send_request("sleep", {"ms": 5000}, deadline=rfc3339(0.3))
    out = client.response(rid, timeout=4)
    elapsed = time.monotonic() - started
    assert out["status"] == "timeout"
    assert out["error"]["type"] == "timeout"
    assert out["error"]["message"] == "Job execution timed out"
    assert 0.2 < elapsed < 2.0
    # A future deadline that is not reached does not interfere.
    rid = client.send_request("sleep", {"ms": 10}, deadline=rfc3339(30))
    assert client.response(rid)["status"] == "success"


def test_cancel_by_request_id(client: FrameClient) -> None:
    job = new_id("job")
    rid = client.send_request("sleep", {"ms": 5000}, job_id=job)
    other = client.send_request("sleep", {"ms": 300}, job_id=job)
    client.ping()  # both requests are in flight now
    client.cancel(job, rid)
    out = client.response(rid, timeout=2)
    assert out["status"] == "error"
    assert out["error"]["type"] == "cancelled"
    assert out["error"]["message"] == "Job cancelled"
    assert out["job_id"] == job
    assert client.response(other)["status"] == "success"  # same job, other request: untouched
    client.cancel(job, rid)  # already answered: ignored
    client.cancel(job, "no-such-request")  # unknown: ignored
    client.ping()
    assert client.pending_responses(rid) == []


def test_cancel_by_job_id_with_several_in_flight(client: FrameClient) -> None:
    job, other_job = new_id("job"), new_id("job")
    rids = [client.send_request("sleep", {"ms": 5000}, job_id=job) for _ in range(3)]
    survivor = client.send_request("sleep", {"ms": 200}, job_id=other_job)
    client.ping()
    client.cancel(job)  # request_id omitted: job-wide
    outs = client.responses(rids, timeout=2)
    for rid, out in outs.items():
        assert out["request_id"] == rid
        assert (out["status"], out["error"]["type"]) == ("error", "cancelled")
    assert client.response(survivor)["status"] == "success"


def test_cancel_with_wrong_protocol_version_is_ignored(client: FrameClient) -> None:
    job = new_id("job")
    rid = client.send_request("sleep", {"ms": 150}, job_id=job)
    client.cancel(job, rid, version="1")
    assert client.response(rid)["status"] == "success"


def test_in_flight_cap_of_64(client: FrameClient) -> None:
    job = new_id("job")
    rids = [client.send_request("sleep", {"ms": 10_000}, job_id=job) for _ in range(64)]
    client.ping()
    started = time.monotonic()
    rejected = client.send_request("echo", {}, job_id=new_id("job"))
    out = client.response(rejected, timeout=2)
    assert time.monotonic() - started < 1.0
    assert out["status"] == "error"
    assert out["error"]["message"] == "Runner busy: too many in-flight requests"
    assert out["error"]["type"] is None
    client.cancel(job)
    outs = client.responses(rids, timeout=5)
    assert all(o["error"]["type"] == "cancelled" for o in outs.values())
    # Slots are free again.
    rid = client.send_request("echo", {"after": "cap"})
    assert client.response(rid)["status"] == "success"


def test_bad_protocol_version_keeps_connection(client: FrameClient) -> None:
    rid = client.send_request("echo", {}, protocol_version="3")
    out = client.response(rid)
    assert out["status"] == "error"
    assert out["error"]["message"] == "Unsupported protocol version"
    assert out["error"]["type"] is None
    rid = client.send_request("echo", {"still": "open"})
    assert client.response(rid)["result"] == {"still": "open"}


def test_replies_out_of_order(client: FrameClient) -> None:
    slow = client.send_request("sleep", {"ms": 400})
    medium = client.send_request("sleep", {"ms": 150})
    fast = client.send_request("echo", {"i": 3})
    order: list[str] = []
    wanted = {slow, medium, fast}
    while len(order) < 3:
        item = client.next_frame()
        if item.type == "response" and item.raw["payload"]["request_id"] in wanted:
            order.append(item.raw["payload"]["request_id"])
    assert order == [fast, medium, slow]


def test_fifteen_mib_round_trip(client: FrameClient) -> None:
    params = {"data": "x" * FIFTEEN_MIB, "tail": "é"}
    rid = client.send_request("echo", params)
    out = client.response(rid, timeout=30)
    assert out["status"] == "success"
    assert out["result"]["data"] == params["data"]
    assert out["result"]["tail"] == "é"


def test_large_result(client: FrameClient) -> None:
    rid = client.send_request("large", {"bytes": 1048576})
    assert client.response(rid, timeout=10)["result"]["data"] == "x" * 1048576


def test_result_over_frame_cap_becomes_error(client: FrameClient) -> None:
    rid = client.send_request("large", {"bytes": 17 * 1024 * 1024})
    out = client.response(rid, timeout=30)
    assert out["status"] == "error"
    assert out["error"]["type"] == "OutcomeTooLarge"
    client.ping()


def test_ping_pong_while_handlers_run(client: FrameClient) -> None:
    rid = client.send_request("sleep", {"ms": 500})
    client.ping()
    assert client.pending_responses(rid) == []  # the pong came back while the handler ran
    assert client.response(rid)["status"] == "success"


def test_unexpected_response_frame(client: FrameClient) -> None:
    client.send(
        "response",
        {"job_id": "j", "request_id": "r", "status": "success", "result": 1},
    )
    out = client.response("<none>")
    assert out == {
        "job_id": "unknown",
        "request_id": None,
        "status": "error",
        "result": None,
        "error": {
            "message": "Unexpected response message",
            "type": None,
            "code": None,
            "details": None,
        },
        "retry_after_seconds": None,
    }
    client.send("pong", {"nonce": "ignored"})
    client.send(
        "hello",
        {"protocol_version": "2", "runtime": "x", "features": []},
    )
    client.ping()


def test_ignore_cancel_gives_at_most_one_outcome(client: FrameClient) -> None:
    job = new_id("job")
    rid = client.send_request("ignore_cancel", {"ms": 200}, job_id=job)
    client.cancel(job, rid)
    first = client.response(rid, timeout=3)
    assert first["status"] in ("success", "error")
    client.drain(0.4)
    assert client.pending_responses(rid) == []


def test_stdout_noise_does_not_corrupt_frames(client: FrameClient) -> None:
    rid = client.send_request("noise", {"lines": 50})
    after = client.send_request("echo", {"after": "noise"})
    assert client.response(rid)["result"] == {"lines": 50}
    assert client.response(after)["result"] == {"after": "noise"}
    assert client.decode_error is None


def test_frames_cut_at_any_byte_are_reassembled(client: FrameClient) -> None:
    # Two requests sent in small pieces (a header cut in two, a body cut many times, the
    # second frame starting inside a piece): each read completes what the last one started.
    from rrqkit.codec import encode_frame

    first = request("echo", {"piece": 1, "pad": "x" * 300})
    second = request("echo", {"piece": 2})
    data = b"".join(
        encode_frame({"type": "request", "payload": p}, client.encoding) for p in (first, second)
    )
    for size in (3, 1, 5, 2, 7):
        for start in range(0, len(data), size * 40):
            chunk = data[start : start + size * 40]
            for at in range(0, len(chunk), size):
                client.send_raw(chunk[at : at + size])
            time.sleep(0.002)  # separate reads on the runner's side
        assert client.response(first["request_id"])["result"]["piece"] == 1
        assert client.response(second["request_id"])["result"] == {"piece": 2}


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_reader_that_does_not_read_pauses_the_runner(runner_pool: object, transport: str) -> None:
    # Outcomes the peer does not read fill the socket: the runner stops reading requests
    # (instead of buffering outcomes without bound), and serves every one once it reads again.
    import socket as socket_module

    from rrqkit.codec import FrameDecoder, encode_frame

    runner = runner_pool.get(transport, "json")  # type: ignore[attr-defined]
    runner.connect().close()  # listening by now
    family = socket_module.AF_INET if transport == "tcp" else socket_module.AF_UNIX
    sock = socket_module.socket(family, socket_module.SOCK_STREAM)
    sock.connect(runner.address)
    sock.settimeout(10)
    decoder = FrameDecoder("json")
    big = "y" * (256 * 1024)
    payloads = [request("echo", {"big": big, "n": n}) for n in range(48)]
    out = b"".join(encode_frame({"type": "request", "payload": p}, "json") for p in payloads)
    sender_error: list[BaseException] = []

    def send() -> None:
        try:
            sock.sendall(out)
        except OSError as exc:
            sender_error.append(exc)

    import threading

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(1.0)  # nothing read: ~12 MiB of outcomes cannot all be buffered by the kernel
    answered: set[int] = set()
    while len(answered) < len(payloads):
        for frame in decoder.feed(sock.recv(1 << 20)):
            if frame.type == "response":
                result = frame.raw["payload"]["result"]
                assert result["big"] == big
                answered.add(result["n"])
    sender.join(10)
    assert not sender_error
    assert runner.alive()
    sock.close()


# ------------------------------------------------------------------------------------------
# Tests that break a connection use their own connection or process.


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
@pytest.mark.parametrize("transport", ["stdio", "unix", "tcp"])
def test_oversized_frame_closes_connection(
    runner_pool: object, transport: str, encoding: str
) -> None:
    with RunnerProcessCtx(runner_pool, transport, encoding) as runner:
        conn = runner.connect()
        rid = conn.send_request("sleep", {"ms": 5000})
        conn.ping()
        conn.send_raw(struct.pack(">I", 16 * 1024 * 1024 + 1))  # header only: no body follows
        frames = conn.expect_closed(timeout=3)
        assert all(
            f.raw["payload"].get("request_id") != rid for f in frames if f.type == "response"
        )
        _assert_runner_survives(runner, transport)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
@pytest.mark.parametrize("transport", ["stdio", "unix", "tcp"])
def test_peer_closing_mid_frame(runner_pool: object, transport: str, encoding: str) -> None:
    with RunnerProcessCtx(runner_pool, transport, encoding) as runner:
        conn = runner.connect()
        in_flight = conn.send_request("sleep", {"ms": 5000})
        conn.ping()
        from rrqkit.codec import encode_frame

        data = encode_frame({"type": "request", "payload": request("echo")}, encoding)  # type: ignore[arg-type]
        conn.send_raw(data[: len(data) // 2])
        conn.shutdown_write()
        frames = conn.expect_closed(timeout=3)
        assert [f for f in frames if f.type == "response"] == []  # in-flight aborted, no reply
        del in_flight
        _assert_runner_survives(runner, transport)


class RunnerProcessCtx:
    """stdio: a fresh process; sockets: the shared runner (a new connection is enough)."""

    def __init__(self, pool: object, transport: str, encoding: str) -> None:
        self.pool = pool
        self.transport = transport
        self.encoding = encoding
        self.own: RunnerProcess | None = None

    def __enter__(self) -> RunnerProcess:
        if self.transport == "stdio":
            self.own = RunnerProcess("stdio", self.encoding)  # type: ignore[arg-type]
            return self.own
        return self.pool.get(self.transport, self.encoding)  # type: ignore[attr-defined,no-any-return]

    def __exit__(self, *exc: object) -> None:
        if self.own is not None:
            self.own.stop()


def _assert_runner_survives(runner: RunnerProcess, transport: str) -> None:
    if transport == "stdio":
        # The only connection is gone: the runner exits instead of serving nothing.
        code = runner.wait(5)
        assert code in (0, 1)
        assert "Traceback" not in runner.stderr_text
        return
    assert runner.alive()
    fresh = runner.connect()
    rid = fresh.send_request("echo", {"alive": True})
    assert fresh.response(rid)["result"] == {"alive": True}
    fresh.close()
