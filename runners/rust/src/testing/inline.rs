//! [`InlineProducer`]: every enqueue runs the job at once, in process, and returns when it is
//! final. No Redis and no network connection at all.

use std::sync::Arc;

use super::core::TestProducer;
use crate::handler::Registry;
use crate::producer::{ProducerConfig, ProducerMiddleware};
use crate::runtime::Runner;

/// A producer that runs each job as it is enqueued (retries, snoozes and timeouts with the
/// inline rules, delays recorded, not slept). The enqueue API is [`TestProducer`]'s, reached
/// through `Deref`; `wait_for_completion` returns the final status of a job `enqueue` ran. A handler that enqueues through a clone runs the child job inside its own
/// run.
#[derive(Clone, Debug)]
pub struct InlineProducer {
    inner: TestProducer,
}

impl Default for InlineProducer {
    fn default() -> Self {
        Self::new()
    }
}

impl InlineProducer {
    /// With the default producer config (queue `default`, 5 attempts, 300 s timeout).
    pub fn new() -> Self {
        Self::with_config(ProducerConfig::default())
    }

    /// With `config`'s defaults (no connection is made: the DSN is not used).
    pub fn with_config(config: ProducerConfig) -> Self {
        InlineProducer {
            inner: TestProducer::new(config, true),
        }
    }

    /// Runs jobs with `registry`'s handlers, inside its middleware.
    pub fn with_registry(self, registry: Registry) -> Self {
        self.inner.set_registry(registry);
        self
    }

    /// Runs jobs with the handlers and middleware registered on `runner` (a copy of its
    /// registry: later registrations on `runner` are not seen). The runner's catalog is not
    /// used: give it to `catalog` to check params at enqueue.
    pub fn with_runner(self, runner: &Runner) -> Self {
        self.with_registry(runner.registry().clone())
    }

    /// Checks params against `catalog`, as `Producer::catalog`.
    #[cfg(feature = "contracts")]
    pub fn catalog(self, catalog: crate::contracts::JobCatalog) -> Self {
        self.inner.set_catalog(catalog);
        self
    }

    /// Adds a producer middleware, as `Producer::use_middleware`.
    pub fn use_middleware(self, middleware: Arc<dyn ProducerMiddleware>) -> Self {
        self.inner.add_middleware(middleware);
        self
    }
}

impl std::ops::Deref for InlineProducer {
    type Target = TestProducer;

    fn deref(&self) -> &TestProducer {
        &self.inner
    }
}
