//! The one test kit of ELS (`publish = false`): what the end-to-end tests (`tests/`) and the
//! benchmark (`crates/bench`) both need to run real processes on 127.0.0.1.
//!
//! - [`proc`]: child processes killed on drop, their logs, CPU and memory from `/proc`;
//!   free ports and waiting for one to open.
//! - [`kafka`]: Apache Kafka in KRaft mode from `deploy/kafka` (one node, or a three-node
//!   cluster for replication tests), started with `java -cp`; topics, watermarks, committed
//!   offsets, partition leaders, killing and restarting nodes.
//! - [`metrics`]: Prometheus text format to a map.
//! - [`error`]: the crate's one error enum.

pub mod error;
pub mod kafka;
pub mod metrics;
pub mod proc;

pub use error::KitError;
pub use kafka::Kafka;
pub use metrics::parse_metrics;
pub use proc::{built_bin, free_port, wait_port, Proc, Usage};
