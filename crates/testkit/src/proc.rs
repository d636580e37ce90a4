//! Child processes (broker nodes, siem-sim, els-consumer, els-producer, the naive forwarder)
//! and what `/proc` says about them: CPU time (utime + stime) and resident memory.
//!
//! Every child logs to a file and is killed (SIGKILL) when its handle drops, so an aborted
//! test or run leaves nothing behind; when the drop happens in a panicking test, the log's
//! last lines are printed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{KitError, Result};

/// A port that was free a moment ago, picked below the kernel's ephemeral range so that no
/// outgoing connection (of this or any test) can take it between the pick and the server's
/// bind (an ephemeral pick once lost that race on CI: the broker exited "Address already in
/// use" while the test waited). Ports are handed out once per process, in turn.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (lo, hi) = unprivileged_non_ephemeral();
    let span = u32::from(hi - lo);
    let seed = std::process::id() % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = lo + ((seed + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// `[lo, hi)`: from 10000 up to the start of `/proc/sys/net/ipv4/ip_local_port_range`.
fn unprivileged_non_ephemeral() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_start > 12_000 {
        (10_000, ephemeral_start)
    } else {
        (
            ephemeral_start.saturating_sub(2_000).max(1024),
            ephemeral_start,
        )
    }
}

/// Wait until a TCP connect to `addr` succeeds.
pub fn wait_port(addr: &str, timeout: Duration) -> Result<()> {
    wait_port_while(addr, timeout, || Ok(()))
}

/// [`wait_port`], failing at once when `alive` does (e.g. the server exited).
fn wait_port_while(addr: &str, timeout: Duration, alive: impl Fn() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        alive()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(KitError::timeout(format!("{addr} to accept"), timeout))
}

/// The workspace root (where `Cargo.toml` and `deploy/` are), found from this crate's
/// build-time location, overridable with `ELS_ROOT`.
pub fn workspace_root() -> PathBuf {
    if let Ok(root) = std::env::var("ELS_ROOT") {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A binary built next to the running executable (`target/<profile>/<name>`, also from a
/// test binary in `target/<profile>/deps/`), or `None`.
pub fn built_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
}

/// [`built_bin`], else `name` itself for a `PATH` lookup.
pub fn built_bin_or_path(name: &str) -> PathBuf {
    built_bin(name).unwrap_or_else(|| PathBuf::from(name))
}

/// A child process, SIGKILLed on drop.
pub struct Proc {
    pub name: String,
    /// Behind a lock so that a shared handle can still ask whether the process is alive
    /// (`try_wait` needs `&mut Child`), e.g. while waiting for it to become ready.
    child: Mutex<Option<Child>>,
    pub log: PathBuf,
}

impl Proc {
    /// Start `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| KitError::io(format!("opening {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| KitError::io("cloning a log handle", e))?;
        cmd.stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| KitError::io(format!("starting {name} ({cmd:?})"), e))?;
        Ok(Self {
            name: name.into(),
            child: Mutex::new(Some(child)),
            log,
        })
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The child, for the `&mut self` steps that end it.
    fn take_child(&mut self) -> Option<Child> {
        self.child
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub fn pid(&self) -> u32 {
        self.child().as_ref().map(Child::id).unwrap_or(0)
    }

    /// CPU and memory as of now (zero once the process is gone).
    pub fn usage(&self) -> Usage {
        Usage::of(self.pid()).unwrap_or_default()
    }

    /// Still running (not exited)? ([`Proc::check_alive`] asks the same of a shared handle.)
    pub fn is_running(&mut self) -> bool {
        self.running()
    }

    fn running(&self) -> bool {
        self.child()
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Fail with the log's tail when the process has exited (from a shared handle too, e.g.
    /// while waiting for it to become ready).
    pub fn check_alive(&self) -> Result<()> {
        if self.running() {
            return Ok(());
        }
        Err(KitError::step(format!(
            "{} exited early; last log lines:\n{}",
            self.name,
            self.log_tail(20)
        )))
    }

    /// Wait until `addr` accepts, failing at once (with the log's tail) if the process exits.
    pub fn wait_accepting(&self, addr: &str, timeout: Duration) -> Result<()> {
        wait_port_while(addr, timeout, || self.check_alive())
    }

    /// `kill -9`: no chance to flush, commit or say goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.take_child() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait up to `grace` for the exit (then SIGKILL); whether it exited 0.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.take_child() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Wait for the process to exit by itself, at most `timeout` (then SIGKILL).
    pub fn wait(&mut self, timeout: Duration) -> Result<()> {
        let Some(mut child) = self.take_child() else {
            return Ok(());
        };
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(KitError::timeout(
            format!("{} to finish", self.name),
            timeout,
        ))
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of {} ({}) ----\n{}",
                self.name,
                self.log.display(),
                self.log_tail(40)
            );
        }
    }
}

/// CPU time and memory of one process, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// utime + stime of all threads, in seconds.
    pub cpu_seconds: f64,
    /// Peak resident set size (`VmHWM`), bytes.
    pub peak_rss: u64,
    /// Current resident set size (`VmRSS`), bytes.
    pub rss: u64,
}

impl Usage {
    /// Usage of `pid`; `None` when it is gone.
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let ticks = parse_stat_ticks(&stat)?;
        Some(Usage {
            cpu_seconds: ticks as f64 / clock_ticks() as f64,
            peak_rss: status_kib(&status, "VmHWM").unwrap_or(0) * 1024,
            rss: status_kib(&status, "VmRSS").unwrap_or(0) * 1024,
        })
    }

    /// This process (clients that run inside a test or the benchmark).
    pub fn own() -> Self {
        Self::of(std::process::id()).unwrap_or_default()
    }
}

/// `utime + stime` in clock ticks from a `/proc/<pid>/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at indexes 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Name:   1234 kB` value of `/proc/<pid>/status` (or `/proc/meminfo`), in KiB.
pub fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `getconf CLK_TCK` (100 on every Linux we know; asked once).
pub fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_survive_odd_command_names() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 9 0 12345 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_values_in_kib() {
        let status =
            "Name:\tels-consumer\nVmPeak:\t  99999 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(51_200));
        assert_eq!(status_kib(status, "VmRSS"), Some(40_960));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn own_usage_is_readable() {
        let me = Usage::own();
        assert!(me.peak_rss > 0 && me.peak_rss >= me.rss);
    }

    #[test]
    fn workspace_root_holds_the_kafka_project() {
        assert!(workspace_root().join("deploy/kafka/pom.xml").exists());
    }
}
