//! `els-consumer`: Kafka -> filter -> limit -> deliver to each org's SIEM -> dead letters.
//!
//! The crate has six rooms, each opening with a map of its files:
//!
//! - [`delivery`]: the engine: the consume loop and its watermarks, rebalances and lag,
//!   per-org dispatch, parking, workers (batching, HEC splitting, indexer acks), limits,
//!   retries, request bodies, the SIEM client and its SSRF guard.
//! - [`settings`]: every org's stream settings: the in-memory store, the compacted settings
//!   topic shared by all instances, the crypto that seals auth header values.
//! - [`admin`]: the admin server: route table and token layer, probes and metrics, the
//!   dead-letter and settings APIs, test events, the console page.
//! - [`access`]: who may do what: scoped admin tokens (roles, orgs, expiry; only hashes
//!   stored, in a compacted topic every instance follows) and the audit trail.
//! - [`state`]: state that stands for finished offsets: the sled [`state::StateStore`] (dead
//!   letters, parked events) and the changelog topic that lets it outlive the instance.
//! - [`streams`]: stream health: each org's stream state (active, failing, paused, probing,
//!   paused by user), what pauses and resumes it, and its lifecycle notices topic.
//!
//! At the top: [`services`] (the one app state, [`Services`], built in `main` and passed
//! down), [`config`], [`error`], [`metrics`], [`producer`] (the shared producer of
//! ELS's own topics).

pub mod access;
pub mod admin;
pub mod config;
pub mod delivery;
pub mod error;
pub mod metrics;
pub mod producer;
pub mod services;
pub mod settings;
pub mod state;
pub mod streams;

pub use config::Config;
pub use error::ConsumerError;
pub use services::Services;
