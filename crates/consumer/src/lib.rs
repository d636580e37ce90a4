//! `els-consumer`: Kafka -> filter -> limit -> deliver -> dead letters.
//!
//! - [`pipeline`]: the consume loop; per-partition contiguous [`watermark`]s decide which
//!   offsets are stored, so no event is skipped (at least once).
//! - [`dispatch`]: per-org bounded queues and workers (a slow SIEM only fills its own queue);
//!   [`park`] spills a full org's events to disk and feeds them back.
//! - [`worker`]: batching, the org's governor limit, retries, HEC batch splitting, dead letters.
//! - [`retry`]: the retry policy as data (`classify`) and the retry loop (`backoff`).
//! - [`sink`]: request bodies (HEC envelopes or templated events) and the HTTP client.
//! - [`settings`]: every org's stream settings in memory.
//! - [`dlq`]: the sled dead-letter store with versioned records.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz` and the dead-letter API.
//! - [`metrics`], [`config`], [`error`].

pub mod admin;
pub mod config;
pub mod dispatch;
pub mod dlq;
pub mod error;
pub mod metrics;
pub mod park;
pub mod pipeline;
pub mod retry;
pub mod settings;
pub mod sink;
pub mod watermark;
pub mod worker;

pub use config::Config;
pub use error::ConsumerError;
