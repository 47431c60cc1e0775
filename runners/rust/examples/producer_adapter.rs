//! JSON-lines adapter for producer conformance (`conformance/PRODUCER_ADAPTER.md`).
//!
//! Reads one JSON command per line on stdin, writes one JSON reply per line on stdout, exits 0
//! when stdin closes.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use rrqkit::producer::EnqueueItem;
use rrqkit::{Producer, ProducerConfig, ProducerError, ProducerErrorCode};
use serde_json::{json, Map, Value};

struct Adapter {
    producer: Option<Producer>,
}

fn arg<'a>(cmd: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    cmd.get(name).filter(|v| !v.is_null())
}

fn seconds(cmd: &Map<String, Value>, name: &str, default: f64) -> Result<Duration, ProducerError> {
    match arg(cmd, name) {
        None => Ok(Duration::from_secs_f64(default)),
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(ProducerError::new(
                ProducerErrorCode::InvalidArgument,
                format!("{name} must be a finite number >= 0"),
            )),
        },
    }
}

fn job_id_arg(cmd: &Map<String, Value>) -> Result<String, ProducerError> {
    match arg(cmd, "job_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(ProducerError::new(
            ProducerErrorCode::InvalidArgument,
            "job_id cannot be empty",
        )),
    }
}

impl Adapter {
    fn producer(&mut self) -> Result<&Producer, ProducerError> {
        if self.producer.is_none() {
            self.producer = Some(Producer::from_toml(None)?);
        }
        Ok(self.producer.as_ref().expect("producer"))
    }

    async fn run(&mut self, op: &str, cmd: &Map<String, Value>) -> Result<Value, ProducerError> {
        match op {
            "configure" => {
                let config = ProducerConfig::from_json(arg(cmd, "config").unwrap_or(&json!({})))?;
                self.producer = Some(Producer::new(config)?);
                Ok(Value::Null)
            }
            "load_config" => {
                let path = match arg(cmd, "path") {
                    None => None,
                    Some(Value::String(s)) => Some(PathBuf::from(s)),
                    Some(_) => {
                        return Err(ProducerError::new(
                            ProducerErrorCode::InvalidArgument,
                            "path must be a string",
                        ))
                    }
                };
                // with the job catalog rrq.toml names (job_catalog), as Producer::from_toml does
                let producer = Producer::from_toml(path.as_deref())?;
                let out = producer.config().to_json();
                self.producer = Some(producer);
                Ok(out)
            }
            "enqueue" | "enqueue_with_rate_limit" | "enqueue_with_debounce" => {
                let item = EnqueueItem::from_json(&Value::Object(cmd.clone()))?;
                let p = self.producer()?;
                let (f, params, options) = (&item.function_name, item.params, item.options);
                Ok(match op {
                    "enqueue" => Value::String(p.enqueue(f, params, options).await?),
                    "enqueue_with_rate_limit" => p
                        .enqueue_with_rate_limit(f, params, options)
                        .await?
                        .map(Value::String)
                        .unwrap_or(Value::Null),
                    _ => Value::String(p.enqueue_with_debounce(f, params, options).await?),
                })
            }
            "enqueue_many" => {
                let Some(Value::Array(raw)) = arg(cmd, "items") else {
                    return Err(ProducerError::new(
                        ProducerErrorCode::InvalidArgument,
                        "items must be a list",
                    ));
                };
                let items = raw
                    .iter()
                    .map(EnqueueItem::from_json)
                    .collect::<Result<Vec<_>, _>>()?;
                let ids = self.producer()?.enqueue_many(items).await?;
                Ok(Value::Array(ids.into_iter().map(Value::String).collect()))
            }
            "get_job_status" => {
                let id = job_id_arg(cmd)?;
                let r = self.producer()?.get_job_status(&id).await?;
                Ok(r.map(|r| r.to_json()).unwrap_or(Value::Null))
            }
            "wait_for_completion" => {
                let id = job_id_arg(cmd)?;
                let timeout = seconds(cmd, "timeout_seconds", 30.0)?;
                let block = seconds(cmd, "block_interval_seconds", 0.25)?;
                let r = self
                    .producer()?
                    .wait_for_completion(&id, timeout, block)
                    .await?;
                Ok(r.map(|r| r.to_json()).unwrap_or(Value::Null))
            }
            "cancel" => {
                let id = job_id_arg(cmd)?;
                Ok(self.producer()?.cancel(&id).await?.to_json())
            }
            other => Err(ProducerError::new(
                ProducerErrorCode::InvalidArgument,
                format!("unknown op '{other}'"),
            )),
        }
    }
}

fn adapter_error(id: Value, message: String) -> Value {
    json!({"id": id, "ok": false, "error": {"code": "adapter_error", "message": message}})
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut adapter = Adapter { producer: None };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Err(e) => adapter_error(Value::Null, format!("not a JSON line: {e}")),
            Ok(Value::Object(cmd)) => {
                let id = cmd.get("id").cloned().unwrap_or(Value::Null);
                match cmd.get("op").and_then(Value::as_str) {
                    None => adapter_error(id, "op must be a string".into()),
                    Some(op) if !KNOWN_OPS.contains(&op) => {
                        adapter_error(id, format!("unknown op '{op}'"))
                    }
                    Some(op) => match rt.block_on(adapter.run(op, &cmd)) {
                        Ok(result) => json!({"id": id, "ok": true, "result": result}),
                        Err(e) => {
                            let mut error = json!({"code": e.code(), "message": e.message()});
                            if let Some(field) = e.field() {
                                // a contract failure: where the params break it
                                error["field"] = Value::String(field.to_string());
                            }
                            json!({"id": id, "ok": false, "error": error})
                        }
                    },
                }
            }
            Ok(_) => adapter_error(Value::Null, "a command must be a JSON object".into()),
        };
        if writeln!(stdout, "{reply}")
            .and_then(|_| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

const KNOWN_OPS: [&str; 9] = [
    "configure",
    "load_config",
    "enqueue",
    "enqueue_with_rate_limit",
    "enqueue_with_debounce",
    "enqueue_many",
    "get_job_status",
    "wait_for_completion",
    "cancel",
];
