"""OpenTelemetry integration: the ``rrq.runner`` span (protocol/TELEMETRY.md).

Tracing is on when :func:`enable` was called, or when the environment names a traces endpoint
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as is, else ``OTEL_EXPORTER_OTLP_ENDPOINT`` +
``/v1/traces``; an empty traces endpoint disables tracing and blocks the fallback). Export is
OTLP/HTTP protobuf with batching. Needs the ``otel`` extra (``pip install rrqkit[otel]``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from .models import ExecutionOutcome, ExecutionRequest
from .wiretime import parse_wire_time

__all__ = [
    "NoopTelemetry",
    "OtelTelemetry",
    "Telemetry",
    "current",
    "enable",
    "endpoint_from_environment",
    "resolve",
]


def _reserved_attribute(name: str) -> bool:
    """Names the rrq.runner span sets itself: rrq.*, messaging.* and span.kind."""
    return name.startswith(("rrq.", "messaging.")) or name == "span.kind"


class Telemetry:
    """Telemetry hooks used by the runner runtime. The base class does nothing."""

    def start(self, request: ExecutionRequest) -> Any:
        return None

    @contextlib.contextmanager
    def activate(self, span: Any) -> Iterator[None]:
        yield

    def end(self, span: Any, outcome: ExecutionOutcome | None, duration_ms: int) -> None:
        return None

    def shutdown(self, timeout_seconds: float = 2.0) -> None:
        return None


class NoopTelemetry(Telemetry):
    pass


def _outcome_label(outcome: ExecutionOutcome) -> str:
    if (
        outcome.status == "error"
        and outcome.error is not None
        and outcome.error.type == "cancelled"
    ):
        return "cancelled"
    return outcome.status


class OtelTelemetry(Telemetry):
    """Creates one ``rrq.runner`` CONSUMER span per request a handler runs for."""

    def __init__(self, tracer_provider: Any = None, *, owns_provider: bool = False) -> None:
        from opentelemetry import trace
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.propagators.composite import CompositePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self._provider = provider
        self._owns_provider = owns_provider
        from . import __version__

        self._tracer = provider.get_tracer("rrqkit", __version__)
        self._propagator = CompositePropagator(
            [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
        )

    def start(self, request: ExecutionRequest) -> Any:
        from opentelemetry.trace import SpanKind

        ctx = request.context
        parent = None
        if ctx.trace_context:
            try:
                parent = self._propagator.extract(carrier=dict(ctx.trace_context))
            except Exception:
                parent = None
        now_ns = time.time_ns()
        attributes: dict[str, Any] = {
            "rrq.job_id": request.job_id,
            "rrq.function": request.function_name,
            "rrq.queue": ctx.queue_name,
            "rrq.attempt": ctx.attempt,
            "span.kind": "consumer",
            "messaging.system": "redis",
            "messaging.destination.name": ctx.queue_name,
            "messaging.operation": "process",
        }
        if ctx.worker_id is not None:
            attributes["rrq.worker_id"] = ctx.worker_id
        with contextlib.suppress(ValueError):
            waited = (now_ns - parse_wire_time(ctx.enqueue_time)) // 1_000_000
            attributes["rrq.queue_wait_ms"] = max(0, waited)
        if ctx.deadline is not None:
            with contextlib.suppress(ValueError):
                remaining = parse_wire_time(ctx.deadline) - now_ns
                attributes["rrq.deadline_remaining_ms"] = int(remaining / 1_000_000)
        if ctx.correlation_context:
            for key, value in ctx.correlation_context.items():
                # A correlation entry never overrides an attribute of the table (TELEMETRY.md).
                if not _reserved_attribute(key):
                    attributes[key] = value
        return self._tracer.start_span(
            "rrq.runner", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )

    @contextlib.contextmanager
    def activate(self, span: Any) -> Iterator[None]:
        if span is None:
            yield
            return
        with self._trace.use_span(span, end_on_exit=False, record_exception=False):
            yield

    def end(self, span: Any, outcome: ExecutionOutcome | None, duration_ms: int) -> None:
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        try:
            if outcome is None:  # the connection closed: no outcome was written
                span.set_attribute("rrq.outcome", "cancelled")
            else:
                span.set_attribute("rrq.outcome", _outcome_label(outcome))
            span.set_attribute("rrq.duration_ms", max(0, int(duration_ms)))
            if outcome is not None:
                if outcome.status == "retry" and outcome.retry_after_seconds is not None:
                    span.set_attribute(
                        "rrq.retry_delay_ms", round(outcome.retry_after_seconds * 1000)
                    )
                if outcome.error is not None:
                    span.set_attribute("rrq.error_message", outcome.error.message)
                    if outcome.error.type is not None:
                        span.set_attribute("rrq.error_type", outcome.error.type)
                    if outcome.error.traceback is not None:
                        # OpenTelemetry's exception event (TELEMETRY.md), for raised errors only.
                        span.add_event(
                            "exception",
                            {
                                "exception.type": outcome.error.type or "Exception",
                                "exception.message": outcome.error.message,
                                "exception.stacktrace": outcome.error.traceback,
                            },
                        )
                if (
                    outcome.status in ("error", "timeout")
                    and _outcome_label(outcome) != "cancelled"
                ):
                    message = outcome.error.message if outcome.error is not None else None
                    span.set_status(Status(StatusCode.ERROR, message))
        finally:
            span.end()

    def shutdown(self, timeout_seconds: float = 2.0) -> None:
        provider = self._provider
        try:
            if hasattr(provider, "force_flush"):
                provider.force_flush(int(timeout_seconds * 1000))
            if self._owns_provider and hasattr(provider, "shutdown"):
                provider.shutdown()
        except Exception as exc:  # never fail a shutdown over telemetry
            print(f"rrqkit: telemetry flush failed: {exc}", file=sys.stderr)


_current: Telemetry | None = None


def endpoint_from_environment() -> str | None:
    """The OTLP traces endpoint the environment asks for, or None (tracing off)."""
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces is not None:
        return traces or None  # empty disables tracing and blocks the fallback
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if base:
        return base.rstrip("/") + "/v1/traces"
    return None


def enable(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    tracer_provider: Any = None,
) -> Telemetry:
    """Turn tracing on for runners started in this process.

    With ``tracer_provider`` the spans go to that provider (you own its exporters). Otherwise a
    provider is built with an OTLP/HTTP exporter to ``endpoint`` (default: from the environment,
    else http://localhost:4318/v1/traces) and a batch span processor, and is installed as the
    global tracer provider. ``service.name`` is ``service_name``, else ``OTEL_SERVICE_NAME``,
    else ``rrq-runner``.
    """
    global _current
    if tracer_provider is not None:
        _current = OtelTelemetry(tracer_provider)
        return _current
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "rrq-runner"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    target = endpoint or endpoint_from_environment() or "http://localhost:4318/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=target)))
    trace.set_tracer_provider(provider)
    _current = OtelTelemetry(provider, owns_provider=True)
    return _current


def current() -> Telemetry | None:
    """The telemetry installed by :func:`enable`, if any."""
    return _current


def resolve(explicit: Telemetry | None = None) -> Telemetry:
    """Pick the telemetry for a runtime: explicit, else enabled in code, else from the
    environment, else no-op."""
    if explicit is not None:
        return explicit
    if _current is not None:
        return _current
    endpoint = endpoint_from_environment()
    if endpoint is None:
        return NoopTelemetry()
    try:
        return enable(endpoint=endpoint)
    except ImportError:
        print(
            "rrqkit: an OTLP traces endpoint is set but OpenTelemetry is not installed; "
            "install rrqkit[otel] to export spans",
            file=sys.stderr,
        )
        return NoopTelemetry()
