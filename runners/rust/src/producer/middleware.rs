//! Producer middleware: hooks around every enqueue (docs/middleware.md).
//!
//! Before-hooks run in registration order on a mutable [`PendingEnqueue`] (they may change the
//! params or the options, or veto the job); after-hooks run in reverse registration order once
//! the job is written (onion). Validation (options, catalog) runs on the job the before-hooks
//! leave, so a hook cannot slip invalid params past the catalog.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{EnqueueItem, EnqueueOptions, ProducerError, ProducerErrorCode};

/// The job a producer is about to enqueue, as the before-hooks see and change it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingEnqueue {
    pub function_name: String,
    pub params: Map<String, Value>,
    pub options: EnqueueOptions,
}

impl From<EnqueueItem> for PendingEnqueue {
    fn from(item: EnqueueItem) -> Self {
        PendingEnqueue {
            function_name: item.function_name,
            params: item.params,
            options: item.options,
        }
    }
}

impl From<PendingEnqueue> for EnqueueItem {
    fn from(job: PendingEnqueue) -> Self {
        EnqueueItem {
            function_name: job.function_name,
            params: job.params,
            options: job.options,
        }
    }
}

/// A producer middleware (register it with [`super::Producer::use_middleware`]). Both hooks
/// are optional and synchronous.
///
/// ```
/// use std::sync::Arc;
/// use rrqkit::producer::{PendingEnqueue, ProducerMiddleware};
/// use rrqkit::ProducerError;
///
/// /// Stamps every job with the tenant and refuses jobs for a frozen tenant.
/// struct Tenant(String);
///
/// impl ProducerMiddleware for Tenant {
///     fn before_enqueue(&self, job: &mut PendingEnqueue) -> Result<(), ProducerError> {
///         if self.0 == "frozen" {
///             return Err(ProducerError::vetoed("tenant is frozen"));
///         }
///         job.params.insert("tenant".into(), self.0.clone().into());
///         Ok(())
///     }
/// }
/// # let _mw: Arc<dyn ProducerMiddleware> = Arc::new(Tenant("acme".into()));
/// ```
pub trait ProducerMiddleware: Send + Sync {
    /// Runs before validation and before anything is written. Return
    /// `Err(ProducerError::vetoed(reason))` to refuse the job (code `enqueue_vetoed`); any
    /// other error is returned to the caller unchanged. Either way nothing is written and the
    /// later hooks do not run.
    fn before_enqueue(&self, job: &mut PendingEnqueue) -> Result<(), ProducerError> {
        let _ = job;
        Ok(())
    }

    /// Runs after the job was written, with its id (for a debounce that updated a pending job,
    /// that job's id; not at all for a rate-limited enqueue that was dropped). An error is
    /// returned to the caller, but the job stays written.
    fn after_enqueue(&self, job: &PendingEnqueue, job_id: &str) -> Result<(), ProducerError> {
        let _ = (job, job_id);
        Ok(())
    }
}

/// The middleware of one producer, in registration order. Public so that other enqueue
/// front ends (e.g. test doubles) run the same hooks with the same rules.
#[derive(Clone, Default)]
pub struct MiddlewareChain {
    hooks: Vec<Arc<dyn ProducerMiddleware>>,
}

impl std::fmt::Debug for MiddlewareChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiddlewareChain")
            .field("len", &self.hooks.len())
            .finish()
    }
}

impl MiddlewareChain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a middleware (its before-hook runs after the ones already added).
    pub fn push(&mut self, middleware: Arc<dyn ProducerMiddleware>) {
        self.hooks.push(middleware);
    }

    /// How many middlewares are registered.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// True without middleware.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Runs every before-hook in registration order on `job`. The first error stops the
    /// chain; a veto gets the job's function name (`enqueue of <fn> vetoed: <reason>`).
    pub fn before(&self, job: &mut PendingEnqueue) -> Result<(), ProducerError> {
        for hook in &self.hooks {
            hook.before_enqueue(job)
                .map_err(|e| named_veto(e, &job.function_name))?;
        }
        Ok(())
    }

    /// Runs every after-hook in reverse registration order; the first error stops the chain.
    pub fn after(&self, job: &PendingEnqueue, job_id: &str) -> Result<(), ProducerError> {
        for hook in self.hooks.iter().rev() {
            hook.after_enqueue(job, job_id)?;
        }
        Ok(())
    }
}

/// A veto without a function name gets `function_name`; other errors pass unchanged.
fn named_veto(err: ProducerError, function_name: &str) -> ProducerError {
    if err.kind() != ProducerErrorCode::EnqueueVetoed || err.function_name().is_some() {
        return err;
    }
    let reason = err.reason().unwrap_or(err.message()).to_string();
    ProducerError::vetoed_named(function_name, &reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Log(&'static str, Arc<Mutex<Vec<String>>>, bool);

    impl ProducerMiddleware for Log {
        fn before_enqueue(&self, job: &mut PendingEnqueue) -> Result<(), ProducerError> {
            self.1.lock().unwrap().push(format!("before {}", self.0));
            if self.2 {
                return Err(ProducerError::vetoed("no"));
            }
            job.params.insert(self.0.into(), true.into());
            Ok(())
        }

        fn after_enqueue(&self, _job: &PendingEnqueue, id: &str) -> Result<(), ProducerError> {
            self.1
                .lock()
                .unwrap()
                .push(format!("after {} {id}", self.0));
            Ok(())
        }
    }

    #[test]
    fn onion_order_and_veto() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut chain = MiddlewareChain::new();
        chain.push(Arc::new(Log("a", log.clone(), false)));
        chain.push(Arc::new(Log("b", log.clone(), false)));
        let mut job = PendingEnqueue {
            function_name: "f".into(),
            ..Default::default()
        };
        chain.before(&mut job).unwrap();
        chain.after(&job, "j1").unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["before a", "before b", "after b j1", "after a j1"]
        );
        assert_eq!(job.params.len(), 2);

        log.lock().unwrap().clear();
        let mut chain = MiddlewareChain::new();
        chain.push(Arc::new(Log("v", log.clone(), true)));
        chain.push(Arc::new(Log("late", log.clone(), false)));
        let e = chain.before(&mut job).unwrap_err();
        assert_eq!(e.code(), "enqueue_vetoed");
        assert_eq!(e.message(), "enqueue of f vetoed: no");
        assert_eq!(e.function_name(), Some("f"));
        assert_eq!(e.reason(), Some("no"));
        assert_eq!(*log.lock().unwrap(), ["before v"]);
    }
}
