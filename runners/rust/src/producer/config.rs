//! Producer configuration and `rrq.toml` resolution (PRODUCER.md §2).

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::error::{ProducerError, ProducerErrorCode};
use super::normalize_queue_name;

/// Default Redis DSN.
pub const DEFAULT_REDIS_DSN: &str = "redis://localhost:6379/0";
/// Default queue key.
pub const DEFAULT_QUEUE_NAME: &str = "rrq:queue:default";

/// Default of `redis_connect_timeout` (rrq.toml `redis_connect_timeout_seconds`).
pub const DEFAULT_REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The seven producer settings every binding shares, plus how long one Redis connection
/// attempt may take.
///
/// Fields left at their defaults take **RRQ's built-in defaults**, not `rrq.toml`'s:
/// [`ProducerConfig::with_dsn`] and [`Default`] never read a file. Use
/// [`ProducerConfig::from_toml`] (then change fields) to start from `rrq.toml`, as the CLI does.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerConfig {
    pub redis_dsn: String,
    /// Queue name or key; normalized to `rrq:queue:<name>` when used.
    pub queue_name: String,
    pub max_retries: i64,
    pub job_timeout_seconds: i64,
    pub result_ttl_seconds: i64,
    pub idempotency_ttl_seconds: i64,
    /// Correlation attribute name → params path, in order.
    pub correlation_mappings: IndexMap<String, String>,
    /// How long one connection attempt may take before a call fails with `redis_unavailable`
    /// (default 5 s; rrq.toml `redis_connect_timeout_seconds`, env `RRQ_REDIS_CONNECT_TIMEOUT`).
    /// Not one of the seven shared settings: [`ProducerConfig::to_json`] leaves it out.
    pub redis_connect_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            redis_dsn: DEFAULT_REDIS_DSN.to_string(),
            queue_name: DEFAULT_QUEUE_NAME.to_string(),
            max_retries: 5,
            job_timeout_seconds: 300,
            result_ttl_seconds: 86400,
            idempotency_ttl_seconds: 21600,
            correlation_mappings: IndexMap::new(),
            redis_connect_timeout: DEFAULT_REDIS_CONNECT_TIMEOUT,
        }
    }
}

const CONFIG_KEYS: [&str; 7] = [
    "redis_dsn",
    "queue_name",
    "max_retries",
    "job_timeout_seconds",
    "result_ttl_seconds",
    "idempotency_ttl_seconds",
    "correlation_mappings",
];

/// The message of `config_not_found`.
pub const CONFIG_NOT_FOUND_MESSAGE: &str =
    "RRQ config not found. Provide --config, set RRQ_CONFIG, or add rrq.toml.";

impl ProducerConfig {
    /// A config with `redis_dsn` and defaults elsewhere.
    pub fn with_dsn(dsn: impl Into<String>) -> Self {
        ProducerConfig {
            redis_dsn: dsn.into(),
            ..Default::default()
        }
    }

    /// Checks values and normalizes `queue_name`.
    pub fn validated(mut self) -> Result<Self, ProducerError> {
        if self.redis_dsn.trim().is_empty() {
            return Err(ProducerError::invalid_config("redis_dsn cannot be empty"));
        }
        if let Some(problem) = dsn_problem(&self.redis_dsn) {
            return Err(ProducerError::invalid_config(format!(
                "redis_dsn {problem}"
            )));
        }
        if self.redis_connect_timeout.is_zero() {
            return Err(ProducerError::invalid_config(
                "redis_connect_timeout_seconds must be a finite number > 0",
            ));
        }
        if self.queue_name.trim().is_empty() {
            return Err(ProducerError::invalid_config("queue_name cannot be empty"));
        }
        self.queue_name = normalize_queue_name(&self.queue_name);
        if self.max_retries < 0 {
            return Err(ProducerError::invalid_config(
                "max_retries must be a non-negative integer",
            ));
        }
        if self.job_timeout_seconds <= 0 {
            return Err(ProducerError::invalid_config(
                "job_timeout_seconds must be a positive integer",
            ));
        }
        if self.idempotency_ttl_seconds <= 0 {
            return Err(ProducerError::invalid_config(
                "idempotency_ttl_seconds must be a positive integer",
            ));
        }
        Ok(self)
    }

    /// From a JSON object with (a subset of) the seven keys; unknown keys and wrong types are
    /// `invalid_config`. Missing keys take their defaults.
    pub fn from_json(value: &Value) -> Result<Self, ProducerError> {
        let Value::Object(map) = value else {
            return Err(ProducerError::invalid_config(
                "producer config must be an object",
            ));
        };
        let mut cfg = ProducerConfig::default();
        for (key, v) in map {
            if v.is_null() {
                continue;
            }
            match key.as_str() {
                "redis_dsn" => cfg.redis_dsn = json_string(key, v)?,
                "queue_name" => cfg.queue_name = json_string(key, v)?,
                "max_retries" => cfg.max_retries = json_int(key, v)?,
                "job_timeout_seconds" => cfg.job_timeout_seconds = json_int(key, v)?,
                "result_ttl_seconds" => cfg.result_ttl_seconds = json_int(key, v)?,
                "idempotency_ttl_seconds" => cfg.idempotency_ttl_seconds = json_int(key, v)?,
                "redis_connect_timeout_seconds" => {
                    cfg.redis_connect_timeout = timeout_seconds(key, v.as_f64())?
                }
                "correlation_mappings" => {
                    let Value::Object(m) = v else {
                        return Err(bad_type(key, "a table of strings"));
                    };
                    let mut out = IndexMap::new();
                    for (k, path) in m {
                        match path {
                            Value::String(s) => {
                                out.insert(k.clone(), s.clone());
                            }
                            _ => return Err(bad_type(key, "a table of strings")),
                        }
                    }
                    cfg.correlation_mappings = out;
                }
                other => {
                    return Err(ProducerError::invalid_config(format!(
                        "unknown producer config key '{other}' (allowed: {})",
                        CONFIG_KEYS.join(", ")
                    )))
                }
            }
        }
        cfg.validated()
    }

    /// The seven keys as a JSON object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("redis_dsn".into(), Value::String(self.redis_dsn.clone()));
        m.insert("queue_name".into(), Value::String(self.queue_name.clone()));
        m.insert("max_retries".into(), Value::from(self.max_retries));
        m.insert(
            "job_timeout_seconds".into(),
            Value::from(self.job_timeout_seconds),
        );
        m.insert(
            "result_ttl_seconds".into(),
            Value::from(self.result_ttl_seconds),
        );
        m.insert(
            "idempotency_ttl_seconds".into(),
            Value::from(self.idempotency_ttl_seconds),
        );
        m.insert(
            "correlation_mappings".into(),
            Value::Object(
                self.correlation_mappings
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
        Value::Object(m)
    }

    /// Loads the producer settings from `rrq.toml`: `path` if given, else `RRQ_CONFIG` when set
    /// and non-empty, else `./rrq.toml` when it is a file; then `RRQ_REDIS_DSN` (when set and
    /// non-empty) overrides `redis_dsn`.
    pub fn from_toml(path: Option<&Path>) -> Result<Self, ProducerError> {
        let path = resolve_config_path(path)?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ProducerErrorCode::ConfigNotFound
            } else {
                ProducerErrorCode::InvalidConfig
            };
            ProducerError::new(kind, format!("cannot read {}: {e}", path.display()))
        })?;
        let mut cfg = Self::parse_toml(&text)?;
        if let Ok(dsn) = std::env::var("RRQ_REDIS_DSN") {
            if !dsn.trim().is_empty() {
                cfg.redis_dsn = dsn;
            }
        }
        if let Ok(text) = std::env::var("RRQ_REDIS_CONNECT_TIMEOUT") {
            if !text.trim().is_empty() {
                cfg.redis_connect_timeout =
                    timeout_seconds("RRQ_REDIS_CONNECT_TIMEOUT", text.trim().parse::<f64>().ok())?;
            }
        }
        cfg.validated()
    }

    /// Reads the producer keys of an `rrq.toml` text (no environment override): the `[rrq]`
    /// table when there is one, else the root table.
    pub fn parse_toml(text: &str) -> Result<Self, ProducerError> {
        let root: toml::Table = text.parse().map_err(|e| {
            ProducerError::invalid_config(format!("rrq.toml is not valid TOML: {e}"))
        })?;
        let table = match root.get("rrq") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(bad_type("rrq", "a table")),
            None => &root,
        };
        let mut cfg = ProducerConfig::default();
        if let Some(v) = table.get("redis_dsn") {
            cfg.redis_dsn = toml_string("redis_dsn", v)?;
        }
        if let Some(v) = table.get("default_queue_name") {
            cfg.queue_name = toml_string("default_queue_name", v)?;
        }
        if let Some(v) = table.get("default_max_retries") {
            cfg.max_retries = toml_int("default_max_retries", v)?;
        }
        if let Some(v) = table.get("default_job_timeout_seconds") {
            cfg.job_timeout_seconds = toml_int("default_job_timeout_seconds", v)?;
        }
        if let Some(v) = table.get("default_result_ttl_seconds") {
            cfg.result_ttl_seconds = toml_int("default_result_ttl_seconds", v)?;
        }
        if let Some(v) = table.get("default_unique_job_lock_ttl_seconds") {
            cfg.idempotency_ttl_seconds = toml_int("default_unique_job_lock_ttl_seconds", v)?;
        }
        if let Some(v) = table.get("redis_connect_timeout_seconds") {
            let seconds = match v {
                toml::Value::Integer(i) => Some(*i as f64),
                toml::Value::Float(f) => Some(*f),
                _ => None,
            };
            cfg.redis_connect_timeout = timeout_seconds("redis_connect_timeout_seconds", seconds)?;
        }
        if let Some(v) = table.get("correlation_mappings") {
            let toml::Value::Table(t) = v else {
                return Err(bad_type("correlation_mappings", "a table of strings"));
            };
            let mut out = IndexMap::new();
            for (k, path) in t {
                match path {
                    toml::Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    _ => return Err(bad_type("correlation_mappings", "a table of strings")),
                }
            }
            cfg.correlation_mappings = out;
        }
        cfg.validated()
    }
}

/// The `job_catalog` directory an `rrq.toml` names (relative to the file's directory), or
/// `None` when it names none. Only the `[rrq]` table is read when there is one. A value that
/// is not a non-empty string, or a file that cannot be read, is `invalid_config`.
#[cfg(feature = "contracts")]
pub fn catalog_path_from_toml(config_path: &Path) -> Result<Option<PathBuf>, ProducerError> {
    let text = std::fs::read_to_string(config_path).map_err(|e| {
        ProducerError::invalid_config(format!("cannot read {}: {e}", config_path.display()))
    })?;
    let root: toml::Table = text
        .parse()
        .map_err(|e| ProducerError::invalid_config(format!("rrq.toml is not valid TOML: {e}")))?;
    let table = match root.get("rrq") {
        Some(toml::Value::Table(t)) => t,
        _ => &root,
    };
    match table.get("job_catalog") {
        None => Ok(None),
        Some(toml::Value::String(dir)) if !dir.trim().is_empty() => {
            let file =
                std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
            Ok(Some(base.join(dir)))
        }
        Some(_) => Err(ProducerError::invalid_config(format!(
            "{}: job_catalog must be a non-empty string (a directory)",
            config_path.display()
        ))),
    }
}

/// The job catalog the resolved `rrq.toml` (`path`, else `RRQ_CONFIG`, else `./rrq.toml`)
/// names in `job_catalog`, or `None` when it names none. A catalog that cannot be loaded is
/// `invalid_config` (`job_catalog: invalid job catalog: ...`).
#[cfg(feature = "contracts")]
pub fn load_toml_catalog(
    path: Option<&Path>,
) -> Result<Option<crate::contracts::JobCatalog>, ProducerError> {
    let resolved = resolve_config_path(path)?;
    match catalog_path_from_toml(&resolved)? {
        None => Ok(None),
        Some(dir) => crate::contracts::JobCatalog::load(dir)
            .map(Some)
            .map_err(|e| ProducerError::invalid_config(format!("job_catalog: {e}"))),
    }
}

/// The `rrq.toml` path by the resolution order of PRODUCER.md §2.
pub fn resolve_config_path(explicit: Option<&Path>) -> Result<PathBuf, ProducerError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Ok(env_path) = std::env::var("RRQ_CONFIG") {
        if !env_path.is_empty() {
            return Ok(PathBuf::from(env_path));
        }
    }
    let local = PathBuf::from("rrq.toml");
    if local.is_file() {
        return Ok(local);
    }
    Err(ProducerError::new(
        ProducerErrorCode::ConfigNotFound,
        CONFIG_NOT_FOUND_MESSAGE,
    ))
}

/// Seconds (> 0, finite) as a Duration; `key` names the setting in the error.
fn timeout_seconds(key: &str, seconds: Option<f64>) -> Result<Duration, ProducerError> {
    match seconds {
        Some(s) if s.is_finite() && s > 0.0 && s <= 2_147_483.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(bad_type(key, "a finite number > 0 (seconds)")),
    }
}

/// What is wrong with a Redis DSN in words (with the corrected form when it only lacks its
/// scheme), or `None`; the same rules as the TypeScript `redisDsnProblem`.
pub fn dsn_problem(dsn: &str) -> Option<String> {
    let shown = super::error::redact_dsn(dsn);
    let Some((scheme, rest)) = dsn.split_once("://") else {
        let bare = dsn.rsplit_once('@').map(|(_, h)| h).unwrap_or(dsn);
        let (host_port, db) = bare.split_once('/').unwrap_or((bare, "0"));
        let db = if db.chars().all(|c| c.is_ascii_digit()) && !db.is_empty() {
            db
        } else {
            "0"
        };
        let host_port = if host_port.is_empty() {
            "localhost:6379"
        } else {
            host_port
        };
        let shown = shown
            .rsplit_once('@')
            .map(|(_, h)| format!("***@{h}"))
            .unwrap_or(shown);
        return Some(format!(
            "\"{shown}\" has no scheme; use a URL such as redis://{host_port}/{db} (or rediss:// \
             for TLS, unix:///path/redis.sock?db=0)"
        ));
    };
    if !["redis", "rediss", "unix", "redis+unix"].contains(&scheme) {
        return Some(format!(
            "\"{shown}\" has the unsupported scheme '{scheme}'; use redis://, rediss:// (TLS), \
             unix:// or redis+unix://"
        ));
    }
    let db = if scheme.contains("unix") {
        None
    } else {
        let path = rest.split(['?', '#']).next().unwrap_or("");
        path.split_once('/')
            .map(|(_, db)| db)
            .filter(|db| !db.is_empty())
    };
    match db {
        Some(db) if !db.chars().all(|c| c.is_ascii_digit()) => Some(format!(
            "\"{shown}\" names the database '{db}'; a database is a number (redis://host:6379/0)"
        )),
        _ => None,
    }
}

fn bad_type(key: &str, what: &str) -> ProducerError {
    ProducerError::invalid_config(format!("{key} must be {what}"))
}

fn json_string(key: &str, v: &Value) -> Result<String, ProducerError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| bad_type(key, "a string"))
}

fn json_int(key: &str, v: &Value) -> Result<i64, ProducerError> {
    super::options::json_integer(v).ok_or_else(|| bad_type(key, "an integer"))
}

fn toml_string(key: &str, v: &toml::Value) -> Result<String, ProducerError> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        _ => Err(bad_type(key, "a string")),
    }
}

fn toml_int(key: &str, v: &toml::Value) -> Result<i64, ProducerError> {
    match v {
        toml::Value::Integer(i) => Ok(*i),
        _ => Err(bad_type(key, "an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_rrq_table_and_root() {
        let c = ProducerConfig::parse_toml(
            "other = 1\n[rrq]\nredis_dsn = \"redis://h:1/2\"\ndefault_queue_name = \"emails\"\ndefault_max_retries = 2\n[rrq.correlation_mappings]\ntenant = \"params.tenant.id\"\norder = \"order_id\"\n",
        )
        .unwrap();
        assert_eq!(c.redis_dsn, "redis://h:1/2");
        assert_eq!(c.queue_name, "rrq:queue:emails");
        assert_eq!(c.max_retries, 2);
        assert_eq!(
            c.correlation_mappings.keys().collect::<Vec<_>>(),
            ["tenant", "order"]
        );
        let c = ProducerConfig::parse_toml("default_job_timeout_seconds = 9\n").unwrap();
        assert_eq!(c.job_timeout_seconds, 9);
        let e = ProducerConfig::parse_toml("[rrq]\ndefault_max_retries = \"x\"\n").unwrap_err();
        assert_eq!(e.code(), "invalid_config");
        assert!(e.message().contains("default_max_retries"));
    }

    #[test]
    fn json_unknown_key() {
        let e = ProducerConfig::from_json(&serde_json::json!({"redis": "x"})).unwrap_err();
        assert_eq!(e.code(), "invalid_config");
        let c = ProducerConfig::from_json(&serde_json::json!({"queue_name": "q"})).unwrap();
        assert_eq!(c.queue_name, "rrq:queue:q");
    }
}
