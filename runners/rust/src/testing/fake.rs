//! [`FakeProducer`]: enqueues are checked and recorded in memory; nothing runs until
//! [`FakeProducer::drain`]. No Redis and no network connection at all.

use std::sync::Arc;

use super::core::{TestProducer, MAX_DRAIN_EXECUTIONS};
use crate::handler::Registry;
use crate::producer::{ProducerConfig, ProducerMiddleware};
use crate::runtime::Runner;

/// A producer that records jobs. The enqueue API (`enqueue`, `enqueue_many`, `enqueue_typed`,
/// `enqueue_with_rate_limit`, `enqueue_with_debounce`, `get_job_status`,
/// `wait_for_completion`, `jobs`, `jobs_for`, `clear`) is [`TestProducer`]'s, reached through
/// `Deref`. `wait_for_completion` runs nothing and does not wait: it returns the job's status
/// when [`FakeProducer::drain`] has made it final, else `None`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rrqkit::testing::FakeProducer;
/// use rrqkit::{EnqueueOptions, HandlerError, Registry};
/// let mut registry = Registry::new();
/// registry.register("echo", |req| async move { Ok::<_, HandlerError>(req.params) });
/// let fake = FakeProducer::new().with_registry(registry);
/// let id = fake.enqueue("echo", serde_json::Map::new(), EnqueueOptions::default()).await?;
/// assert_eq!(fake.jobs_for("echo").len(), 1);
/// fake.drain().await.unwrap();
/// assert_eq!(fake.job(&id).unwrap().status, rrqkit::JobStatus::Completed);
/// # Ok::<_, rrqkit::ProducerError>(()) }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct FakeProducer {
    inner: TestProducer,
}

/// Why [`FakeProducer::drain`] stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// Jobs kept enqueueing jobs: more than [`MAX_DRAIN_EXECUTIONS`] handler executions.
    #[error("drain stopped after {0} executions (limit {MAX_DRAIN_EXECUTIONS}): do jobs keep enqueueing jobs?")]
    TooManyExecutions(usize),
    /// An enqueue made while running failed.
    #[error(transparent)]
    Producer(#[from] crate::producer::ProducerError),
}

impl Default for FakeProducer {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeProducer {
    /// With the default producer config (queue `default`, 5 attempts, 300 s timeout).
    pub fn new() -> Self {
        Self::with_config(ProducerConfig::default())
    }

    /// With `config`'s defaults (no connection is made: the DSN is not used).
    pub fn with_config(config: ProducerConfig) -> Self {
        FakeProducer {
            inner: TestProducer::new(config, false),
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

    /// Runs every pending job through its handler with the inline rules, including jobs
    /// enqueued during the drain, until none is pending. Returns the handler executions.
    pub async fn drain(&self) -> Result<usize, DrainError> {
        let mut executions = 0;
        while let Some(id) = self.inner.next_pending() {
            executions += self.inner.run_job(id).await?;
            if executions > MAX_DRAIN_EXECUTIONS {
                return Err(DrainError::TooManyExecutions(executions));
            }
        }
        Ok(executions)
    }
}

impl std::ops::Deref for FakeProducer {
    type Target = TestProducer;

    fn deref(&self) -> &TestProducer {
        &self.inner
    }
}
