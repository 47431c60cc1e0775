//! LiveRrq end to end: a private redis-server, `rrq worker run` (RRQ_ORCHESTRATOR or `rrq` on
//! PATH) and the crate's hello_runner example; skipped when either is missing.

use std::path::PathBuf;
use std::time::Duration;

use rrqkit::testing::{LiveError, LiveRrq};
use rrqkit::{EnqueueOptions, JobStatus};
use serde_json::json;

/// target/debug/examples/hello_runner beside this test binary (target/debug/deps/...).
fn hello_runner() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe
        .parent()?
        .parent()?
        .join("examples")
        .join("hello_runner");
    path.is_file().then_some(path)
}

#[tokio::test]
async fn one_job_end_to_end() {
    let Some(runner) = hello_runner() else {
        eprintln!("skipped: build the hello_runner example first (cargo build --examples)");
        return;
    };
    let toml = format!(
        "[rrq]\ndefault_runner_name = \"rust\"\n\n[rrq.runners.rust]\ncmd = [{:?}]\npool_size = 1\n",
        runner.display().to_string()
    );
    let live = match LiveRrq::start(&toml).await {
        Ok(live) => live,
        Err(LiveError::NoOrchestrator) => {
            eprintln!("skipped: {}", LiveError::NoOrchestrator);
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let params = json!({"name": "live"}).as_object().unwrap().clone();
    let id = live
        .producer()
        .enqueue("greet", params, EnqueueOptions::default())
        .await
        .unwrap();
    let done = live
        .producer()
        .wait_for_completion(&id, Duration::from_secs(30), Duration::from_millis(500))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("not done; worker log:\n{}", live.worker_log()));
    assert_eq!(done.status, JobStatus::Completed, "{}", live.worker_log());
    assert_eq!(done.result, Some(json!({"greeting": "Hello, live!"})));
    assert!(live.redis_url().starts_with("redis://127.0.0.1:"));
    live.stop();
}
