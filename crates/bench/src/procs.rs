//! Child processes and their CPU and memory: the shared test kit's, plus where the benchmark
//! finds the binaries it starts.

use std::path::PathBuf;

pub use els_testkit::proc::{clock_ticks, status_kib};
pub use els_testkit::{wait_port, Proc, Usage};

use crate::error::Result;

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(els_testkit::free_port())
}

/// A binary built next to this one (`target/release/<name>`), or from `PATH`.
pub fn sibling_bin(name: &str) -> PathBuf {
    els_testkit::built_bin(name).unwrap_or_else(|| PathBuf::from(name))
}
