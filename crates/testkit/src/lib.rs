//! The one test kit of ELS (`publish = false`): what the end-to-end tests (`tests/`) and the
//! benchmark (`crates/bench`) both need to run real processes on 127.0.0.1. Each side builds
//! what only it needs on top (the tests' defaults and fault helpers, the benchmark's typed
//! answers and timings).
//!
//! - [`proc`]: child processes killed on drop, their logs, CPU and memory from `/proc`;
//!   free ports and waiting for one to open; where the built binaries are.
//! - [`kafka`]: Apache Kafka in KRaft mode from `deploy/kafka` (one node, or a three-node
//!   cluster for replication tests), started with `java -cp`; topics, watermarks, committed
//!   offsets, partition leaders, killing and restarting nodes.
//! - [`sim`]: `siem-sim` on a free port and a client of its query API (stats, event ids,
//!   stored records, faults, reset).
//! - [`consumer`]: `els-consumer` from a binary path with a settings file and `ELS_*`
//!   variables; its admin URL, `/metrics`, readiness, restart.
//! - [`metrics`]: Prometheus text format to a map, totals over labels, histogram means.
//! - [`error`]: the crate's one error enum.

pub mod consumer;
pub mod error;
pub mod kafka;
pub mod metrics;
pub mod proc;
pub mod sim;

pub use consumer::ConsumerProc;
pub use error::KitError;
pub use kafka::Kafka;
pub use metrics::{histogram_mean, metric_total, parse_metrics};
pub use proc::{built_bin, built_bin_or_path, free_port, wait_port, workspace_root, Proc, Usage};
pub use sim::SimProc;
