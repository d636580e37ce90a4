//! `els-consumer`: Kafka -> filter -> limit -> deliver -> dead letters.
//!
//! - [`pipeline`]: the consume loop; per-partition contiguous [`watermark`]s decide which
//!   offsets are stored, so no event is skipped (at least once); [`rebalance`] records what
//!   the group assigns and revokes, for the loop to apply.
//! - [`dispatch`]: per-org bounded queues and workers (a slow SIEM only fills its own queue);
//!   [`park`] spills a full org's events to disk and feeds them back.
//! - [`worker`]: batching, the org's governor limit, retries, HEC batch splitting, dead letters.
//! - [`retry`]: the retry policy as data (`classify`) and the retry loop (`backoff`).
//! - [`sink`]: request bodies (HEC envelopes or templated events) and the HTTP client.
//! - [`settings`]: every org's stream settings in memory; [`settings_topic`] keeps them in a
//!   compacted Kafka topic shared by all instances, with auth header values sealed by
//!   [`crypto`] (XChaCha20-Poly1305, org id as associated data, key ids for rotation).
//! - [`ssrf`]: the guard on SIEM destinations (resolver filter, IP literal check, allow-list).
//! - [`settings_api`]: the settings routes of the admin API; [`testevent`] sends a sample
//!   event through an org's real delivery path.
//! - [`dlq`]: the sled dead-letter store with versioned records.
//! - [`changelog`]: parked events and dead letters also go to a compacted state topic before
//!   their offsets are finished, so they outlive the instance (and its disk): assigned
//!   partitions restore their parked events, every instance sees every dead letter.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz`, the dead-letter and settings APIs;
//!   [`console`] serves the settings console page at `/console` (embedded HTML/CSS/JS).
//! - [`metrics`] (with [`lag`]), [`config`], [`error`].

pub mod admin;
pub mod changelog;
pub mod config;
pub mod console;
pub mod crypto;
pub mod dispatch;
pub mod dlq;
pub mod error;
pub mod lag;
pub mod metrics;
pub mod park;
pub mod pipeline;
pub mod rebalance;
pub mod retry;
pub mod settings;
pub mod settings_api;
pub mod settings_topic;
pub mod sink;
pub mod ssrf;
pub mod testevent;
pub mod watermark;
pub mod worker;

pub use config::Config;
pub use error::ConsumerError;
