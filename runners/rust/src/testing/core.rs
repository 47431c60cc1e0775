//! What the fake and inline producers share: the enqueue paths (middleware, validation,
//! single-process unique keys, rate limits and debounce), the recorded jobs and the running of
//! one job through its handler with the inline rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::rules::{self, Decision, JobState};
use crate::canonical::format_timestamp;
use crate::handler::{BoxFuture, CatchUnwind, Registry};
use crate::handler_middleware::panic_outcome;
use crate::live::JobContext;
use crate::producer::{
    self, EnqueueItem, EnqueueOptions, Guard, JobResult, JobStatus, MiddlewareChain,
    PendingEnqueue, Plan, ProducerConfig, ProducerError, ProducerErrorCode, ProducerMiddleware,
    Requested,
};
use crate::protocol::{ExecutionContext, ExecutionOutcome, ExecutionRequest, OutcomeStatus};

/// Most handler executions one `drain` runs before it stops with an error.
pub const MAX_DRAIN_EXECUTIONS: usize = 10_000;

/// A job as the fake and inline producers record it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedJob {
    pub id: String,
    pub function_name: String,
    /// The params after the middleware's before-hooks.
    pub params: Map<String, Value>,
    /// The options after the middleware's before-hooks.
    pub options: EnqueueOptions,
    /// Full queue key, e.g. `rrq:queue:default`.
    pub queue_name: String,
    /// `PENDING` until run, then `COMPLETED` or `FAILED` (`CANCELLED` after a cancel).
    pub status: JobStatus,
    pub result: Option<Value>,
    pub last_error: Option<String>,
    /// `error.type` of the last failed attempt.
    pub error_type: Option<String>,
    /// Attempts counted (snoozes are not).
    pub attempts: u32,
    pub snoozes: u32,
    /// The backoff delays between attempts, in order (never slept).
    pub retry_delays: Vec<f64>,
    /// The delays snoozes asked for, in order (never slept).
    pub snooze_delays: Vec<f64>,
    /// The deferral of the first run (`defer_by_seconds`, `defer_until`, a debounce window);
    /// never slept.
    pub deferred_seconds: Option<f64>,
    /// Total attempts allowed (RRQ's `max_retries`).
    pub max_retries: i64,
    pub job_timeout_seconds: i64,
}

#[derive(Default)]
struct State {
    jobs: IndexMap<String, RecordedJob>,
    unique: HashMap<String, (String, Instant)>,
    rate_limits: HashMap<String, Instant>,
    debounce: HashMap<String, String>,
}

pub(crate) struct Core {
    config: ProducerConfig,
    registry: RwLock<Registry>,
    #[cfg(feature = "contracts")]
    catalog: RwLock<Option<crate::contracts::JobCatalog>>,
    middleware: RwLock<MiddlewareChain>,
    state: Mutex<State>,
    /// Whether an enqueue runs the job at once.
    inline: bool,
}

/// The enqueue API the fake and inline producers share (reached through their `Deref`).
/// Cloning is cheap and shares the recorded jobs, so a handler can hold one to enqueue.
#[derive(Clone)]
pub struct TestProducer {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for TestProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestProducer")
            .field("inline", &self.core.inline)
            .field("jobs", &self.core.state.lock().unwrap().jobs.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What recording an enqueue did.
enum Recorded {
    New(String),
    Existing(String),
    Dropped,
}

impl TestProducer {
    pub(crate) fn new(config: ProducerConfig, inline: bool) -> Self {
        TestProducer {
            core: Arc::new(Core {
                config,
                registry: RwLock::new(Registry::new()),
                #[cfg(feature = "contracts")]
                catalog: RwLock::new(None),
                middleware: RwLock::new(MiddlewareChain::new()),
                state: Mutex::new(State::default()),
                inline,
            }),
        }
    }

    /// The config defaults apply as in the real producer (queue, `max_retries`, timeout).
    pub fn config(&self) -> &ProducerConfig {
        &self.core.config
    }

    /// Handlers jobs run with, wrapped in the registry's middleware as the runner runtime runs
    /// them (replaces the previous registry; clones share it).
    pub fn set_registry(&self, registry: Registry) {
        *self.core.registry.write().unwrap() = registry;
    }

    /// Checks params against `catalog` on every enqueue path, as the real producer.
    #[cfg(feature = "contracts")]
    pub fn set_catalog(&self, catalog: crate::contracts::JobCatalog) {
        *self.core.catalog.write().unwrap() = Some(catalog);
    }

    /// Adds a producer middleware (same hooks and order as `Producer::use_middleware`).
    pub fn add_middleware(&self, middleware: Arc<dyn ProducerMiddleware>) {
        self.core.middleware.write().unwrap().push(middleware);
    }

    /// Every recorded job, in enqueue order.
    pub fn jobs(&self) -> Vec<RecordedJob> {
        lock(&self.core.state).jobs.values().cloned().collect()
    }

    /// The recorded jobs of `function_name`.
    pub fn jobs_for(&self, function_name: &str) -> Vec<RecordedJob> {
        let state = lock(&self.core.state);
        let jobs = state.jobs.values();
        jobs.filter(|j| j.function_name == function_name)
            .cloned()
            .collect()
    }

    /// One recorded job.
    pub fn job(&self, job_id: &str) -> Option<RecordedJob> {
        lock(&self.core.state).jobs.get(job_id).cloned()
    }

    /// Forgets every recorded job, unique key, rate-limit window and debounce key.
    pub fn clear(&self) {
        *lock(&self.core.state) = State::default();
    }

    /// `{status, result, last_error}` like the real producer; `None` for an unknown id.
    pub async fn get_job_status(&self, job_id: &str) -> Result<Option<JobResult>, ProducerError> {
        Ok(self.job(job_id).map(|j| JobResult {
            status: j.status,
            result: j.result.filter(|v| !v.is_null()),
            last_error: j.last_error,
        }))
    }

    /// As `Producer::wait_for_completion`, without waiting: the job's status when it is
    /// `COMPLETED`, `FAILED` or `CANCELLED`, else (not final, or unknown) `None` at once.
    /// Nothing runs a fake producer's jobs but `drain`, so waiting could not change the
    /// answer; an inline producer's jobs are final once their `enqueue` returned. `timeout`
    /// and `block_interval` are taken for source compatibility and not used.
    pub async fn wait_for_completion(
        &self,
        job_id: &str,
        timeout: Duration,
        block_interval: Duration,
    ) -> Result<Option<JobResult>, ProducerError> {
        let _ = (timeout, block_interval);
        let status = self.get_job_status(job_id).await?;
        Ok(status.filter(|r| r.status.is_terminal()))
    }

    /// Enqueues a job (see `Producer::enqueue`): inline runs it before returning.
    pub async fn enqueue(
        &self,
        function_name: &str,
        params: Map<String, Value>,
        options: EnqueueOptions,
    ) -> Result<String, ProducerError> {
        let key = options.rate_limit_key.clone().unwrap_or_default();
        let id = self
            .enqueue_path(function_name, params, options, Requested::Enqueue)
            .await?;
        id.ok_or_else(|| {
            ProducerError::new(
                ProducerErrorCode::RateLimited,
                format!(
                    "enqueue was rate limited: {} already holds a job for this window",
                    prefixed("rrq:rate_limit:", &key)
                ),
            )
        })
    }

    /// `None` while the rate-limit window of `rate_limit_key` is taken (in this process).
    pub async fn enqueue_with_rate_limit(
        &self,
        function_name: &str,
        params: Map<String, Value>,
        options: EnqueueOptions,
    ) -> Result<Option<String>, ProducerError> {
        self.enqueue_path(function_name, params, options, Requested::RateLimit)
            .await
    }

    /// Debounce: while the job of `debounce_key` is still pending (fake mode), its params and
    /// options are replaced and its id returned; else a new job.
    pub async fn enqueue_with_debounce(
        &self,
        function_name: &str,
        params: Map<String, Value>,
        options: EnqueueOptions,
    ) -> Result<String, ProducerError> {
        let id = self
            .enqueue_path(function_name, params, options, Requested::Debounce)
            .await?;
        Ok(id.unwrap_or_default())
    }

    /// A job of a generated params type under its name.
    #[cfg(feature = "contracts")]
    pub async fn enqueue_typed<P: crate::contracts::JobContract>(
        &self,
        params: &P,
    ) -> Result<String, ProducerError> {
        self.enqueue_typed_with(params, EnqueueOptions::default())
            .await
    }

    /// [`TestProducer::enqueue_typed`] with options.
    #[cfg(feature = "contracts")]
    pub async fn enqueue_typed_with<P: crate::contracts::JobContract>(
        &self,
        params: &P,
        options: EnqueueOptions,
    ) -> Result<String, ProducerError> {
        let encoding = |m: String| ProducerError::new(ProducerErrorCode::InvalidParams, m);
        let value = serde_json::to_value(params)
            .map_err(|e| encoding(format!("{}: params cannot be encoded: {e}", P::NAME)))?;
        let Value::Object(map) = value else {
            return Err(encoding(format!(
                "{}: params must encode to a JSON object",
                P::NAME
            )));
        };
        self.enqueue(P::NAME, map, options).await
    }

    /// All or nothing, as `Producer::enqueue_many`: every item passes the before-hooks and
    /// the checks before any is recorded (with the same errors; the items are one chunk
    /// however many there are). Inline runs them in order.
    pub async fn enqueue_many(
        &self,
        items: Vec<EnqueueItem>,
    ) -> Result<Vec<String>, ProducerError> {
        let mut jobs = Vec::with_capacity(items.len());
        for item in items {
            let mut job = PendingEnqueue::from(item);
            self.core.middleware.read().unwrap().before(&mut job)?;
            jobs.push(job);
        }
        let mut plans = Vec::with_capacity(jobs.len());
        let mut seen = std::collections::HashSet::new();
        for (index, job) in jobs.iter().enumerate() {
            let plan = self.plan(job, Requested::Bulk)?;
            self.check_contract(job)
                .map_err(|e| e.prefixed(&format!("items[{index}]: ")))?;
            if !seen.insert(plan.job_id.clone()) {
                return Err(duplicate());
            }
            plans.push(plan);
        }
        let existing: Vec<&str> = {
            let state = lock(&self.core.state);
            let ids = plans.iter().map(|p| p.job_id.as_str());
            ids.filter(|id| state.jobs.contains_key(*id)).collect()
        };
        if !existing.is_empty() {
            let reason = producer::duplicates_error(&existing);
            return Err(producer::bulk_failure(reason, &[], plans.len()));
        }
        let mut ids = Vec::with_capacity(jobs.len());
        for (job, plan) in jobs.iter().zip(&plans) {
            match self.record(job, plan)? {
                Recorded::New(id) | Recorded::Existing(id) => ids.push(id),
                Recorded::Dropped => {}
            }
        }
        for (job, id) in jobs.iter().zip(&ids) {
            self.core.middleware.read().unwrap().after(job, id)?;
        }
        if self.core.inline {
            for id in &ids {
                self.run_job(id.clone()).await?;
            }
        }
        Ok(ids)
    }

    /// Cancels a `PENDING` job (fake mode); `false` for any other.
    pub fn cancel(&self, job_id: &str) -> bool {
        let mut state = lock(&self.core.state);
        match state.jobs.get_mut(job_id) {
            Some(job) if job.status == JobStatus::Pending => {
                job.status = JobStatus::Cancelled;
                true
            }
            _ => false,
        }
    }

    /// The real producer's option and params checks (and what it would write).
    fn plan(&self, job: &PendingEnqueue, requested: Requested) -> Result<Plan, ProducerError> {
        let (name, params, options) = (&job.function_name, &job.params, &job.options);
        producer::plan(
            &self.core.config,
            name,
            params,
            options,
            requested,
            Utc::now(),
        )
    }

    /// The real producer's catalog check.
    #[cfg_attr(not(feature = "contracts"), allow(unused_variables))]
    fn check_contract(&self, job: &PendingEnqueue) -> Result<(), ProducerError> {
        #[cfg(feature = "contracts")]
        producer::check_catalog(
            self.core.catalog.read().unwrap().as_ref(),
            &job.function_name,
            &job.params,
        )?;
        Ok(())
    }

    /// One enqueue: before-hooks, checks, record, after-hooks, and (inline) the run.
    async fn enqueue_path(
        &self,
        function_name: &str,
        params: Map<String, Value>,
        options: EnqueueOptions,
        requested: Requested,
    ) -> Result<Option<String>, ProducerError> {
        let mut job = PendingEnqueue {
            function_name: function_name.to_string(),
            params,
            options,
        };
        self.core.middleware.read().unwrap().before(&mut job)?;
        let plan = self.plan(&job, requested)?;
        self.check_contract(&job)?;
        let (id, new) = match self.record(&job, &plan)? {
            Recorded::New(id) => (id, true),
            Recorded::Existing(id) => (id, false),
            Recorded::Dropped => return Ok(None),
        };
        self.core.middleware.read().unwrap().after(&job, &id)?;
        if self.core.inline && new {
            self.run_job(id.clone()).await?;
        }
        Ok(Some(id))
    }

    /// Records a checked job under its plan's guard: the single-process unique key, rate
    /// limit and debounce, with the real producer's keys and TTLs.
    fn record(&self, job: &PendingEnqueue, plan: &Plan) -> Result<Recorded, ProducerError> {
        let now = Instant::now();
        let mut state = lock(&self.core.state);
        match &plan.guard {
            Guard::Idempotency { key, .. } => {
                if let Some((id, until)) = state.unique.get(key) {
                    if *until > now {
                        return Ok(Recorded::Existing(id.clone()));
                    }
                }
            }
            Guard::RateLimit { key, ttl } => {
                if matches!(state.rate_limits.get(key), Some(until) if *until > now) {
                    return Ok(Recorded::Dropped);
                }
                state.rate_limits.insert(key.clone(), now + seconds(*ttl));
            }
            Guard::Debounce { key, .. } => {
                let pending = state.debounce.get(key).cloned();
                if let Some(existing) = pending.and_then(|id| state.jobs.get_mut(&id)) {
                    if existing.status == JobStatus::Pending {
                        // As enqueue-debounced-2.lua: the call replaces the function, params
                        // and options of the pending job and keeps its id.
                        let id = existing.id.clone();
                        *existing = self.new_record(id.clone(), job, plan);
                        return Ok(Recorded::Existing(id));
                    }
                }
            }
            Guard::None => {}
        }
        let id = plan.job_id.clone();
        if state.jobs.contains_key(&id) {
            return Err(duplicate());
        }
        let recorded = self.new_record(id.clone(), job, plan);
        state.jobs.insert(id.clone(), recorded);
        match &plan.guard {
            Guard::Idempotency { key, ttl } => {
                state
                    .unique
                    .insert(key.clone(), (id.clone(), now + seconds(*ttl)));
            }
            Guard::Debounce { key, .. } => {
                state.debounce.insert(key.clone(), id.clone());
            }
            _ => {}
        }
        Ok(Recorded::New(id))
    }

    fn new_record(&self, id: String, job: &PendingEnqueue, plan: &Plan) -> RecordedJob {
        let o = &job.options;
        let deferred = if let Some(window) = o.debounce_seconds {
            Some(window)
        } else if let Some(t) = o.defer_until {
            Some(((t - Utc::now()).num_milliseconds() as f64 / 1000.0).max(0.0))
        } else {
            o.defer_by_seconds.filter(|s| *s > 0.0)
        };
        RecordedJob {
            id,
            function_name: job.function_name.clone(),
            params: job.params.clone(),
            options: o.clone(),
            queue_name: plan.queue_key.clone(),
            status: JobStatus::Pending,
            result: None,
            last_error: None,
            error_type: None,
            attempts: 0,
            snoozes: 0,
            retry_delays: Vec::new(),
            snooze_delays: Vec::new(),
            deferred_seconds: deferred,
            max_retries: plan.max_retries,
            job_timeout_seconds: plan.job_timeout_seconds,
        }
    }

    /// The next pending job in enqueue order, if any.
    pub(crate) fn next_pending(&self) -> Option<String> {
        let state = lock(&self.core.state);
        let mut jobs = state.jobs.values();
        jobs.find(|j| j.status == JobStatus::Pending)
            .map(|j| j.id.clone())
    }

    /// Runs a job until it is final (every attempt, snooze and retry, without sleeping the
    /// delays); returns the executions. Boxed: a handler may enqueue (and inline, run) jobs.
    pub(crate) fn run_job(&self, id: String) -> BoxFuture<Result<usize, ProducerError>> {
        let this = self.clone();
        Box::pin(async move {
            let mut executions = 0;
            while let Some((req, timeout)) = this.next_attempt(&id) {
                executions += 1;
                let outcome = this.execute(req, timeout).await;
                this.apply(&id, &outcome);
            }
            Ok(executions)
        })
    }

    /// The request of the job's next run; `None` once it is final.
    fn next_attempt(&self, id: &str) -> Option<(ExecutionRequest, Duration)> {
        let mut state = lock(&self.core.state);
        let job = state.jobs.get_mut(id)?;
        if job.status.is_terminal() {
            return None;
        }
        job.status = JobStatus::Active;
        let timeout = Duration::from_secs(job.job_timeout_seconds.max(1) as u64);
        let deadline = Utc::now() + chrono::Duration::from_std(timeout).unwrap_or_default();
        let req = ExecutionRequest {
            protocol_version: "2".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
            job_id: job.id.clone(),
            function_name: job.function_name.clone(),
            params: job.params.clone(),
            context: ExecutionContext {
                job_id: job.id.clone(),
                attempt: job.attempts + 1,
                enqueue_time: format_timestamp(&Utc::now()),
                queue_name: job.queue_name.clone(),
                deadline: Some(format_timestamp(&deadline)),
                trace_context: job.options.trace_context.clone(),
                correlation_context: None,
                worker_id: Some("rrqkit-testing".into()),
            },
            live: None,
        };
        Some((req, timeout))
    }

    /// One attempt as the runner runtime runs it: the handler inside the registry's
    /// middleware, the job context current, a panic caught, the chain's future dropped (its
    /// cancel) at the job's timeout.
    async fn execute(&self, req: ExecutionRequest, timeout: Duration) -> ExecutionOutcome {
        let handler = (self.core.registry.read().unwrap()).get_with_middleware(&req.function_name);
        let Some(handler) = handler else {
            return ExecutionOutcome::handler_not_found(&req.function_name);
        };
        let ctx = JobContext::new(None, &req);
        let fut = JobContext::sync_scope(ctx.clone(), || handler(req));
        let run = JobContext::scope(ctx, CatchUnwind::new(fut));
        match tokio::time::timeout(timeout, run).await {
            Err(_) => ExecutionOutcome::timeout(None),
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => panic_outcome(panic),
        }
    }

    /// Applies the orchestrator's decision on `outcome` to the job.
    fn apply(&self, id: &str, outcome: &ExecutionOutcome) {
        let mut state = lock(&self.core.state);
        let Some(job) = state.jobs.get_mut(id) else {
            return;
        };
        let decision = rules::decide(
            &JobState {
                attempts_before: job.attempts,
                snoozes: job.snoozes,
                max_retries: job.max_retries,
                policy: job.options.retry.as_ref(),
                timeout_seconds: job.job_timeout_seconds,
            },
            outcome,
        );
        if outcome.status != OutcomeStatus::Success && !outcome.snooze {
            job.error_type = outcome
                .error
                .as_ref()
                .and_then(|e| e.error_type.clone())
                .or_else(|| (outcome.status == OutcomeStatus::Timeout).then(|| "timeout".into()));
        }
        match decision {
            Decision::Complete(result) => {
                job.attempts += 1;
                job.status = JobStatus::Completed;
                job.result = Some(result);
            }
            Decision::Retry {
                delay_seconds,
                error,
            } => {
                job.attempts += 1;
                job.retry_delays.push(delay_seconds);
                job.last_error = Some(error);
                job.status = JobStatus::Retrying;
            }
            Decision::Snooze { delay_seconds } => {
                job.snoozes += 1;
                job.snooze_delays.push(delay_seconds);
                job.status = JobStatus::Pending;
            }
            Decision::Fail { error } => {
                job.attempts += 1;
                job.last_error = Some(error);
                job.status = JobStatus::Failed;
            }
        }
    }
}

fn duplicate() -> ProducerError {
    ProducerError::new(ProducerErrorCode::DuplicateJobId, "job_id already exists")
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

fn prefixed(prefix: &str, key: &str) -> String {
    if key.starts_with(prefix) {
        key.to_string()
    } else {
        format!("{prefix}{key}")
    }
}
