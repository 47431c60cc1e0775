//! [`LiveRrq`]: a private `redis-server` and the orchestrator (`rrq worker run`) for a test's
//! duration, with a real [`Producer`] bound to that Redis.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::producer::{Producer, ProducerConfig, ProducerError};

/// How long each process may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why [`LiveRrq::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Neither `RRQ_ORCHESTRATOR` nor `rrq` on PATH: tests usually skip on this.
    #[error("no orchestrator: set RRQ_ORCHESTRATOR to a command line (e.g. \"node /path/to/bin/rrq.js\") or put `rrq` on PATH")]
    NoOrchestrator,
    /// `redis-server` (or `REDIS_SERVER`) could not be started.
    #[error("cannot start {0}: {1}")]
    Spawn(String, std::io::Error),
    /// A process did not come up; the text ends with its log.
    #[error("{0}")]
    NotReady(String),
    /// The rrq.toml could not be written or read.
    #[error("rrq.toml: {0}")]
    Config(String),
    #[error(transparent)]
    Producer(#[from] ProducerError),
}

/// A running redis-server and orchestrator; both are stopped on drop.
///
/// ```no_run
/// # async fn demo() -> Result<(), rrqkit::testing::LiveError> {
/// let toml = r#"
/// [rrq]
/// default_runner_name = "rust"
/// [rrq.runners.rust]
/// cmd = ["target/debug/examples/hello_runner"]
/// "#;
/// let live = rrqkit::testing::LiveRrq::start(toml).await?;
/// let id = live.producer().enqueue("echo", Default::default(), Default::default()).await?;
/// # Ok(()) }
/// ```
pub struct LiveRrq {
    redis: Child,
    worker: Child,
    redis_url: String,
    producer: Producer,
    dir: PathBuf,
}

impl std::fmt::Debug for LiveRrq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRrq")
            .field("redis_url", &self.redis_url)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The orchestrator's command line: `RRQ_ORCHESTRATOR` (split on whitespace), else `rrq` on
/// PATH; `None` when there is neither.
pub fn orchestrator_command() -> Option<Vec<String>> {
    if let Ok(line) = std::env::var("RRQ_ORCHESTRATOR") {
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if !words.is_empty() {
            return Some(words);
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("rrq"))
        .find(|candidate| candidate.is_file())
        .map(|rrq| vec![rrq.to_string_lossy().into_owned()])
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text[start..].to_string()
}

fn log_file(path: &Path) -> Result<std::fs::File, LiveError> {
    std::fs::File::create(path).map_err(|e| LiveError::Config(e.to_string()))
}

/// Polls `ready` until true, or fails when `child` exits or the time is up.
async fn wait_ready(
    what: &str,
    child: &mut Child,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) -> Result<(), LiveError> {
    let started = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || started.elapsed() > START_TIMEOUT {
            let why = match exited {
                Some(status) => format!("{what} exited ({status})"),
                None => format!("{what} did not come up in {START_TIMEOUT:?}"),
            };
            return Err(LiveError::NotReady(format!(
                "{why}; log:\n{}",
                read_log(log)
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl LiveRrq {
    /// Starts `redis-server` (from PATH, or `REDIS_SERVER`) on a free port and the
    /// orchestrator with `toml` as its rrq.toml (written to a temporary directory;
    /// `RRQ_REDIS_DSN` points it at the private Redis, so the file needs no `redis_dsn`).
    /// Relative runner paths resolve from the current directory. Returns once the worker has
    /// started; the producer takes its defaults from `toml`.
    pub async fn start(toml: &str) -> Result<LiveRrq, LiveError> {
        let orchestrator = orchestrator_command().ok_or(LiveError::NoOrchestrator)?;
        let dir = std::env::temp_dir().join(format!("rrqkit-live-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| LiveError::Config(e.to_string()))?;
        let port = free_port().map_err(|e| LiveError::Spawn("a free port".into(), e))?;
        let redis_url = format!("redis://127.0.0.1:{port}/0");
        let redis_bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let redis_log = dir.join("redis.log");
        let mut redis = Command::new(&redis_bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(log_file(&redis_log)?)
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| LiveError::Spawn(redis_bin.clone(), e))?;
        let addr = format!("127.0.0.1:{port}");
        if let Err(e) = wait_ready("redis-server", &mut redis, &redis_log, || {
            TcpStream::connect(&addr).is_ok()
        })
        .await
        {
            let _ = redis.kill();
            let _ = redis.wait();
            return Err(e);
        }
        let config_path = dir.join("rrq.toml");
        std::fs::write(&config_path, toml).map_err(|e| LiveError::Config(e.to_string()))?;
        let worker_log = dir.join("worker.log");
        let spawned = Command::new(&orchestrator[0])
            .args(&orchestrator[1..])
            .arg("--config")
            .arg(&config_path)
            .args(["worker", "run", "--log-format", "json"])
            .env("RRQ_REDIS_DSN", &redis_url)
            .stdin(Stdio::null())
            .stdout(log_file(&worker_log)?)
            .stderr(log_file(&dir.join("worker.err"))?)
            .spawn();
        let worker = match spawned {
            Ok(w) => w,
            Err(e) => {
                let _ = redis.kill();
                let _ = redis.wait();
                return Err(LiveError::Spawn(orchestrator.join(" "), e));
            }
        };
        let mut config = ProducerConfig::parse_toml(toml)?;
        config.redis_dsn = redis_url.clone();
        let producer = Producer::new(config)?;
        let mut live = LiveRrq {
            redis,
            worker,
            redis_url,
            producer,
            dir,
        };
        let log = live.dir.join("worker.log");
        let err_log = live.dir.join("worker.err");
        wait_ready("rrq worker run", &mut live.worker, &err_log, || {
            read_log(&log).contains("worker started")
                || read_log(&err_log).contains("worker started")
        })
        .await?;
        Ok(live)
    }

    /// A producer bound to the private Redis.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The private Redis, e.g. `redis://127.0.0.1:40123/0`.
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// The orchestrator's output so far (stdout, then stderr), for a failing test's message.
    pub fn worker_log(&self) -> String {
        format!(
            "{}{}",
            read_log(&self.dir.join("worker.log")),
            read_log(&self.dir.join("worker.err"))
        )
    }

    /// Stops the orchestrator (SIGTERM, then SIGKILL after 10 s) and Redis.
    pub fn stop(self) {
        drop(self)
    }
}

fn terminate(child: &mut Child, grace: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let started = Instant::now();
    while started.elapsed() < grace {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for LiveRrq {
    fn drop(&mut self) {
        terminate(&mut self.worker, Duration::from_secs(10));
        terminate(&mut self.redis, Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
