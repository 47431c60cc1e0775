//! Enqueue a job for `hello_runner` and wait for its result (README.md).
//!
//! `hello_producer [path/to/rrq.toml]` (default: RRQ_CONFIG, then ./rrq.toml).

use std::time::Duration;

use rrqkit::{EnqueueOptions, Producer};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).map(std::path::PathBuf::from);
    let producer = Producer::from_toml(path.as_deref())?;

    let params = json!({ "name": "Ada" })
        .as_object()
        .cloned()
        .unwrap_or_default();
    let job_id = producer
        .enqueue("greet", params, EnqueueOptions::default())
        .await?;
    println!("enqueued {job_id}");

    match producer
        .wait_for_completion(&job_id, Duration::from_secs(30), Duration::from_millis(250))
        .await?
    {
        Some(done) => println!(
            "{} {:?} {:?}",
            done.status.as_str(),
            done.result,
            done.last_error
        ),
        None => println!("still running after 30 s"),
    }
    Ok(())
}
