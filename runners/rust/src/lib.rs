//! # rrqkit (Rust)
//!
//! Rust runtime for rrqkit runners and a Redis producer, wire-compatible with RRQ 0.11.
//!
//! - [`Runner`]: register async handlers and serve runner protocol v2 over TCP, a Unix socket or
//!   stdio, in JSON or MessagePack (see `protocol/RUNNER_PROTOCOL.md`).
//! - [`codec`] and [`protocol`]: framing, encodings and typed frames.
//! - [`handler_middleware`]: middleware around handlers ([`Runner::middleware`]).
//! - [`live`]: progress and streamed output from handlers ([`JobContext::current`]).
//! - [`producer`] (feature `producer`, on by default): enqueue jobs and read their status.
//! - [`contracts`] (feature `contracts`, on by default): job catalogs (JSON Schemas of each
//!   job's params) checked by the producer and, when configured, by the runner.
//! - [`telemetry`]: the `rrq.runner` OpenTelemetry span (feature `otel`).
//! - `testing` (feature `testing`): fake, inline and live testing modes.

pub mod canonical;
pub mod codec;
#[cfg(feature = "contracts")]
pub mod contracts;
mod frame_writer;
pub mod handler;
pub mod handler_middleware;
pub mod launch;
pub mod live;
mod msgpack;
mod outbox;
pub mod protocol;
pub mod runtime;
pub mod telemetry;
pub mod traceback;

#[cfg(feature = "producer")]
pub mod producer;
#[cfg(feature = "testing")]
pub mod testing;

pub use codec::{DecodeError, DecodeErrorCode, EncodeError, Encoding, FrameDecoder};
pub use handler::{HandlerError, HandlerResult, IntoHandlerOutcome, IntoOutcome, Registry};
pub use handler_middleware::{middleware_fn, HandlerMiddleware, Next};
pub use launch::{LaunchArgs, Transport};
pub use live::JobContext;
pub use protocol::{
    CancelRequest, ExecutionContext, ExecutionOutcome, ExecutionRequest, Frame, Hello, LiveOptions,
    OutcomeError, OutcomeStatus, OutputChunk, OutputStream, Ping, ProgressUpdate,
};
pub use runtime::{Runner, ServeEnd};

#[cfg(feature = "producer")]
pub use producer::{
    CancelResult, EnqueueOptions, JobResult, JobStatus, PendingEnqueue, Producer, ProducerConfig,
    ProducerError, ProducerErrorCode, ProducerMiddleware,
};
