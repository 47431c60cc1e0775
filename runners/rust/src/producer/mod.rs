//! Redis producer (PRODUCER.md): enqueue jobs with the shared Lua scripts, read their status,
//! wait for completion.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rrqkit::ProducerError> {
//! use rrqkit::{EnqueueOptions, Producer, ProducerConfig};
//! let producer = Producer::new(ProducerConfig::with_dsn("redis://localhost:6379/0"))?;
//! let params = serde_json::json!({"to": "a@example.com"});
//! let job_id = producer
//!     .enqueue("send_email", params.as_object().unwrap().clone(), EnqueueOptions::default())
//!     .await?;
//! let done = producer
//!     .wait_for_completion(&job_id, std::time::Duration::from_secs(30), std::time::Duration::from_millis(250))
//!     .await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod flow;
mod middleware;
mod options;
mod retry;

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Script};
use serde_json::{Map, Value};

#[cfg(feature = "contracts")]
pub use config::{catalog_path_from_toml, load_toml_catalog};
pub use config::{
    dsn_problem, resolve_config_path, ProducerConfig, CONFIG_NOT_FOUND_MESSAGE, DEFAULT_QUEUE_NAME,
    DEFAULT_REDIS_CONNECT_TIMEOUT, DEFAULT_REDIS_DSN,
};
pub use error::{redact_dsn, ProducerError, ProducerErrorCode};
pub use flow::{
    StartRate, MAX_CONCURRENCY_LIMIT, MAX_FLOW_KEY_CHARS, MAX_LIMIT_NAME_CHARS,
    MAX_START_RATE_LIMIT, MAX_START_RATE_PERIOD_MS,
};
pub use middleware::{MiddlewareChain, PendingEnqueue, ProducerMiddleware};
pub use options::{
    extract_correlation_context, EnqueueItem, EnqueueOptions, MAX_PARAMS_BYTES, MSG_EXPIRES_PAST,
};
pub use retry::{check_retry_policy, Backoff, RetryPolicy, RETRY_POLICY_KEYS};

use crate::canonical::format_timestamp;
// The option checks and write plan, shared with the testing producers so they refuse exactly
// what this producer refuses.
pub(crate) use options::{plan, Guard, Plan, Requested};

/// `src/store/lua/enqueue-3.lua`, byte for byte.
pub const ENQUEUE_LUA: &str = include_str!("../../lua/enqueue-3.lua");
/// `src/store/lua/enqueue-rate-limited-3.lua`, byte for byte.
pub const ENQUEUE_RATE_LIMITED_LUA: &str = include_str!("../../lua/enqueue-rate-limited-3.lua");
/// `src/store/lua/enqueue-debounced-2.lua`, byte for byte.
pub const ENQUEUE_DEBOUNCED_LUA: &str = include_str!("../../lua/enqueue-debounced-2.lua");

/// `src/store/lua/enqueue-batch-n.lua`, byte for byte (bulk enqueue; three keys per job).
pub const ENQUEUE_BATCH_LUA: &str = include_str!("../../lua/enqueue-batch-n.lua");

/// `src/store/lua/enqueue-fields-1.lua`, byte for byte: writes rrqkit's additive job fields
/// (`retry_policy`, `expires_at`, the flow-control fields) onto the job the enqueue script
/// before it in the same MULTI ... EXEC wrote, and puts a job with `ordering_key` in its
/// session's order (`rrq:fc:order:<key>`).
pub const ENQUEUE_FIELDS_LUA: &str = include_str!("../../lua/enqueue-fields-1.lua");

/// `src/store/lua/job-cancel-2.lua`, byte for byte (cancel a waiting or running job).
pub const JOB_CANCEL_LUA: &str = include_str!("../../lua/job-cancel-2.lua");

/// Jobs per enqueue-batch-n.lua call in [`Producer::enqueue_many`]: one call is all-or-nothing;
/// bigger batches are split so one script does not hold Redis for long.
pub const BULK_CHUNK_SIZE: usize = 500;

static ENQUEUE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ENQUEUE_LUA));
static BATCH_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ENQUEUE_BATCH_LUA));
static RATE_LIMIT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(ENQUEUE_RATE_LIMITED_LUA));
static DEBOUNCE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ENQUEUE_DEBOUNCED_LUA));
static CANCEL_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(JOB_CANCEL_LUA));

/// Key prefix of job hashes.
pub const JOB_KEY_PREFIX: &str = "rrq:job:";
/// Key prefix of queues.
pub const QUEUE_KEY_PREFIX: &str = "rrq:queue:";
/// Key prefix of job event streams.
pub const EVENTS_KEY_PREFIX: &str = "rrq:events:job:";

/// `rrq:queue:<name>` unless `name` already has the prefix.
pub fn normalize_queue_name(name: &str) -> String {
    if name.starts_with(QUEUE_KEY_PREFIX) {
        name.to_string()
    } else {
        format!("{QUEUE_KEY_PREFIX}{name}")
    }
}

/// Job status as stored in the job hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Pending,
    Active,
    Completed,
    Failed,
    Retrying,
    Cancelled,
    /// Anything else.
    Unknown,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Active => "ACTIVE",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Failed => "FAILED",
            JobStatus::Retrying => "RETRYING",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(s: &str) -> JobStatus {
        match s {
            "PENDING" => JobStatus::Pending,
            "ACTIVE" => JobStatus::Active,
            "COMPLETED" => JobStatus::Completed,
            "FAILED" => JobStatus::Failed,
            "RETRYING" => JobStatus::Retrying,
            "CANCELLED" => JobStatus::Cancelled,
            _ => JobStatus::Unknown,
        }
    }

    /// `COMPLETED`, `FAILED` or `CANCELLED`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// What [`Producer::get_job_status`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub status: JobStatus,
    /// Parsed `result`; `None` when missing, empty or `null`.
    pub result: Option<Value>,
    pub last_error: Option<String>,
}

impl JobResult {
    /// `{status, result, last_error}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("status".into(), Value::String(self.status.as_str().into()));
        m.insert("result".into(), self.result.clone().unwrap_or(Value::Null));
        m.insert(
            "last_error".into(),
            self.last_error
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        Value::Object(m)
    }
}

/// What [`Producer::cancel`] did. A job that cannot be cancelled is a result, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelResult {
    /// True when this call cancelled the job: it was waiting in its queue, or running on an
    /// rrqkit orchestrator (which is then told to stop the handler).
    pub cancelled: bool,
    /// The job's status after the call: `CANCELLED` when cancelled, its unchanged status when
    /// it could not be, `None` when there is no such job.
    pub status: Option<String>,
    /// Why it was not cancelled (`None` when it was): one of the `CANCEL_*` names, the same in
    /// every rrqkit producer and the data API (`not_found`, `not_waiting`, `no_queue`,
    /// `not_in_queue`, `running_unfenced`).
    pub reason: Option<String>,
}

impl CancelResult {
    /// `{cancelled, status, reason?}` (the producer adapter's reply; `reason` only when set).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("cancelled".into(), Value::Bool(self.cancelled));
        m.insert(
            "status".into(),
            self.status
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        if let Some(reason) = &self.reason {
            m.insert("reason".into(), Value::String(reason.clone()));
        }
        Value::Object(m)
    }

    /// From the `{code, status[, worker_id]}` reply of job-cancel-2.lua.
    fn from_reply(code: i64, status: String) -> Result<CancelResult, ProducerError> {
        let reason = match code {
            1 => {
                return Ok(CancelResult {
                    cancelled: true,
                    status: Some(status),
                    reason: None,
                })
            }
            0 => CANCEL_NOT_WAITING,
            -1 => CANCEL_NOT_FOUND,
            -2 => CANCEL_NO_QUEUE,
            -3 => CANCEL_NOT_IN_QUEUE,
            -4 => CANCEL_RUNNING_UNFENCED,
            other => {
                return Err(ProducerError::new(
                    ProducerErrorCode::RedisError,
                    format!("job-cancel answered an unknown code {other}"),
                ))
            }
        };
        Ok(CancelResult {
            cancelled: false,
            status: (code != -1).then_some(status),
            reason: Some(reason.to_string()),
        })
    }
}

/// [`CancelResult::reason`]: no such job (`status` is `None`).
pub const CANCEL_NOT_FOUND: &str = "not_found";
/// [`CancelResult::reason`]: the status allows no cancel (finished, or unknown to rrqkit).
pub const CANCEL_NOT_WAITING: &str = "not_waiting";
/// [`CancelResult::reason`]: a waiting job whose hash names no queue.
pub const CANCEL_NO_QUEUE: &str = "no_queue";
/// [`CancelResult::reason`]: a waiting job missing from its queue (being claimed right now).
pub const CANCEL_NOT_IN_QUEUE: &str = "not_in_queue";
/// [`CancelResult::reason`]: running on an orchestrator that cannot cancel it (RRQ's own, which
/// does not fence its writes, so its late success would overwrite the cancel).
pub const CANCEL_RUNNING_UNFENCED: &str = "running_unfenced";

/// An rrqkit producer bound to one Redis.
pub struct Producer {
    config: ProducerConfig,
    client: Client,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    #[cfg(feature = "contracts")]
    catalog: Option<crate::contracts::JobCatalog>,
    middleware: MiddlewareChain,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("queue_name", &self.config.queue_name)
            .finish_non_exhaustive()
    }
}

const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

enum ScriptKind {
    Enqueue,
    RateLimit,
    Debounce,
    Batch,
    Cancel,
}

impl Producer {
    /// Validates the config and prepares a client; the connection is made on first use.
    pub fn new(config: ProducerConfig) -> Result<Self, ProducerError> {
        let config = config.validated()?;
        #[cfg(feature = "tls")]
        {
            // rediss:// needs a process-wide rustls provider; keep one installed elsewhere.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        // `validated` has refused a DSN without a supported scheme; the client parses the rest.
        let client = Client::open(config.redis_dsn.as_str()).map_err(|e| {
            let detail = match e.kind() {
                redis::ErrorKind::InvalidClientConfig => "not a valid Redis URL".to_string(),
                _ => e.to_string(),
            };
            let mut err = ProducerError::invalid_config(format!("redis_dsn: {detail}"));
            if let Some(p) = error::dsn_password(&config.redis_dsn) {
                if !p.is_empty() && err.message().contains(&p) {
                    err = ProducerError::invalid_config("redis_dsn: not a valid Redis URL");
                }
            }
            err
        })?;
        Ok(Producer {
            config,
            client,
            conn: tokio::sync::Mutex::new(None),
            #[cfg(feature = "contracts")]
            catalog: None,
            middleware: MiddlewareChain::new(),
        })
    }

    /// The same producer with `middleware` added after those already registered. On every
    /// enqueue path (`enqueue`, the rate-limited and debounced ones, `enqueue_many`, the typed
    /// ones), before-hooks run in registration order before validation and before anything
    /// is written, and after-hooks in reverse order once the job is written (see
    /// [`ProducerMiddleware`] for vetoes and errors).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use rrqkit::producer::{PendingEnqueue, ProducerMiddleware};
    /// # use rrqkit::{Producer, ProducerConfig, ProducerError};
    /// struct DefaultQueue;
    /// impl ProducerMiddleware for DefaultQueue {
    ///     fn before_enqueue(&self, job: &mut PendingEnqueue) -> Result<(), ProducerError> {
    ///         job.options.queue_name.get_or_insert_with(|| "emails".into());
    ///         Ok(())
    ///     }
    /// }
    /// # fn demo() -> Result<(), ProducerError> {
    /// let producer = Producer::new(ProducerConfig::default())?.use_middleware(Arc::new(DefaultQueue));
    /// # Ok(()) }
    /// ```
    pub fn use_middleware(mut self, middleware: Arc<dyn ProducerMiddleware>) -> Self {
        self.middleware.push(middleware);
        self
    }

    /// The registered middleware.
    pub fn middleware(&self) -> &MiddlewareChain {
        &self.middleware
    }

    /// The job the before-hooks leave (nothing is cloned without middleware).
    fn pending(
        &self,
        function_name: &str,
        params: Map<String, Value>,
        options: EnqueueOptions,
    ) -> Result<PendingEnqueue, ProducerError> {
        let mut job = PendingEnqueue {
            function_name: function_name.to_string(),
            params,
            options,
        };
        self.middleware.before(&mut job)?;
        Ok(job)
    }

    /// A producer from `rrq.toml` (see [`ProducerConfig::from_toml`]), with the job catalog its
    /// `job_catalog` key names (relative to the file), if any (feature `contracts`). An
    /// unusable catalog is `invalid_config`.
    pub fn from_toml(path: Option<&std::path::Path>) -> Result<Self, ProducerError> {
        let producer = Self::new(ProducerConfig::from_toml(path)?)?;
        #[cfg(feature = "contracts")]
        let producer = match load_toml_catalog(path)? {
            Some(catalog) => producer.catalog(catalog),
            None => producer,
        };
        Ok(producer)
    }

    /// The same producer checking params against `catalog` on every enqueue path: params of a
    /// catalogued function that break its contract fail with `invalid_params` (with
    /// [`ProducerError::field`]) before anything is written; other functions are not checked.
    #[cfg(feature = "contracts")]
    pub fn catalog(mut self, catalog: crate::contracts::JobCatalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// The job catalog params are checked against, if any.
    #[cfg(feature = "contracts")]
    pub fn job_catalog(&self) -> Option<&crate::contracts::JobCatalog> {
        self.catalog.as_ref()
    }

    /// `invalid_params` when the catalog has a contract for `function_name` that `params`
    /// break.
    #[cfg_attr(not(feature = "contracts"), allow(unused_variables))]
    fn check_contract(
        &self,
        function_name: &str,
        params: &Map<String, Value>,
    ) -> Result<(), ProducerError> {
        #[cfg(feature = "contracts")]
        check_catalog(self.catalog.as_ref(), function_name, params)?;
        Ok(())
    }

    /// Enqueues a job of a generated params type ([`crate::contracts::JobContract`]) under its
    /// name with default options, checked against the catalog when one is set. Returns the job
    /// id.
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct SendEmailParams { to: String, subject: String }
    /// # impl rrqkit::contracts::JobContract for SendEmailParams {
    /// #     const NAME: &'static str = "send_email";
    /// #     type Result = serde_json::Value;
    /// # }
    /// # async fn demo(producer: &rrqkit::Producer) -> Result<(), rrqkit::ProducerError> {
    /// let params = SendEmailParams { to: "a@example.com".into(), subject: "Hi".into() };
    /// let job_id = producer.enqueue_typed(&params).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "contracts")]
    pub async fn enqueue_typed<P: crate::contracts::JobContract>(
        &self,
        params: &P,
    ) -> Result<String, ProducerError> {
        self.enqueue_typed_with(params, EnqueueOptions::default())
            .await
    }

    /// [`Producer::enqueue_typed`] with enqueue options.
    #[cfg(feature = "contracts")]
    pub async fn enqueue_typed_with<P: crate::contracts::JobContract>(
        &self,
        params: &P,
        options: EnqueueOptions,
    ) -> Result<String, ProducerError> {
        let value = serde_json::to_value(params).map_err(|e| {
            ProducerError::new(
                ProducerErrorCode::InvalidParams,
                format!("{}: params cannot be encoded: {e}", P::NAME),
            )
        })?;
        let Value::Object(map) = value else {
            return Err(ProducerError::new(
                ProducerErrorCode::InvalidParams,
                format!("{}: params must encode to a JSON object", P::NAME),
            ));
        };
        self.enqueue(P::NAME, map, options).await
    }

    /// The effective configuration (queue name normalized).
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    fn redis_err(&self, e: &redis::RedisError) -> ProducerError {
        ProducerError::redis(e, &self.config.redis_dsn)
    }

    /// A new connection, bounded by `redis_connect_timeout` (TCP connect and handshake); a
    /// failure to come up is `redis_unavailable` naming the DSN without its password.
    async fn connect(
        &self,
        response_timeout: Option<Duration>,
    ) -> Result<MultiplexedConnection, ProducerError> {
        let limit = self.config.redis_connect_timeout;
        let cfg = AsyncConnectionConfig::new()
            .set_response_timeout(response_timeout)
            .set_connection_timeout(Some(limit));
        let attempt = self
            .client
            .get_multiplexed_async_connection_with_config(&cfg);
        // The outer timeout is a backstop in case a client version bounds only the TCP connect.
        let unavailable = |reason: &str| {
            ProducerError::unavailable(reason, &self.config.redis_dsn, limit.as_secs_f64())
        };
        match tokio::time::timeout(limit + Duration::from_millis(250), attempt).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() => {
                Err(unavailable(&e.to_string()))
            }
            Ok(Err(e)) => Err(self.redis_err(&e)),
            Err(_) => Err(unavailable("no reply to the Redis handshake")),
        }
    }

    async fn conn(&self) -> Result<MultiplexedConnection, ProducerError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self.connect(Some(RESPONSE_TIMEOUT)).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn forget_conn_on(&self, e: &redis::RedisError) {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            *self.conn.lock().await = None;
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, ProducerError> {
        let mut c = self.conn().await?;
        match cmd.query_async::<T>(&mut c).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.forget_conn_on(&e).await;
                Err(self.redis_err(&e))
            }
        }
    }

    fn script_text(kind: &ScriptKind) -> &'static str {
        match kind {
            ScriptKind::Enqueue => ENQUEUE_LUA,
            ScriptKind::RateLimit => ENQUEUE_RATE_LIMITED_LUA,
            ScriptKind::Debounce => ENQUEUE_DEBOUNCED_LUA,
            ScriptKind::Batch => ENQUEUE_BATCH_LUA,
            ScriptKind::Cancel => JOB_CANCEL_LUA,
        }
    }

    fn script_for(kind: &ScriptKind) -> &'static Script {
        match kind {
            ScriptKind::Enqueue => &ENQUEUE_SCRIPT,
            ScriptKind::RateLimit => &RATE_LIMIT_SCRIPT,
            ScriptKind::Debounce => &DEBOUNCE_SCRIPT,
            ScriptKind::Batch => &BATCH_SCRIPT,
            ScriptKind::Cancel => &CANCEL_SCRIPT,
        }
    }

    /// The EVALSHA command of a plan.
    fn plan_cmd(plan: &Plan) -> (ScriptKind, Cmd) {
        let (kind, keys, args) = Self::plan_parts(plan);
        let cmd = Self::evalsha(&kind, &keys, &args);
        (kind, cmd)
    }

    /// EVALSHA of `kind` with `keys` and `args`.
    fn evalsha(kind: &ScriptKind, keys: &[String], args: &[String]) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(Self::script_for(kind).get_hash()).arg(keys.len());
        for k in keys {
            cmd.arg(k);
        }
        for a in args {
            cmd.arg(a);
        }
        cmd
    }

    /// EVAL of a script's text with `keys` and `args`. Used inside MULTI ... EXEC, where a
    /// NOSCRIPT reply of EVALSHA could not be retried (the commands before it have run).
    fn eval(text: &str, keys: &[String], args: &[String]) -> Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(text).arg(keys.len());
        for k in keys {
            cmd.arg(k);
        }
        for a in args {
            cmd.arg(a);
        }
        cmd
    }

    /// The enqueue-fields-1.lua call that writes a plan's additive fields onto the job its
    /// enqueue script wrote; `None` when the plan has none (nothing beyond RRQ's fields).
    fn fields_cmd(plan: &Plan) -> Option<Cmd> {
        if plan.extra_fields.is_empty() {
            return None;
        }
        let (key, mode) = match &plan.guard {
            // The debounced job's id is only known to the script: the key names it.
            Guard::Debounce { key, .. } => (key.clone(), "debounce"),
            _ => (format!("{JOB_KEY_PREFIX}{}", plan.job_id), "job"),
        };
        let mut args = vec![
            mode.to_string(),
            plan.function_name.clone(),
            plan.job_params.clone(),
            plan.queue_key.clone(),
        ];
        for (field, value) in &plan.extra_fields {
            args.push(field.clone());
            args.push(value.clone());
        }
        Some(Self::eval(ENQUEUE_FIELDS_LUA, &[key], &args))
    }

    /// Runs `first` and then `fields` in one MULTI ... EXEC (so no orchestrator can claim the
    /// job between the two) and returns `first`'s reply.
    async fn with_fields<T: redis::FromRedisValue>(
        &self,
        first: Cmd,
        fields: Vec<Cmd>,
    ) -> Result<T, ProducerError> {
        let mut pipe = redis::pipe();
        pipe.atomic().add_command(first);
        for f in fields {
            pipe.add_command(f).ignore();
        }
        let mut c = self.conn().await?;
        match pipe.query_async::<(T,)>(&mut c).await {
            Ok((v,)) => Ok(v),
            Err(e) => {
                self.forget_conn_on(&e).await;
                Err(self.redis_err(&e))
            }
        }
    }

    /// The script, keys and arguments of a plan.
    fn plan_parts(plan: &Plan) -> (ScriptKind, Vec<String>, Vec<String>) {
        let job_key = format!("{JOB_KEY_PREFIX}{}", plan.job_id);
        let (kind, keys, args): (ScriptKind, Vec<String>, Vec<String>) = match &plan.guard {
            Guard::None => {
                let mut a = plan.job_args();
                a.push("0".into());
                (
                    ScriptKind::Enqueue,
                    // "No idempotency key" is the bare prefix, which stays inside rrq:* so Redis
                    // ACL users restricted to that pattern may run the script.
                    vec![job_key, plan.queue_key.clone(), "rrq:idempotency:".into()],
                    a,
                )
            }
            Guard::Idempotency { key, ttl } => {
                let mut a = plan.job_args();
                a.push(ttl.to_string());
                (
                    ScriptKind::Enqueue,
                    vec![job_key, plan.queue_key.clone(), key.clone()],
                    a,
                )
            }
            Guard::RateLimit { key, ttl } => {
                let mut a = plan.job_args();
                a.push(ttl.to_string());
                (
                    ScriptKind::RateLimit,
                    vec![job_key, plan.queue_key.clone(), key.clone()],
                    a,
                )
            }
            Guard::Debounce { key, ttl } => {
                let mut a = vec![JOB_KEY_PREFIX.to_string()];
                a.extend(plan.job_args());
                a.push(ttl.to_string());
                (
                    ScriptKind::Debounce,
                    vec![plan.queue_key.clone(), key.clone()],
                    a,
                )
            }
        };
        (kind, keys, args)
    }

    fn is_noscript(e: &redis::RedisError) -> bool {
        e.code() == Some("NOSCRIPT")
    }

    async fn load_script(&self, kind: &ScriptKind) -> Result<(), ProducerError> {
        let mut c = self.conn().await?;
        Self::script_for(kind)
            .load_async(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| self.redis_err(&e))
    }

    async fn run_plan(&self, plan: &Plan) -> Result<(i64, String), ProducerError> {
        if let Some(fields) = Self::fields_cmd(plan) {
            let (kind, keys, args) = Self::plan_parts(plan);
            let first = Self::eval(Self::script_text(&kind), &keys, &args);
            return self.with_fields(first, vec![fields]).await;
        }
        let (kind, cmd) = Self::plan_cmd(plan);
        let mut c = self.conn().await?;
        match cmd.query_async::<(i64, String)>(&mut c).await {
            Ok(v) => Ok(v),
            Err(e) if Self::is_noscript(&e) => {
                self.load_script(&kind).await?;
                self.query::<(i64, String)>(&cmd).await
            }
            Err(e) => {
                self.forget_conn_on(&e).await;
                Err(self.redis_err(&e))
            }
        }
    }

    fn duplicate(job_id: &str) -> ProducerError {
        let _ = job_id;
        ProducerError::new(ProducerErrorCode::DuplicateJobId, "job_id already exists")
    }

    fn unexpected(code: i64) -> ProducerError {
        ProducerError::new(
            ProducerErrorCode::RedisError,
            format!("unexpected enqueue script result {code}"),
        )
    }

    async fn enqueue_planned(&self, plan: Plan) -> Result<Option<String>, ProducerError> {
        let (code, id) = self.run_plan(&plan).await?;
        match (&plan.guard, code) {
            (_, 1) => Ok(Some(id)),
            (Guard::Idempotency { .. }, 0) | (Guard::Debounce { .. }, 0) => Ok(Some(id)),
            (Guard::RateLimit { .. }, 2) => Ok(None),
            (_, -1) => Err(Self::duplicate(&plan.job_id)),
            (_, other) => Err(Self::unexpected(other)),
        }
    }

    /// Enqueues a job and returns its id. With rate-limit options a limited call fails with
    /// `rate_limited`; with debounce options it behaves as [`Producer::enqueue_with_debounce`].
    pub async fn enqueue(
        &self,
        function_name: &str,
        params: Map<String, Value>,
        options: EnqueueOptions,
    ) -> Result<String, ProducerError> {
        let job = self.pending(function_name, params, options)?;
        let plan = self.validated(&job, Requested::Enqueue, Utc::now())?;
        let key = match &plan.guard {
            Guard::RateLimit { key, .. } => Some(key.clone()),
            _ => None,
        };
        match self.enqueue_planned(plan).await? {
            Some(id) => {
                self.middleware.after(&job, &id)?;
                Ok(id)
            }
            None => Err(ProducerError::new(
                ProducerErrorCode::RateLimited,
                format!(
                    "enqueue was rate limited: {} already holds a job for this window",
                    key.unwrap_or_default()
                ),
            )),
        }
    }

    /// Enqueues unless the rate-limit window of `rate_limit_key` is taken; `None` when limited.
    pub async fn enqueue_with_rate_limit(
        &self,
        function_name: &str,
        params: Map<String, Value>,
        options: EnqueueOptions,
    ) -> Result<Option<String>, ProducerError> {
        let job = self.pending(function_name, params, options)?;
        let plan = self.validated(&job, Requested::RateLimit, Utc::now())?;
        let id = self.enqueue_planned(plan).await?;
        if let Some(id) = &id {
            self.middleware.after(&job, id)?;
        }
        Ok(id)
    }

    /// Trailing-edge debounce: creates a job at now + `debounce_seconds`, or updates and
    /// reschedules the pending one of `debounce_key`. Returns the job id.
    pub async fn enqueue_with_debounce(
        &self,
        function_name: &str,
        params: Map<String, Value>,
        options: EnqueueOptions,
    ) -> Result<String, ProducerError> {
        let job = self.pending(function_name, params, options)?;
        let plan = self.validated(&job, Requested::Debounce, Utc::now())?;
        let id = self
            .enqueue_planned(plan)
            .await?
            .ok_or_else(|| Self::unexpected(2))?;
        self.middleware.after(&job, &id)?;
        Ok(id)
    }

    /// The plan of a job the before-hooks left: option checks, then its contract.
    fn validated(
        &self,
        job: &PendingEnqueue,
        requested: Requested,
        now: chrono::DateTime<Utc>,
    ) -> Result<Plan, ProducerError> {
        let p = plan(
            &self.config,
            &job.function_name,
            &job.params,
            &job.options,
            requested,
            now,
        )?;
        self.check_contract(&job.function_name, &job.params)?;
        Ok(p)
    }

    /// Enqueues many jobs, all or nothing. Every item is validated before anything is written
    /// (a job id repeated in `items` is `duplicate_job_id`); rate-limit and debounce options are
    /// not allowed. Then one script call per [`BULK_CHUNK_SIZE`] items writes each chunk whole
    /// or not at all: Redis out of memory, or a job id that already exists, leaves the chunk
    /// unwritten. On failure, [`ProducerError::written_ids`] are exactly the jobs earlier chunks
    /// wrote (none for up to 500 items). Returns ids in order.
    ///
    /// With middleware, the before-hooks run on every item in order first (a veto or error
    /// of any item fails the call before anything is validated or written), and the
    /// after-hooks on every written item in order once all are written; an after-hook error
    /// is returned with [`ProducerError::written_ids`] set to all the written jobs.
    pub async fn enqueue_many(
        &self,
        items: Vec<EnqueueItem>,
    ) -> Result<Vec<String>, ProducerError> {
        let mut jobs = Vec::with_capacity(items.len());
        for item in items {
            let mut job = PendingEnqueue::from(item);
            self.middleware.before(&mut job)?;
            jobs.push(job);
        }
        let written = self.enqueue_bulk(&jobs).await?;
        if !self.middleware.is_empty() {
            for (job, id) in jobs.iter().zip(&written) {
                self.middleware
                    .after(job, id)
                    .map_err(|e| e.with_written_ids(written.clone()))?;
            }
        }
        Ok(written)
    }

    /// [`Producer::enqueue_many`] after the before-hooks.
    async fn enqueue_bulk(&self, items: &[PendingEnqueue]) -> Result<Vec<String>, ProducerError> {
        let now = Utc::now();
        let mut plans = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::new();
        for (index, item) in items.iter().enumerate() {
            let p = plan(
                &self.config,
                &item.function_name,
                &item.params,
                &item.options,
                Requested::Bulk,
                now,
            )?;
            self.check_contract(&item.function_name, &item.params)
                .map_err(|e| e.prefixed(&format!("items[{index}]: ")))?;
            if !seen.insert(p.job_id.clone()) {
                return Err(Self::duplicate(&p.job_id));
            }
            plans.push(p);
        }
        let mut written: Vec<String> = Vec::with_capacity(plans.len());
        for chunk in plans.chunks(BULK_CHUNK_SIZE) {
            let replies = self
                .run_batch(chunk)
                .await
                .map_err(|e| bulk_failure(e, &written, plans.len()))?;
            let duplicates: Vec<&str> = chunk
                .iter()
                .zip(&replies)
                .filter(|(_, (code, _))| *code == -1)
                .map(|(p, _)| p.job_id.as_str())
                .collect();
            if !duplicates.is_empty() {
                let reason = duplicates_error(&duplicates);
                return Err(bulk_failure(reason, &written, plans.len()));
            }
            for (code, id) in replies {
                match code {
                    1 | 0 => written.push(id),
                    other => {
                        return Err(bulk_failure(Self::unexpected(other), &written, plans.len()))
                    }
                }
            }
        }
        Ok(written)
    }

    /// One enqueue-batch-n.lua call for `chunk` (loading the script after a NOSCRIPT).
    async fn run_batch(&self, chunk: &[Plan]) -> Result<Vec<(i64, String)>, ProducerError> {
        let (mut keys, mut args) = (Vec::new(), Vec::new());
        for p in chunk {
            let (_, k, a) = Self::plan_parts(p);
            keys.extend(k);
            args.extend(a);
        }
        let fields: Vec<Cmd> = chunk.iter().filter_map(Self::fields_cmd).collect();
        if !fields.is_empty() {
            let first = Self::eval(ENQUEUE_BATCH_LUA, &keys, &args);
            return self.with_fields(first, fields).await;
        }
        let cmd = Self::evalsha(&ScriptKind::Batch, &keys, &args);
        let mut c = self.conn().await?;
        match cmd.query_async::<Vec<(i64, String)>>(&mut c).await {
            Ok(v) => Ok(v),
            Err(e) if Self::is_noscript(&e) => {
                self.load_script(&ScriptKind::Batch).await?;
                self.query::<Vec<(i64, String)>>(&cmd).await
            }
            Err(e) => {
                self.forget_conn_on(&e).await;
                Err(self.redis_err(&e))
            }
        }
    }

    /// Cancels a job, waiting or running, with the shared script `job-cancel-2.lua`.
    ///
    /// A job waiting in its queue (`PENDING` or `RETRYING`) is removed from it. A job running
    /// on an rrqkit orchestrator (`ACTIVE` with a lease) ends `CANCELLED` at once: every later
    /// write of its attempt is refused by the job's fence, and its orchestrator is told (through
    /// `rrq:cancel:<worker_id>`) to send the runner a `cancel` frame, which drops a Rust
    /// handler's future. A job running on RRQ's own orchestrator cannot be cancelled safely and
    /// is refused. A cancelled job is never retried. Refusals are results
    /// (`cancelled == false`); only Redis failures are errors.
    ///
    /// ```no_run
    /// # async fn demo(producer: &rrqkit::Producer) -> Result<(), rrqkit::ProducerError> {
    /// let r = producer.cancel("job-1").await?;
    /// if !r.cancelled {
    ///     eprintln!("not cancelled: {}", r.reason.unwrap_or_default());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, job_id: &str) -> Result<CancelResult, ProducerError> {
        if job_id.trim().is_empty() {
            return Err(ProducerError::invalid_argument("job_id cannot be empty"));
        }
        // Microseconds, as the producer's other timestamps.
        let now = Utc::now().trunc_subsecs(6);
        let keys = [
            format!("{JOB_KEY_PREFIX}{job_id}"),
            format!("{EVENTS_KEY_PREFIX}{job_id}"),
        ];
        let args = [
            job_id.to_string(),
            format_timestamp(&now),
            self.config.result_ttl_seconds.to_string(),
        ];
        let cmd = Self::evalsha(&ScriptKind::Cancel, &keys, &args);
        let mut c = self.conn().await?;
        let reply: Vec<redis::Value> = match cmd.query_async(&mut c).await {
            Ok(v) => v,
            Err(e) if Self::is_noscript(&e) => {
                self.load_script(&ScriptKind::Cancel).await?;
                self.query(&cmd).await?
            }
            Err(e) => {
                self.forget_conn_on(&e).await;
                return Err(self.redis_err(&e));
            }
        };
        let code = reply
            .first()
            .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok());
        let status = reply
            .get(1)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
        match (code, status) {
            (Some(code), Some(status)) => CancelResult::from_reply(code, status),
            _ => Err(ProducerError::new(
                ProducerErrorCode::RedisError,
                format!("unexpected cancel script reply {reply:?}"),
            )),
        }
    }

    /// `{status, result, last_error}` of a job, `None` when its hash does not exist.
    pub async fn get_job_status(&self, job_id: &str) -> Result<Option<JobResult>, ProducerError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(format!("{JOB_KEY_PREFIX}{job_id}"));
        let fields: std::collections::HashMap<String, String> = self.query(&cmd).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let status = JobStatus::parse(fields.get("status").map(String::as_str).unwrap_or(""));
        let result = match fields.get("result") {
            None => None,
            Some(raw) if raw.is_empty() || raw.eq_ignore_ascii_case("null") => None,
            Some(raw) => Some(
                serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.clone())),
            ),
        };
        Ok(Some(JobResult {
            status,
            result,
            last_error: fields.get("last_error").cloned(),
        }))
    }

    /// Waits until the job is `COMPLETED`, `FAILED` or `CANCELLED` (returned), or `timeout`
    /// passes (`None`), blocking on the job's event stream between status reads.
    pub async fn wait_for_completion(
        &self,
        job_id: &str,
        timeout: Duration,
        block_interval: Duration,
    ) -> Result<Option<JobResult>, ProducerError> {
        let deadline = Instant::now() + timeout;
        let stream = format!("{EVENTS_KEY_PREFIX}{job_id}");
        let mut last_id = "$".to_string();
        let mut waiter: Option<MultiplexedConnection> = None;
        loop {
            if let Some(r) = self.get_job_status(job_id).await? {
                if r.status.is_terminal() {
                    return Ok(Some(r));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let left = deadline - now;
            let block = if block_interval.is_zero() {
                left
            } else {
                block_interval.min(left)
            };
            let block_ms = block.as_millis().max(1) as u64;
            if waiter.is_none() {
                // A dedicated connection: a blocking XREAD would stall a shared one.
                waiter = Some(self.connect(None).await?);
            }
            let c = waiter.as_mut().expect("waiter connection");
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("BLOCK")
                .arg(block_ms)
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(&stream)
                .arg(&last_id);
            let reply: redis::Value = match tokio::time::timeout(
                Duration::from_millis(block_ms) + RESPONSE_TIMEOUT,
                cmd.query_async(c),
            )
            .await
            {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Err(self.redis_err(&e)),
                Err(_) => {
                    waiter = None;
                    continue;
                }
            };
            if let Some(id) = last_stream_id(&reply) {
                last_id = id;
            }
        }
    }
}

/// The id of the last entry in an XREAD reply (RESP2 arrays or RESP3 maps).
fn last_stream_id(v: &redis::Value) -> Option<String> {
    use redis::Value as V;
    let entry_lists: Vec<&V> = match v {
        // RESP2: [[stream, [[id, fields], ...]], ...]
        V::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                V::Array(parts) if parts.len() == 2 => Some(&parts[1]),
                _ => None,
            })
            .collect(),
        // RESP3: {stream: [[id, fields], ...]}
        V::Map(pairs) => pairs.iter().map(|(_, entries)| entries).collect(),
        _ => return None,
    };
    let mut last = None;
    for entries in entry_lists {
        if let V::Array(entries) = entries {
            for e in entries {
                if let V::Array(parts) = e {
                    if let Some(V::BulkString(id)) = parts.first() {
                        last = Some(String::from_utf8_lossy(id).into_owned());
                    }
                }
            }
        }
    }
    last
}

/// `invalid_params` when `catalog` has a contract for `function_name` that `params` break (the
/// producer's catalog check, shared with the testing producers).
#[cfg(feature = "contracts")]
pub(crate) fn check_catalog(
    catalog: Option<&crate::contracts::JobCatalog>,
    function_name: &str,
    params: &Map<String, Value>,
) -> Result<(), ProducerError> {
    if let Some(catalog) = catalog.filter(|c| c.contains(function_name)) {
        let value = Value::Object(params.clone());
        if let Some(problem) = catalog.check_params(function_name, &value) {
            return Err(ProducerError::from_problem(problem));
        }
    }
    Ok(())
}

/// `duplicate_job_id` naming (the first ten of) the job ids of a bulk chunk that exist.
pub(crate) fn duplicates_error(duplicates: &[&str]) -> ProducerError {
    ProducerError::new(
        ProducerErrorCode::DuplicateJobId,
        format!(
            "job_id already exists: {}{}",
            duplicates[..duplicates.len().min(10)].join(", "),
            if duplicates.len() > 10 {
                format!(" and {} more", duplicates.len() - 10)
            } else {
                String::new()
            }
        ),
    )
}

/// A failed bulk enqueue: the reason's code, a message saying exactly what was written, and
/// the written ids (the whole chunks before the failing one).
pub(crate) fn bulk_failure(
    reason: ProducerError,
    written: &[String],
    total: usize,
) -> ProducerError {
    let oom = if reason.message().contains("OOM") {
        "Redis is out of memory (maxmemory reached, noeviction); "
    } else {
        ""
    };
    let message = if written.is_empty() {
        format!(
            "{oom}{}; none of the {total} jobs was written",
            reason.message()
        )
    } else {
        format!(
            "{oom}{}; {} of the {total} jobs were written (the first {} chunk(s) of \
             {BULK_CHUNK_SIZE}; ids in written_ids), the rest were not",
            reason.message(),
            written.len(),
            written.len() / BULK_CHUNK_SIZE
        )
    };
    ProducerError::new(reason.kind(), message).with_written_ids(written.to_vec())
}
