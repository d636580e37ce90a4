//! `els-producer`: the front door of ELS.
//!
//! - [`config`]: defaults, TOML file, `ELS_*` environment.
//! - [`kafka`]: an idempotent Kafka producer (`acks=all`) keyed by `org_id`; a send resolves
//!   only when the broker acknowledged the record.
//! - [`api`]: `POST /v1/events` (one event, a JSON array or NDJSON). It answers 202 only after
//!   Kafka acknowledged every event of the request, 503 otherwise; bad input gets
//!   400/408/413/415 with a JSON body naming the field, and nothing of a rejected request is
//!   enqueued. An event too large for a Kafka record is refused with 413 before Kafka is
//!   asked, so one request can never fail the producer for others.
//! - serving: `els_http::serve` (HTTP/1.1 with a header read timeout, so slow or idle
//!   clients cannot hold connections), shared with the consumer's admin API.
//! - [`generate`]: realistic demo traffic (all five event types, parent/root executions,
//!   failures with error details) posted to the API.
//! - [`metrics`]: Prometheus counters served on `/metrics`.
//! - [`openapi`]: the OpenAPI 3.1 document at `/openapi.json`, built from [`api::routes`].
//! - [`error`]: the crate's error enum.

pub mod api;
pub mod config;
pub mod error;
pub mod generate;
pub mod kafka;
pub mod metrics;
pub mod openapi;

pub use config::Config;
pub use error::ProducerError;
