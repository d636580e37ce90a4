//! The machine a run happened on, and how busy it was: CPU model, cores, memory, commit,
//! load averages, and the machine-wide busy CPU time (to tell how much of it went to
//! processes that are not part of the benchmark, e.g. other builds on a shared machine).

use std::process::Command;

/// Facts printed above the results.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cores: usize,
    pub model: String,
    pub mem_gib: f64,
    pub commit: String,
    /// Tracked files with uncommitted changes when the run started.
    pub dirty: Vec<String>,
    pub kernel: String,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_else(|| "unknown".into()),
            mem_gib: els_testkit::proc::status_kib(&meminfo, "MemTotal").unwrap_or(0) as f64
                / (1024.0 * 1024.0),
            commit: output("git", &["rev-parse", "--short", "HEAD"])
                .unwrap_or_else(|| "unknown".into()),
            dirty: parse_porcelain(
                &output("git", &["status", "--porcelain", "--untracked-files=no"])
                    .unwrap_or_default(),
            ),
            kernel: output("uname", &["-r"]).unwrap_or_default(),
        }
    }
}

/// Paths of `git status --porcelain` lines (`XY path`; the status may start with a space).
pub fn parse_porcelain(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.get(3..))
        .map(str::to_string)
        .collect()
}

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages.
pub fn load_average() -> (f64, f64, f64) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    (
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    )
}

/// Busy CPU-seconds of the whole machine since boot (all cores: user, nice, system, irq,
/// softirq, steal), from the first line of `/proc/stat`.
pub fn busy_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_busy_ticks(&text) as f64 / els_testkit::proc::clock_ticks() as f64
}

/// Busy ticks of the aggregate `cpu` line (idle and iowait excluded).
pub fn parse_busy_ticks(stat: &str) -> u64 {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| v.get(*i))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_paths() {
        assert_eq!(
            parse_porcelain(" M Cargo.lock\nM  crates/x.rs\n"),
            ["Cargo.lock", "crates/x.rs"]
        );
        assert!(parse_porcelain("").is_empty());
    }

    #[test]
    fn busy_ticks_skip_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(parse_busy_ticks(stat), 100 + 5 + 50 + 3 + 2 + 1);
        assert_eq!(parse_busy_ticks(""), 0);
    }
}
