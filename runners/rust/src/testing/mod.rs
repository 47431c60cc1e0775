//! Testing modes (feature `testing`): run jobs without an orchestrator (docs/testing.md).
//!
//! - [`FakeProducer`]: records enqueues in memory; [`FakeProducer::drain`] runs them.
//! - [`InlineProducer`]: runs each job as it is enqueued.
//! - [`LiveRrq`]: a private `redis-server` and `rrq worker run` for the test's duration, with
//!   a real [`crate::Producer`].
//!
//! The fake and inline producers take the real producer's options, run its middleware and its
//! checks (options, catalog), and judge each attempt with the orchestrator's rules
//! ([`rules`]): neither opens any connection.

mod core;
mod fake;
mod inline;
mod live;
pub mod rules;

pub use self::core::{RecordedJob, TestProducer, MAX_DRAIN_EXECUTIONS};
pub use fake::{DrainError, FakeProducer};
pub use inline::InlineProducer;
pub use live::{LiveError, LiveRrq};
