//! The `rrq.runner` span (TELEMETRY.md). Real only with the `otel` feature; otherwise every
//! function here is a no-op.
//!
//! Tracing is on when [`enable`] was called before the runner starts, or when the environment
//! names a traces endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
//! `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`). An empty `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! turns it off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::protocol::{ExecutionOutcome, ExecutionRequest};

static ENABLED_IN_CODE: AtomicBool = AtomicBool::new(false);
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Turns span export on from code (call before [`crate::Runner::run`]). Without the `otel`
/// feature this has no effect.
pub fn enable() {
    ENABLED_IN_CODE.store(true, Ordering::SeqCst);
}

/// Whether spans are being exported.
pub fn is_active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// Decides from [`enable`] and the environment whether to export, per TELEMETRY.md.
pub fn wanted() -> bool {
    match std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        Ok(v) if v.trim().is_empty() => false,
        Ok(_) => true,
        Err(_) => {
            ENABLED_IN_CODE.load(Ordering::SeqCst)
                || std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .map(|v| !v.trim().is_empty())
                    .unwrap_or(false)
        }
    }
}

/// Names the `rrq.runner` span sets itself: `rrq.*`, `messaging.*` and `span.kind`.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
fn reserved_attribute(name: &str) -> bool {
    name.starts_with("rrq.") || name.starts_with("messaging.") || name == "span.kind"
}

/// Whole milliseconds from `a` to `b` (negative when `b` is earlier).
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
fn millis_between(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> i64 {
    (b - a).num_milliseconds()
}

/// `rrq.outcome` for an outcome: `cancelled` for an error of type `cancelled`.
pub fn outcome_label(o: &ExecutionOutcome) -> &'static str {
    use crate::protocol::OutcomeStatus;
    match o.status {
        OutcomeStatus::Success => "success",
        OutcomeStatus::Retry => "retry",
        OutcomeStatus::Timeout => "timeout",
        OutcomeStatus::Error => {
            if o.error.as_ref().and_then(|e| e.error_type.as_deref())
                == Some(crate::protocol::ERROR_TYPE_CANCELLED)
            {
                "cancelled"
            } else {
                "error"
            }
        }
    }
}

#[cfg(not(feature = "otel"))]
mod imp {
    use super::*;

    /// Starts span export when [`wanted`] (called by [`crate::Runner::run`]).
    pub fn init_from_env() {
        let _ = &ACTIVE;
        if wanted() {
            eprintln!(
                "[rrqkit-rust] tracing was requested but this build has no `otel` feature; spans are not exported"
            );
        }
    }

    /// Flushes and stops span export.
    pub fn shutdown() {}

    /// Span state of one request.
    pub(crate) struct RequestSpan {
        _start: Instant,
    }

    impl RequestSpan {
        pub(crate) fn start(_req: &ExecutionRequest) -> Self {
            RequestSpan {
                _start: Instant::now(),
            }
        }

        pub(crate) fn end(self, _outcome: Option<&ExecutionOutcome>) {}
    }
}

#[cfg(feature = "otel")]
mod imp {
    use super::*;
    use std::sync::Mutex;

    use opentelemetry::global;
    use opentelemetry::propagation::{Extractor, TextMapCompositePropagator};
    use opentelemetry::trace::{Span, SpanKind, Status, Tracer};
    use opentelemetry::KeyValue;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;

    static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

    /// Starts span export when [`wanted`] (called by [`crate::Runner::run`]).
    pub fn init_from_env() {
        if !wanted() || is_active() {
            return;
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!("[rrqkit-rust] cannot build the OTLP exporter: {e}");
                return;
            }
        };
        let service_name = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "rrq-runner".to_string());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service_name).build())
            .build();
        global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]));
        global::set_tracer_provider(provider.clone());
        *PROVIDER.lock().unwrap_or_else(|p| p.into_inner()) = Some(provider);
        ACTIVE.store(true, Ordering::SeqCst);
    }

    /// Flushes and stops span export.
    pub fn shutdown() {
        let provider = PROVIDER.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(p) = provider {
            ACTIVE.store(false, Ordering::SeqCst);
            if let Err(e) = p.force_flush() {
                eprintln!("[rrqkit-rust] span flush failed: {e}");
            }
            let _ = p.shutdown();
        }
    }

    struct MapExtractor<'a>(&'a crate::protocol::StringMap);

    impl Extractor for MapExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }

    /// Span state of one request.
    pub(crate) struct RequestSpan {
        start: Instant,
        span: Option<global::BoxedSpan>,
    }

    impl RequestSpan {
        pub(crate) fn start(req: &ExecutionRequest) -> Self {
            let start = Instant::now();
            if !is_active() {
                return RequestSpan { start, span: None };
            }
            let ctx = &req.context;
            let parent = match &ctx.trace_context {
                Some(carrier) => {
                    global::get_text_map_propagator(|p| p.extract(&MapExtractor(carrier)))
                }
                None => opentelemetry::Context::new(),
            };
            let now = chrono::Utc::now();
            let mut attrs = vec![
                KeyValue::new("rrq.job_id", req.job_id.clone()),
                KeyValue::new("rrq.function", req.function_name.clone()),
                KeyValue::new("rrq.queue", ctx.queue_name.clone()),
                KeyValue::new("rrq.attempt", ctx.attempt as i64),
            ];
            if let Some(w) = &ctx.worker_id {
                attrs.push(KeyValue::new("rrq.worker_id", w.clone()));
            }
            if let Some(enq) = ctx.enqueue_time_parsed() {
                attrs.push(KeyValue::new(
                    "rrq.queue_wait_ms",
                    millis_between(enq, now).max(0),
                ));
            }
            if let Some(deadline) = ctx.deadline_time() {
                attrs.push(KeyValue::new(
                    "rrq.deadline_remaining_ms",
                    millis_between(now, deadline),
                ));
            }
            attrs.push(KeyValue::new("span.kind", "consumer"));
            attrs.push(KeyValue::new("messaging.system", "redis"));
            attrs.push(KeyValue::new(
                "messaging.destination.name",
                ctx.queue_name.clone(),
            ));
            attrs.push(KeyValue::new("messaging.operation", "process"));
            if let Some(corr) = &ctx.correlation_context {
                // A correlation entry never overrides an attribute of the table (TELEMETRY.md).
                for (k, v) in corr.iter().filter(|(k, _)| !reserved_attribute(k)) {
                    attrs.push(KeyValue::new(k.clone(), v.clone()));
                }
            }
            let tracer = global::tracer("rrqkit");
            let span = tracer
                .span_builder("rrq.runner")
                .with_kind(SpanKind::Consumer)
                .with_attributes(attrs)
                .start_with_context(&tracer, &parent);
            RequestSpan {
                start,
                span: Some(span),
            }
        }

        pub(crate) fn end(self, outcome: Option<&ExecutionOutcome>) {
            let Some(mut span) = self.span else {
                return;
            };
            let duration_ms = self.start.elapsed().as_millis() as i64;
            span.set_attribute(KeyValue::new("rrq.duration_ms", duration_ms));
            match outcome {
                None => {
                    // The connection closed or the runner stopped: no outcome was written.
                    span.set_attribute(KeyValue::new("rrq.outcome", "cancelled"));
                }
                Some(o) => {
                    let label = outcome_label(o);
                    span.set_attribute(KeyValue::new("rrq.outcome", label));
                    if label == "retry" {
                        if let Some(s) = o.retry_after_seconds {
                            span.set_attribute(KeyValue::new(
                                "rrq.retry_delay_ms",
                                (s * 1000.0).round() as i64,
                            ));
                        }
                    }
                    if let Some(e) = &o.error {
                        span.set_attribute(KeyValue::new("rrq.error_message", e.message.clone()));
                        if let Some(t) = &e.error_type {
                            span.set_attribute(KeyValue::new("rrq.error_type", t.clone()));
                        }
                        if let Some(traceback) = &e.traceback {
                            // OpenTelemetry's exception event (TELEMETRY.md), for errors only.
                            let kind = e.error_type.clone().unwrap_or_else(|| "Error".into());
                            span.add_event(
                                "exception",
                                vec![
                                    KeyValue::new("exception.type", kind),
                                    KeyValue::new("exception.message", e.message.clone()),
                                    KeyValue::new("exception.stacktrace", traceback.clone()),
                                ],
                            );
                        }
                    }
                    if label == "error" || label == "timeout" {
                        let msg = o
                            .error
                            .as_ref()
                            .map(|e| e.message.clone())
                            .unwrap_or_default();
                        span.set_status(Status::error(msg));
                    }
                }
            }
            span.end();
        }
    }
}

pub(crate) use imp::RequestSpan;
pub use imp::{init_from_env, shutdown};
