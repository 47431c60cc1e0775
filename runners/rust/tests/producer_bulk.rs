//! `enqueue_many` under memory pressure (issue 19, item 4): with Redis at `maxmemory` and
//! `noeviction`, a script call writes all of its jobs or none, and the error says OOM and
//! exactly which ids were written. Before, a pipelined batch wrote some jobs and failed
//! without saying which. One test function: `maxmemory` is server-wide, so the cases run in
//! turn on a private redis-server.
#![cfg(feature = "producer")]

mod common;

use rrqkit::producer::{EnqueueItem, BULK_CHUNK_SIZE};
use rrqkit::EnqueueOptions;
use serde_json::json;

use common::RedisServer;

/// maxmemory at `headroom` bytes above what Redis uses now (negative: already over).
fn limit_memory(c: &mut redis::Connection, headroom: i64) {
    let info: String = redis::cmd("INFO").arg("memory").query(c).unwrap();
    let used: i64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    set_maxmemory(c, (used + headroom).max(1));
}

fn set_maxmemory(c: &mut redis::Connection, bytes: i64) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(bytes.to_string())
        .query(c)
        .unwrap();
}

fn items(count: usize, prefix: &str, size: usize) -> Vec<EnqueueItem> {
    (0..count)
        .map(|i| EnqueueItem {
            function_name: "work".into(),
            params: json!({"secret": "x".repeat(size)})
                .as_object()
                .unwrap()
                .clone(),
            options: EnqueueOptions {
                job_id: Some(format!("{prefix}-{i}")),
                ..Default::default()
            },
        })
        .collect()
}

fn existing(c: &mut redis::Connection, ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|id| {
            redis::cmd("EXISTS")
                .arg(format!("rrq:job:{id}"))
                .query::<i64>(c)
                .unwrap()
                == 1
        })
        .cloned()
        .collect()
}

fn ids_of(batch: &[EnqueueItem]) -> Vec<String> {
    batch
        .iter()
        .map(|b| b.options.job_id.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn bulk_enqueue_is_all_or_nothing_under_maxmemory() {
    let server = RedisServer::start_with("bulk", &["--maxmemory-policy", "noeviction"]);
    let p = server.producer();
    let mut c = server.con();

    // OOM part-way through what a pipeline would have written: all or none
    let batch = items(100, "mid", 4000);
    let ids = ids_of(&batch);
    limit_memory(&mut c, 100_000);
    let outcome = p.enqueue_many(batch).await;
    set_maxmemory(&mut c, 0);
    match outcome {
        Ok(written) => {
            assert_eq!(written, ids);
            assert_eq!(existing(&mut c, &ids), ids);
        }
        Err(e) => {
            assert!(e.message().contains("out of memory"), "{}", e.message());
            assert!(e.written_ids().is_empty());
            assert!(existing(&mut c, &ids).is_empty());
        }
    }
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();

    // over maxmemory at the start: nothing written, the error says OOM
    let _: () = redis::cmd("SET")
        .arg("filler")
        .arg("f".repeat(200_000))
        .query(&mut c)
        .unwrap();
    limit_memory(&mut c, -50_000);
    let e = p.enqueue_many(items(100, "over", 100)).await.unwrap_err();
    set_maxmemory(&mut c, 0);
    assert_eq!(e.code(), "redis_error");
    assert!(
        e.message().starts_with("Redis is out of memory") && e.message().contains("OOM"),
        "{}",
        e.message()
    );
    assert!(e.message().contains("none of the 100 jobs was written"));
    assert!(e.written_ids().is_empty());
    // no job params in the error (issue 19 item 5)
    assert!(!e.to_string().contains(&"x".repeat(50)));
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 1, "the filler only");
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();

    // chunks: an existing id in the second chunk leaves it unwritten; the error names
    // exactly the first chunk's ids
    p.enqueue(
        "work",
        serde_json::Map::new(),
        EnqueueOptions {
            job_id: Some(format!("chunk-{}", BULK_CHUNK_SIZE + 5)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let batch = items(BULK_CHUNK_SIZE * 2 + 10, "chunk", 10);
    let ids = ids_of(&batch);
    let e = p.enqueue_many(batch).await.unwrap_err();
    assert_eq!(e.code(), "duplicate_job_id");
    assert_eq!(e.written_ids(), &ids[..BULK_CHUNK_SIZE]);
    let mut expected = ids[..BULK_CHUNK_SIZE].to_vec();
    expected.push(format!("chunk-{}", BULK_CHUNK_SIZE + 5));
    assert_eq!(existing(&mut c, &ids), expected);
}
