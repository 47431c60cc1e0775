//! Enqueue-throughput helper for `npm run bench` (bench/scenarios/enqueue.ts).
//!
//! `rrqkit-bench-enqueue <redis_dsn> <single|bulk> <jobs> <callers> <batch>`
//!
//! single: `callers` tasks share one producer (one multiplexed connection) and each awaits
//! `enqueue` in a loop until `jobs` are queued. bulk: one caller sends `enqueue_many` batches
//! of `batch`. Prints `{"jobs": N, "elapsed_ms": T}` (connection set-up excluded).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rrqkit::producer::EnqueueItem;
use rrqkit::{EnqueueOptions, Producer, ProducerConfig};
use serde_json::{json, Map, Value};

fn params(i: usize) -> Map<String, Value> {
    json!({ "i": i }).as_object().cloned().unwrap_or_default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: rrqkit-bench-enqueue <redis_dsn> <single|bulk> <jobs> <callers> <batch>");
        std::process::exit(2);
    }
    let (dsn, mode) = (&args[1], args[2].as_str());
    let jobs: usize = args[3].parse()?;
    let callers: usize = args[4].parse::<usize>()?.max(1);
    let batch: usize = args[5].parse::<usize>()?.max(1);
    let producer = Arc::new(Producer::new(ProducerConfig::with_dsn(dsn.as_str()))?);
    // Connect and load the script before the clock starts (as the other producers do).
    producer.get_job_status("bench-warm-up").await?;
    let started = Instant::now();
    match mode {
        "single" => {
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::with_capacity(callers);
            for _ in 0..callers {
                let (producer, next) = (producer.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= jobs {
                            return Ok::<(), rrqkit::ProducerError>(());
                        }
                        producer
                            .enqueue("echo", params(i), EnqueueOptions::default())
                            .await?;
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
                let items = (i..end)
                    .map(|k| EnqueueItem {
                        function_name: "echo".into(),
                        params: params(k),
                        options: EnqueueOptions::default(),
                    })
                    .collect();
                producer.enqueue_many(items).await?;
                i = end;
            }
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    println!("{}", json!({ "jobs": jobs, "elapsed_ms": elapsed }));
    Ok(())
}
