//! Command line, environment switches and process-level guards of a runner.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::codec::Encoding;

/// Where a runner listens or talks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `--tcp-socket HOST:PORT`: bind and accept many connections.
    Tcp(String),
    /// `--unix-socket PATH`: bind and accept many connections.
    Unix(PathBuf),
    /// `--stdio`: one connection on stdin/stdout.
    Stdio,
}

/// A parsed runner command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchArgs {
    pub transport: Transport,
    pub encoding: Encoding,
}

/// Usage text for the runner command line.
pub const USAGE: &str =
    "usage: <runner> (--tcp-socket HOST:PORT | --unix-socket PATH | --stdio) [--encoding json|msgpack]\n       <runner> --list-handlers";

/// Prints the registered handler names as one JSON line and exits 0, without listening (see
/// [`crate::Runner::handlers_line`]); no transport flag is needed.
pub const LIST_HANDLERS_FLAG: &str = "--list-handlers";

impl LaunchArgs {
    /// Parses the arguments after the program name. Accepts `--flag value` and `--flag=value`.
    pub fn parse<I, S>(args: I) -> Result<LaunchArgs, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut transport: Option<Transport> = None;
        let mut encoding = Encoding::Json;
        let mut it = args.into_iter().map(Into::into);
        let set = |slot: &mut Option<Transport>, t: Transport| -> Result<(), String> {
            if slot.is_some() {
                return Err("only one of --tcp-socket, --unix-socket, --stdio may be given".into());
            }
            *slot = Some(t);
            Ok(())
        };
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> Result<String, String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it.next().ok_or_else(|| format!("{name} needs a value")),
                }
            };
            match flag.as_str() {
                "--tcp-socket" => set(&mut transport, Transport::Tcp(value("--tcp-socket")?))?,
                "--unix-socket" => set(
                    &mut transport,
                    Transport::Unix(PathBuf::from(value("--unix-socket")?)),
                )?,
                "--stdio" => set(&mut transport, Transport::Stdio)?,
                "--encoding" => {
                    let v = value("--encoding")?;
                    encoding = Encoding::parse(&v)
                        .ok_or_else(|| format!("unknown encoding '{v}' (json or msgpack)"))?;
                }
                other => return Err(format!("unknown argument '{other}'")),
            }
        }
        let transport = transport.ok_or_else(|| {
            "one of --tcp-socket, --unix-socket or --stdio is required".to_string()
        })?;
        Ok(LaunchArgs {
            transport,
            encoding,
        })
    }
}

/// True when `RRQ_RUNNER_ALLOW_REMOTE=1`.
pub fn allow_remote() -> bool {
    std::env::var("RRQ_RUNNER_ALLOW_REMOTE").as_deref() == Ok("1")
}

/// True when `RRQ_RUNNER_HELLO=1`.
pub fn hello_requested() -> bool {
    std::env::var("RRQ_RUNNER_HELLO").as_deref() == Ok("1")
}

/// Resolves `HOST:PORT` (IPv6 as `[::1]:PORT`, `localhost` = 127.0.0.1), refusing non-loopback
/// addresses unless `allow_remote`.
pub fn resolve_tcp_address(spec: &str, allow_remote: bool) -> Result<SocketAddr, String> {
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("bad address '{spec}': missing ']'"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("bad address '{spec}': missing port"))?;
        (h, port)
    } else {
        spec.rsplit_once(':')
            .ok_or_else(|| format!("bad address '{spec}': expected HOST:PORT"))?
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("bad address '{spec}': invalid port"))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !ip.is_loopback() && !allow_remote {
            return Err(format!(
                "refusing to bind non-loopback address {ip} (set RRQ_RUNNER_ALLOW_REMOTE=1 to allow)"
            ));
        }
        return Ok(SocketAddr::new(ip, port));
    }
    if !allow_remote {
        return Err(format!(
            "refusing to bind host '{host}': only loopback IP literals or localhost are allowed (set RRQ_RUNNER_ALLOW_REMOTE=1 to allow)"
        ));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{host}' resolves to no address"))
}

/// Protects stdout for the stdio transport: duplicates fd 1 to a private close-on-exec fd
/// (returned, used for frames) and points fd 1 at stderr, so `println!` and child processes
/// write to stderr.
pub fn guard_stdout() -> io::Result<File> {
    use std::io::Write;
    let _ = io::stdout().flush();
    // SAFETY: plain fd syscalls; the returned fd is owned by the File we create.
    unsafe {
        let fd = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::dup2(2, 1) < 0 {
            let err = io::Error::last_os_error();
            libc::close(fd);
            return Err(err);
        }
        Ok(File::from_raw_fd(fd))
    }
}

/// A Unix socket path the process removes when the watchdog ends it.
static SOCKET_PATH: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Records (or clears) the Unix socket to remove if the parent-death watchdog exits.
pub(crate) fn set_socket_path(path: Option<PathBuf>) {
    *SOCKET_PATH.lock().unwrap_or_else(|p| p.into_inner()) = path;
}

fn remove_socket_path() {
    if let Some(p) = SOCKET_PATH.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = std::fs::remove_file(p);
    }
}

/// Installs the parent-death guard unless `RRQ_RUNNER_PARENT_GUARD=0`: on Linux
/// `PR_SET_PDEATHSIG(SIGKILL)`, and everywhere a watchdog thread that exits the process when
/// `getppid()` changes (checked every 250 ms). Returns whether it was installed.
///
/// A parent pid of 1 at start is accepted (the orchestrator may be pid 1 in a container).
pub fn install_parent_guard() -> bool {
    if std::env::var("RRQ_RUNNER_PARENT_GUARD").as_deref() == Ok("0") {
        return false;
    }
    // SAFETY: getppid and prctl have no memory-safety preconditions.
    let original = unsafe { libc::getppid() };
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    if unsafe { libc::getppid() } != original {
        eprintln!("[rrqkit-rust] parent process died during startup; exiting");
        std::process::exit(1);
    }
    let spawned = std::thread::Builder::new()
        .name("rrq-runner-parent-watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            let now = unsafe { libc::getppid() };
            if now != original {
                eprintln!(
                    "[rrqkit-rust] parent process {original} is gone (parent is now {now}); exiting"
                );
                remove_socket_path();
                std::process::exit(1);
            }
        });
    if let Err(e) = spawned {
        eprintln!("[rrqkit-rust] cannot start the parent watchdog: {e}");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_args() {
        let a = LaunchArgs::parse(["--tcp-socket", "127.0.0.1:9000"]).unwrap();
        assert_eq!(a.transport, Transport::Tcp("127.0.0.1:9000".into()));
        assert_eq!(a.encoding, Encoding::Json);
        let a = LaunchArgs::parse(["--stdio", "--encoding", "msgpack"]).unwrap();
        assert_eq!(a.transport, Transport::Stdio);
        assert_eq!(a.encoding, Encoding::Msgpack);
        let a = LaunchArgs::parse(["--unix-socket=/tmp/x.sock"]).unwrap();
        assert_eq!(a.transport, Transport::Unix("/tmp/x.sock".into()));
        assert!(LaunchArgs::parse(["--encoding", "xml", "--stdio"]).is_err());
        assert!(LaunchArgs::parse(Vec::<String>::new()).is_err());
        assert!(LaunchArgs::parse(["--stdio", "--tcp-socket", "x:1"]).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            resolve_tcp_address("localhost:5000", false).unwrap(),
            "127.0.0.1:5000".parse().unwrap()
        );
        assert_eq!(
            resolve_tcp_address("[::1]:5000", false).unwrap(),
            "[::1]:5000".parse().unwrap()
        );
        assert!(resolve_tcp_address("127.0.0.2:1", false).is_ok());
        assert!(resolve_tcp_address("0.0.0.0:5000", false).is_err());
        assert!(resolve_tcp_address("10.1.2.3:5000", false).is_err());
        assert!(resolve_tcp_address("10.1.2.3:5000", true).is_ok());
        assert!(resolve_tcp_address("example.com:5000", false).is_err());
        assert!(resolve_tcp_address("127.0.0.1", false).is_err());
    }
}
