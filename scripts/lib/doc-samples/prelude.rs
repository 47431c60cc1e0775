// The scaffold of the Rust doc samples: every sample becomes the body of an async fn in its own
// module of one scratch crate (`cargo build`, once for all), with these names in scope and the
// fn's parameters (`producer`, `runner`, `params`, `job_id`, `config`) standing for what a
// reader's application already has.
#![allow(dead_code, unused_imports)]
pub use rrqkit::{
    EnqueueOptions, ExecutionOutcome, ExecutionRequest, HandlerError, JobContext, Next, Producer,
    ProducerConfig, ProducerError, Registry, Runner,
};
pub use serde_json::{json, Map, Value};
pub use std::sync::Arc;

pub type SampleResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub fn is_valid_card(_card: Option<&Value>) -> bool {
    true
}
pub async fn upstream_ready() -> bool {
    true
}
pub async fn alert(_message: String) {}
pub async fn copy_rows(_table: Option<&Value>) -> Result<u64, HandlerError> {
    Ok(0)
}
pub struct PartialExportGuard;
impl PartialExportGuard {
    pub fn new() -> Self {
        Self
    }
}
/// Producer middleware the samples install (`Audit`, `Tenant("acme".into())`).
pub struct Audit;
impl rrqkit::ProducerMiddleware for Audit {}
pub struct Tenant(pub String);
impl rrqkit::ProducerMiddleware for Tenant {}
