//! The Rust race's peer for `npm run bench` (bench/scenarios/rust-race.ts): apalis 1.0 with
//! its Redis backend (apalis-redis), driven the way its documentation shows.
//!
//! ```text
//! rrqkit-bench-apalis enqueue <redis_dsn> <single|bulk> <jobs> <callers> <batch>
//! rrqkit-bench-apalis worker <redis_dsn> <echo|sleep> <concurrency>
//! ```
//!
//! `enqueue` prints `{"jobs": N, "elapsed_ms": T}` (connection set-up excluded), as
//! bench/rust-enqueue does for rrqkit's producer. `worker` prints `ready` once connected and
//! runs until it is killed; the bench watches the queue's keys to time the drain, the same
//! way it times rrqkit's.
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_redis::{Client, Config, ConnectionManager, RedisStorage};
use redis::aio::ConnectionManagerConfig;
use serde_json::{json, Value};

/// The queue every bench job goes to (keys `bench:active`, `bench:done`, …).
const QUEUE: &str = "bench";
/// The worker's name: fixed, so the bench knows its in-flight set (`bench:inflight:<name>`).
const WORKER: &str = "bench-apalis";

type Storage = RedisStorage<Value, ConnectionManager>;
type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Seconds a Redis reply may take before the connection gives up on it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// `apalis_redis::connect` with one setting changed: redis-rs's default response timeout
/// (500 ms) made the worker stop ("PollNextError: timed out") on the bench's busy 2-core
/// machine, so a reply may take up to 30 s.
async fn storage(dsn: &str) -> Result<Storage, Failure> {
    let config = ConnectionManagerConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    let conn = Client::open(dsn)?
        .get_connection_manager_with_config(config)
        .await?;
    Ok(RedisStorage::new(conn).with_config(Config::default().queue(QUEUE)))
}

/// The job every contender runs: returns its params (the conformance runners' `echo`).
async fn echo(params: Value) -> Result<Value, BoxDynError> {
    Ok(params)
}

/// An I/O-bound job: waits `ms` milliseconds (default 10) without holding a thread.
async fn sleep(params: Value) -> Result<Value, BoxDynError> {
    let ms = params.get("ms").and_then(Value::as_u64).unwrap_or(10);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json!({ "slept_ms": ms }))
}

fn params(i: usize) -> Value {
    json!({ "i": i })
}

/// Single pushes from `callers` tasks, each with its own handle on the one multiplexed
/// connection (the storage is cloned per caller, as apalis's `push` takes `&mut self`), or
/// bulk pushes of `batch` from one caller (`push_bulk`: one script call per batch).
async fn enqueue(dsn: &str, args: &[String]) -> Result<(), Failure> {
    let [mode, jobs, callers, batch] = args else {
        return Err("enqueue takes <single|bulk> <jobs> <callers> <batch>".into());
    };
    let jobs: usize = jobs.parse()?;
    let callers = callers.parse::<usize>()?.max(1);
    let batch = batch.parse::<usize>()?.max(1);
    let mut storage = storage(dsn).await?;
    let started = Instant::now();
    match mode.as_str() {
        "single" => {
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::with_capacity(callers);
            for _ in 0..callers {
                let (mut storage, next) = (storage.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= jobs {
                            return Ok::<(), Failure>(());
                        }
                        storage.push(params(i)).await?;
                    }
                }));
            }
            for task in tasks {
                task.await??;
            }
        }
        "bulk" => {
            let mut i = 0;
            while i < jobs {
                let end = (i + batch).min(jobs);
                storage.push_bulk((i..end).map(params).collect()).await?;
                i = end;
            }
        }
        other => return Err(format!("unknown enqueue mode {other}").into()),
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    println!("{}", json!({ "jobs": jobs, "elapsed_ms": elapsed }));
    Ok(())
}

/// apalis's worker on the multi-threaded runtime (one thread per core), with tower's
/// concurrency limit at `concurrency` jobs in flight and the backend's default fetch batch,
/// heartbeat, result persistence and task locking.
async fn worker(dsn: &str, args: &[String]) -> Result<(), Failure> {
    let [handler, concurrency] = args else {
        return Err("worker takes <echo|sleep> <concurrency>".into());
    };
    let concurrency: usize = concurrency.parse()?;
    let storage = storage(dsn).await?;
    let builder = WorkerBuilder::new(WORKER)
        .backend(storage)
        .concurrency(concurrency);
    println!("ready");
    match handler.as_str() {
        "echo" => builder.build(echo).run().await?,
        "sleep" => builder.build(sleep).run().await?,
        other => return Err(format!("unknown handler {other}").into()),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1..3) {
        Some([command, dsn]) if command == "enqueue" => enqueue(dsn, &args[3..]).await,
        Some([command, dsn]) if command == "worker" => worker(dsn, &args[3..]).await,
        _ => Err("usage: rrqkit-bench-apalis <enqueue|worker> <redis_dsn> ...".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rrqkit-bench-apalis: {error}");
            ExitCode::FAILURE
        }
    }
}
