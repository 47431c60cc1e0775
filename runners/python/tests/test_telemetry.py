"""The rrq.runner span (protocol/TELEMETRY.md), with an in-process runtime on a Unix socket."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import FrameClient, new_id, request, rfc3339, socket_client

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from rrqkit import telemetry
from rrqkit.conformance_runner import build_registry
from rrqkit.runtime import RunnerRuntime

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def traced() -> Iterator[tuple[FrameClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = RunnerRuntime(
        build_registry(), telemetry=telemetry.OtelTelemetry(provider), hello=False
    )
    path = os.path.join(tempfile.mkdtemp(prefix="rrqk-otel-"), "r.sock")
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runtime.serve_unix(path, on_ready=lambda _p: ready.set()))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    client = socket_client(sock, "json")
    try:
        yield client, exporter
    finally:
        client.close()
        runtime.stop()
        thread.join(5)
        loop.close()


def _spans(exporter: InMemorySpanExporter, count: int) -> list[Any]:
    deadline = time.monotonic() + 3
    while len(exporter.get_finished_spans()) < count:
        assert time.monotonic() < deadline, exporter.get_finished_spans()
        time.sleep(0.01)
    return list(exporter.get_finished_spans())


def test_success_span(traced: tuple[FrameClient, InMemorySpanExporter]) -> None:
    client, exporter = traced
    payload = request("echo", {"a": 1}, deadline=rfc3339(30))
    payload["context"]["enqueue_time"] = rfc3339(-2)
    payload["context"]["trace_context"] = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01"}
    payload["context"]["correlation_context"] = {"tenant": "acme"}
    client.send("request", payload)
    assert client.response(payload["request_id"])["status"] == "success"
    (span,) = _spans(exporter, 1)
    assert span.name == "rrq.runner"
    assert span.kind == SpanKind.CONSUMER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN
    attrs = dict(span.attributes)
    assert attrs["rrq.job_id"] == payload["job_id"]
    assert attrs["rrq.function"] == "echo"
    assert attrs["rrq.queue"] == "rrq:queue:default"
    assert attrs["rrq.attempt"] == 1
    assert attrs["rrq.worker_id"] == "worker-test"
    assert 1900 <= attrs["rrq.queue_wait_ms"] <= 5000
    assert 25_000 <= attrs["rrq.deadline_remaining_ms"] <= 30_000
    assert attrs["span.kind"] == "consumer"
    assert attrs["messaging.system"] == "redis"
    assert attrs["messaging.destination.name"] == "rrq:queue:default"
    assert attrs["messaging.operation"] == "process"
    assert attrs["tenant"] == "acme"
    assert attrs["rrq.outcome"] == "success"
    assert isinstance(attrs["rrq.duration_ms"], int)
    assert "rrq.error_message" not in attrs
    assert span.status.status_code == StatusCode.UNSET


@pytest.mark.parametrize(
    ("function_name", "params", "outcome", "error_type", "status"),
    [
        ("throw", {"message": "kaboom"}, "error", "RuntimeError", StatusCode.ERROR),
        ("missing", {}, "error", "handler_not_found", StatusCode.ERROR),
        ("timeout", {}, "timeout", "timeout", StatusCode.ERROR),
        ("retry", {"after_seconds": 1.25, "message": "later"}, "retry", None, StatusCode.UNSET),
    ],
)
def test_outcome_spans(
    traced: tuple[FrameClient, InMemorySpanExporter],
    function_name: str,
    params: dict[str, Any],
    outcome: str,
    error_type: str | None,
    status: StatusCode,
) -> None:
    client, exporter = traced
    rid = client.send_request(function_name, params)
    reply = client.response(rid)
    (span,) = _spans(exporter, 1)
    attrs = dict(span.attributes)
    assert attrs["rrq.outcome"] == outcome
    assert attrs["rrq.error_message"] == reply["error"]["message"]
    assert attrs.get("rrq.error_type") == error_type
    assert span.status.status_code == status
    if outcome == "retry":
        assert attrs["rrq.retry_delay_ms"] == 1250
    else:
        assert "rrq.retry_delay_ms" not in attrs
    assert span.parent is None
    # Raised errors (and only they) carry a traceback and OpenTelemetry's exception event.
    events = [e for e in span.events if e.name == "exception"]
    if function_name in ("throw", "timeout"):
        (event,) = events
        assert event.attributes["exception.type"] == error_type
        assert event.attributes["exception.message"] == reply["error"]["message"]
        assert event.attributes["exception.stacktrace"] == reply["error"]["traceback"]
    else:
        assert events == []


def test_past_deadline_and_cancel_spans(traced: tuple[FrameClient, InMemorySpanExporter]) -> None:
    client, exporter = traced
    rid = client.send_request("echo", {}, deadline=rfc3339(-5))
    assert client.response(rid)["status"] == "timeout"
    job = new_id("job")
    rid = client.send_request("sleep", {"ms": 5000}, job_id=job)
    client.ping()
    client.cancel(job)
    assert client.response(rid)["error"]["type"] == "cancelled"
    deadline_span, cancel_span = sorted(_spans(exporter, 2), key=lambda s: s.start_time)
    assert deadline_span.attributes["rrq.outcome"] == "timeout"
    assert deadline_span.attributes["rrq.deadline_remaining_ms"] < -4000
    assert deadline_span.status.status_code == StatusCode.ERROR
    assert cancel_span.attributes["rrq.outcome"] == "cancelled"
    assert cancel_span.attributes["rrq.error_type"] == "cancelled"
    assert cancel_span.status.status_code == StatusCode.UNSET


def test_no_span_for_refused_requests(traced: tuple[FrameClient, InMemorySpanExporter]) -> None:
    client, exporter = traced
    rid = client.send_request("echo", {}, protocol_version="9")
    assert client.response(rid)["error"]["message"] == "Unsupported protocol version"
    job = new_id("job")
    rids = [client.send_request("sleep", {"ms": 5000}, job_id=job) for _ in range(64)]
    busy = client.send_request("echo", {})
    assert client.response(busy)["error"]["message"].startswith("Runner busy")
    client.cancel(job)
    client.responses(rids)
    spans = _spans(exporter, 64)
    time.sleep(0.1)
    assert len(exporter.get_finished_spans()) == 64
    assert {s.attributes["rrq.function"] for s in spans} == {"sleep"}


def test_endpoint_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert telemetry.endpoint_from_environment() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert telemetry.endpoint_from_environment() == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other/traces")
    assert telemetry.endpoint_from_environment() == "http://other/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    assert telemetry.endpoint_from_environment() is None  # empty disables, blocks the fallback
    assert isinstance(telemetry.resolve(), telemetry.NoopTelemetry)


def test_env_enabled_export_is_flushed_on_shutdown() -> None:
    """A runner process with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans over OTLP/HTTP,
    and flushes them at SIGTERM even when the batch delay has not elapsed."""
    import signal
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from helpers import running

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
        "OTEL_SERVICE_NAME": "py-runner-test",
    }
    try:
        with running("unix", "json", env=env) as runner:
            conn = runner.connect()
            rid = conn.send_request("echo", {"traced": True}, job_id="job-otel")
            assert conn.response(rid)["status"] == "success"
            assert received == []  # batched, not yet exported
            runner.proc.send_signal(signal.SIGTERM)
            assert runner.wait(10) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert [path for path, _ in received] == ["/v1/traces"]
    body = received[0][1]
    for needle in (b"rrq.runner", b"job-otel", b"py-runner-test", b"rrq.outcome"):
        assert needle in body
