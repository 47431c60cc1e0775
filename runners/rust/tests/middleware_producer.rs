//! Producer middleware against a real redis-server: before-hooks in registration order and
//! after-hooks in reverse, changes made by before-hooks written, a veto (or any error) writes
//! nothing and stops the later hooks, validation (options and catalog) runs on the job the
//! hooks leave, bulk enqueue is all or nothing, a dropped rate-limited enqueue calls no
//! after-hook, a debounce update passes the existing id, an after-hook error reaches the
//! caller with the job written.
#![cfg(feature = "producer")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rrqkit::producer::{EnqueueItem, PendingEnqueue, ProducerMiddleware};
use rrqkit::{EnqueueOptions, ProducerError, ProducerErrorCode};
use serde_json::{json, Map, Value};

use common::RedisServer;

type Log = Arc<Mutex<Vec<String>>>;

/// What a test middleware does in its before-hook.
#[derive(Clone)]
enum Before {
    /// Adds `"<name>": true` to the params.
    Mark,
    Veto(&'static str),
    Fail,
    /// Replaces the params.
    SetParams(Value),
    SetOptions(Box<EnqueueOptions>),
}

struct Recorder {
    name: &'static str,
    log: Log,
    before: Before,
    fail_after: bool,
}

impl Recorder {
    fn boxed(name: &'static str, log: &Log, before: Before) -> Arc<dyn ProducerMiddleware> {
        Arc::new(Recorder {
            name,
            log: log.clone(),
            before,
            fail_after: false,
        })
    }
}

impl ProducerMiddleware for Recorder {
    fn before_enqueue(&self, job: &mut PendingEnqueue) -> Result<(), ProducerError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("before {} {}", self.name, job.function_name));
        match &self.before {
            Before::Mark => {
                job.params.insert(self.name.into(), true.into());
            }
            Before::Veto(reason) => return Err(ProducerError::vetoed(*reason)),
            Before::Fail => {
                return Err(ProducerError::new(
                    ProducerErrorCode::InvalidArgument,
                    "policy store is down",
                ))
            }
            Before::SetParams(v) => job.params = v.as_object().unwrap().clone(),
            Before::SetOptions(o) => job.options = (**o).clone(),
        }
        Ok(())
    }

    fn after_enqueue(&self, job: &PendingEnqueue, job_id: &str) -> Result<(), ProducerError> {
        self.log.lock().unwrap().push(format!(
            "after {} {} {job_id}",
            self.name, job.function_name
        ));
        if self.fail_after {
            return Err(ProducerError::new(
                ProducerErrorCode::RedisError,
                "audit log unavailable",
            ));
        }
        Ok(())
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

fn key_count(server: &RedisServer) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.con())
        .unwrap();
    keys.len()
}

fn job_hash(server: &RedisServer, id: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(format!("rrq:job:{id}"))
        .query(&mut server.con())
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn hooks_run_as_an_onion_and_their_changes_are_written() {
    let server = RedisServer::start("mw-order");
    let log = Log::default();
    let routing = EnqueueOptions {
        queue_name: Some("mail".into()),
        job_id: Some("job-1".into()),
        ..Default::default()
    };
    let producer = server
        .producer()
        .use_middleware(Recorder::boxed("a", &log, Before::Mark))
        .use_middleware(Recorder::boxed(
            "b",
            &log,
            Before::SetOptions(Box::new(routing)),
        ))
        .use_middleware(Recorder::boxed("c", &log, Before::Mark));
    assert_eq!(producer.middleware().len(), 3);

    let id = producer
        .enqueue("send", obj(json!({"to": "x"})), EnqueueOptions::default())
        .await
        .unwrap();
    assert_eq!(id, "job-1");
    assert_eq!(
        take(&log),
        [
            "before a send",
            "before b send",
            "before c send",
            "after c send job-1",
            "after b send job-1",
            "after a send job-1",
        ]
    );
    let h = job_hash(&server, "job-1");
    assert_eq!(h["queue_name"], "rrq:queue:mail");
    let params: Value = serde_json::from_str(&h["job_params"]).unwrap();
    assert_eq!(params, json!({"to": "x", "a": true, "c": true}));
}

#[tokio::test(flavor = "current_thread")]
async fn a_veto_or_an_error_writes_nothing_and_stops_later_hooks() {
    let server = RedisServer::start("mw-veto");
    let log = Log::default();
    let producer = server
        .producer()
        .use_middleware(Recorder::boxed("a", &log, Before::Mark))
        .use_middleware(Recorder::boxed("v", &log, Before::Veto("tenant is frozen")))
        .use_middleware(Recorder::boxed("late", &log, Before::Mark));
    let opts = || EnqueueOptions {
        job_id: Some("never".into()),
        ..Default::default()
    };

    let e = producer
        .enqueue("send", Map::new(), opts())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "enqueue_vetoed");
    assert_eq!(e.kind(), ProducerErrorCode::EnqueueVetoed);
    assert_eq!(e.message(), "enqueue of send vetoed: tenant is frozen");
    assert_eq!(e.function_name(), Some("send"));
    assert_eq!(e.reason(), Some("tenant is frozen"));
    assert_eq!(take(&log), ["before a send", "before v send"]);

    // the other enqueue paths refuse the same way
    let rate = EnqueueOptions {
        rate_limit_key: Some("rk".into()),
        rate_limit_seconds: Some(5.0),
        ..opts()
    };
    let e = producer
        .enqueue_with_rate_limit("send", Map::new(), rate)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "enqueue_vetoed");
    let debounce = EnqueueOptions {
        debounce_key: Some("dk".into()),
        debounce_seconds: Some(5.0),
        ..Default::default()
    };
    let e = producer
        .enqueue_with_debounce("send", Map::new(), debounce)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "enqueue_vetoed");
    assert_eq!(key_count(&server), 0);

    // another error passes unchanged
    let log = Log::default();
    let producer = server
        .producer()
        .use_middleware(Recorder::boxed("f", &log, Before::Fail))
        .use_middleware(Recorder::boxed("late", &log, Before::Mark));
    let e = producer
        .enqueue("send", Map::new(), opts())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ProducerError::new(ProducerErrorCode::InvalidArgument, "policy store is down")
    );
    assert_eq!(take(&log), ["before f send"]);
    assert_eq!(key_count(&server), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn validation_runs_on_the_job_the_hooks_leave() {
    let server = RedisServer::start("mw-validate");
    let log = Log::default();

    // options a hook sets are checked
    let bad = EnqueueOptions {
        max_retries: Some(-1),
        ..Default::default()
    };
    let producer = server.producer().use_middleware(Recorder::boxed(
        "o",
        &log,
        Before::SetOptions(Box::new(bad)),
    ));
    let e = producer
        .enqueue("send", Map::new(), EnqueueOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_argument", "{e}");
    assert_eq!(key_count(&server), 0);

    // options the caller gave wrongly are fixed by a hook before they are checked
    let fixed = EnqueueOptions {
        job_id: Some("fixed".into()),
        ..Default::default()
    };
    let producer = server.producer().use_middleware(Recorder::boxed(
        "o",
        &log,
        Before::SetOptions(Box::new(fixed)),
    ));
    let given = EnqueueOptions {
        max_retries: Some(-1),
        ..Default::default()
    };
    let id = producer.enqueue("send", Map::new(), given).await.unwrap();
    assert_eq!(id, "fixed");
    assert_eq!(job_hash(&server, "fixed")["max_retries"], "5");
}

#[cfg(feature = "contracts")]
#[tokio::test(flavor = "current_thread")]
async fn the_catalog_checks_the_params_the_hooks_leave() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/fixtures/catalog");
    let catalog = || rrqkit::contracts::JobCatalog::load(&dir).unwrap();
    let server = RedisServer::start("mw-catalog");
    let log = Log::default();
    let good = json!({"to": "a@b", "subject": "hi"});
    let fixer = Recorder::boxed("fix", &log, Before::SetParams(good));
    let producer = server.producer().catalog(catalog()).use_middleware(fixer);
    let id = producer
        .enqueue(
            "send_email",
            obj(json!({"to": 1})),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let params: Value = serde_json::from_str(&job_hash(&server, &id)["job_params"]).unwrap();
    assert_eq!(params, json!({"to": "a@b", "subject": "hi"}));

    let breaker = Recorder::boxed(
        "break",
        &log,
        Before::SetParams(json!({"to": 7, "subject": "hi"})),
    );
    let producer = server.producer().catalog(catalog()).use_middleware(breaker);
    let before = key_count(&server);
    let e = producer
        .enqueue(
            "send_email",
            obj(json!({"to": "a@b", "subject": "hi"})),
            EnqueueOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_params", "{e}");
    assert_eq!(e.field(), Some("/to"));
    assert_eq!(key_count(&server), before);
}

fn item(id: &str) -> EnqueueItem {
    EnqueueItem {
        function_name: format!("fn-{id}"),
        params: Map::new(),
        options: EnqueueOptions {
            job_id: Some(id.into()),
            ..Default::default()
        },
    }
}

/// Vetoes the job whose function is `fn-<id>`.
struct VetoOne(&'static str, Log);

impl ProducerMiddleware for VetoOne {
    fn before_enqueue(&self, job: &mut PendingEnqueue) -> Result<(), ProducerError> {
        self.1
            .lock()
            .unwrap()
            .push(format!("before {}", job.function_name));
        if job.function_name == format!("fn-{}", self.0) {
            return Err(ProducerError::vetoed("not this one"));
        }
        Ok(())
    }

    fn after_enqueue(&self, _job: &PendingEnqueue, job_id: &str) -> Result<(), ProducerError> {
        self.1.lock().unwrap().push(format!("after {job_id}"));
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn bulk_runs_hooks_per_item_and_is_all_or_nothing() {
    let server = RedisServer::start("mw-bulk");
    let log = Log::default();
    let producer = server
        .producer()
        .use_middleware(Arc::new(VetoOne("b2", log.clone())));
    let e = producer
        .enqueue_many(vec![item("b1"), item("b2"), item("b3")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), "enqueue_vetoed");
    assert_eq!(e.message(), "enqueue of fn-b2 vetoed: not this one");
    assert!(e.written_ids().is_empty());
    assert_eq!(take(&log), ["before fn-b1", "before fn-b2"]);
    assert_eq!(key_count(&server), 0);

    let ids = producer
        .enqueue_many(vec![item("b1"), item("b3")])
        .await
        .unwrap();
    assert_eq!(ids, ["b1", "b3"]);
    assert_eq!(
        take(&log),
        ["before fn-b1", "before fn-b3", "after b1", "after b3"]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn dropped_rate_limited_enqueue_calls_no_after_hook_and_debounce_passes_the_existing_id() {
    let server = RedisServer::start("mw-flow");
    let log = Log::default();
    let producer = server
        .producer()
        .use_middleware(Recorder::boxed("a", &log, Before::Mark));
    let rate = EnqueueOptions {
        rate_limit_key: Some("user-1".into()),
        rate_limit_seconds: Some(60.0),
        ..Default::default()
    };
    let first = producer
        .enqueue_with_rate_limit("f", Map::new(), rate.clone())
        .await
        .unwrap()
        .unwrap();
    let dropped = producer
        .enqueue_with_rate_limit("f", Map::new(), rate)
        .await
        .unwrap();
    assert_eq!(dropped, None);
    assert_eq!(
        take(&log),
        ["before a f", &format!("after a f {first}"), "before a f"]
    );

    let debounce = EnqueueOptions {
        debounce_key: Some("doc".into()),
        debounce_seconds: Some(60.0),
        ..Default::default()
    };
    let created = producer
        .enqueue_with_debounce("d", Map::new(), debounce.clone())
        .await
        .unwrap();
    let updated = producer
        .enqueue_with_debounce("d", Map::new(), debounce)
        .await
        .unwrap();
    assert_eq!(created, updated);
    assert_eq!(
        take(&log),
        [
            "before a d".to_string(),
            format!("after a d {created}"),
            "before a d".to_string(),
            format!("after a d {created}"),
        ]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_after_hook_error_reaches_the_caller_with_the_job_written() {
    let server = RedisServer::start("mw-after");
    let log = Log::default();
    let failing = Arc::new(Recorder {
        name: "audit",
        log: log.clone(),
        before: Before::Mark,
        fail_after: true,
    });
    let producer = server
        .producer()
        .use_middleware(Recorder::boxed("outer", &log, Before::Mark))
        .use_middleware(failing);
    let opts = EnqueueOptions {
        job_id: Some("kept".into()),
        ..Default::default()
    };
    let e = producer.enqueue("f", Map::new(), opts).await.unwrap_err();
    assert_eq!(e.message(), "audit log unavailable");
    assert_eq!(job_hash(&server, "kept")["status"], "PENDING");
    // the inner after-hook failed: the outer one did not run
    assert_eq!(
        take(&log),
        ["before outer f", "before audit f", "after audit f kept"]
    );

    // bulk: the error carries every written id
    let e = producer
        .enqueue_many(vec![item("k1"), item("k2")])
        .await
        .unwrap_err();
    assert_eq!(e.written_ids(), ["k1", "k2"]);
    assert_eq!(job_hash(&server, "k2")["status"], "PENDING");
}
