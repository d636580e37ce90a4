//! The naive baseline: `bench/naive/forwarder.py` (Python confluent-kafka + requests) run
//! against the same preloaded topic and siem-sim, bounded in events and time.
//!
//! Its dependencies live in a venv under `target/naive-venv`, created on first use with the
//! ordinary `python3 -m venv` and `pip install confluent-kafka requests`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use els_testkit::Proc;
use serde::Deserialize;

use crate::error::{BenchError, Result};

/// How the forwarder batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One event per request, commit after each.
    Single,
    /// One request per poll of up to 500 events, commit after each.
    Batch,
}

impl Mode {
    pub fn arg(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Batch => "batch",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::Single => "naive Python, 1 event/request, commit each",
            Mode::Batch => "naive Python, 1 batch/poll (≤500), commit each",
        }
    }
}

/// What the forwarder reported on its last line.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Report {
    pub events: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub max_rss_kib: u64,
}

/// The venv's python, creating the venv when missing.
pub fn python(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/naive-venv");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import confluent_kafka, requests"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if py.exists() && ready(&py) {
        return Ok(py);
    }
    let run = |cmd: &mut Command, what: &str| -> Result<()> {
        let status = cmd.status().map_err(|e| BenchError::io(what, e))?;
        if status.success() {
            Ok(())
        } else {
            Err(BenchError::step(format!("{what} failed ({status})")))
        }
    };
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv target/naive-venv",
    )?;
    run(
        Command::new(venv.join("bin/pip")).args(["install", "-q", "confluent-kafka", "requests"]),
        "pip install confluent-kafka requests",
    )?;
    Ok(py)
}

/// Run the forwarder once and read its report.
#[allow(clippy::too_many_arguments)]
pub fn run(
    python: &Path,
    script: &Path,
    dir: &Path,
    brokers: &str,
    topic: &str,
    url: &str,
    mode: Mode,
    max_events: u64,
    max_seconds: f64,
) -> Result<Report> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--brokers", brokers, "--topic", topic, "--url", url])
        .args(["--mode", mode.arg()])
        .arg("--group")
        .arg(format!("els-bench-naive-{}", uuid::Uuid::new_v4().simple()))
        .arg("--max-events")
        .arg(max_events.to_string())
        .arg("--max-seconds")
        .arg(max_seconds.to_string());
    let name = format!("naive-{}", mode.arg());
    let log = dir.join(format!("{name}.log"));
    let mut proc = Proc::spawn(&name, cmd, log.clone())?;
    // The script bounds itself (max seconds + 30 s for the group join); allow a margin.
    proc.wait(Duration::from_secs_f64(max_seconds + 60.0))?;
    let text = std::fs::read_to_string(&log)
        .map_err(|e| BenchError::io(format!("reading {}", log.display()), e))?;
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Report>(l).ok())
        .ok_or_else(|| {
            BenchError::step(format!(
                "the naive forwarder printed no report; log tail:\n{}",
                proc.log_tail(20)
            ))
        })
}
