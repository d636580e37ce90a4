//! `els-bench`: how fast ELS is, as ratios to what the machine can do at all.
//!
//! One run starts a broker (Apache Kafka, one KRaft node) and `siem-sim` on 127.0.0.1 and
//! measures, per case of the matrix (orgs × event size × endpoint kind):
//! - **L1**, the raw consume rate of the preloaded topic (no processing) and **L2**, the raw
//!   POST rate of pre-built bodies to siem-sim: the two physical limits of the path;
//! - the pipeline (`els-consumer`, default settings) draining the same preloaded topic:
//!   events/s, MiB/s, consumer CPU-seconds per million events, peak RSS;
//!
//! then open-loop latency at 25/50/75 % of the main case's drain rate, and a naive Python
//! forwarder on the same topic. The results are one markdown report (printed, and kept in
//! `BENCHMARKS.md` between markers).
//!
//! Modules, in the order a run uses them:
//! - [`workload`]: the case matrix and the events (demo traffic through the ingest parser);
//! - [`kafka`]: broker, topics, preloading, L1, the fixed-rate producer;
//! - [`sim`]: siem-sim with typed answers and waits, request bodies as the consumer builds
//!   them, L2;
//! - [`consumer`]: the pipeline process with the benchmark's settings and environment;
//! - [`naive`]: the Python baseline in its own venv;
//! - [`scenario`]: the measurements and their order;
//! - [`soak`]: `--soak-minutes N`, the main case under open-loop traffic and faults for N
//!   minutes, sampled and judged (RSS, recovery after each fault, nothing lost);
//! - [`stats`], [`machine`]: percentiles and costs; the machine and how busy it was;
//! - [`report`]: markdown tables and targets met or missed;
//! - [`error`]: the crate's error enum.
//!
//! Processes (CPU and memory from `/proc`), the broker, siem-sim, the consumer process and
//! `/metrics` parsing come from the shared test kit, `els-testkit`; the modules here build
//! the benchmark's own steps on top.
//!
//! This is a benchmark command, not a test: nothing here runs in `cargo test` beyond the
//! helpers' unit tests.

pub mod consumer;
pub mod error;
pub mod kafka;
pub mod machine;
pub mod naive;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod soak;
pub mod stats;
pub mod workload;

pub use error::BenchError;
