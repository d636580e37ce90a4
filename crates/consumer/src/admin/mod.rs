//! The admin server: `/metrics` and the probes for everyone; the dead-letter and settings
//! APIs (`elsctl` is their client) and the console's data behind a bearer token. Every request
//! and answer body is a type of the `els-api` crate (its docs map routes to types), shared
//! with `elsctl`.
//!
//! - `router.rs`: the route table (method, path, who may call it, audited or not, handler)
//!   the router is built from; every `/v1` and `/console/api` route is behind the auth layer.
//! - `auth.rs`: that layer: the bearer token (bootstrap or issued), the role, the org in the
//!   path or query, the audit record.
//! - `tokens.rs`: `/v1/tokens` (super admins issue, list, revoke tokens) and `/v1/whoami`.
//! - `audit.rs`: `GET /v1/audit`: the audit trail, limited to the caller's orgs.
//! - `error.rs`: [`ApiError`], every error answer: `{"error","field","message"}`
//!   ([`els_api::ErrorBody`]).
//! - `openapi.rs`: `GET /openapi.json`, the OpenAPI 3.1 document built from the route table and
//!   the `els-api` types.
//! - `health.rs`: `/metrics`, liveness `/healthz` (store failing too long), readiness
//!   `/readyz` (partitions assigned, store writable).
//! - `dead_letters.rs`: `/v1/dead-letters`: list, show, purge, replay to the events topic.
//! - `settings.rs`: `/v1/orgs...`: list, show (redacted), store, delete org settings.
//! - `test_event.rs`: `POST /v1/orgs/{org}/test`: a sample event through the org's real
//!   delivery path, the SIEM's answer reported back.
//! - `console.rs`: the settings console page at `/console` (assets in `console/`) and its
//!   per-org dead-letter summary.
//!
//! [`Admin`] below is the router's state: the application's [`Services`] plus what only the
//! admin server needs (the bootstrap token, the issued tokens, the audit log, the replay
//! producer).

#[cfg(test)]
mod access_matrix;
pub mod audit;
pub mod auth;
pub mod console;
pub mod dead_letters;
pub mod error;
pub mod health;
pub mod openapi;
pub mod router;
pub mod settings;
pub mod status;
pub mod test_event;
#[cfg(test)]
mod testing;
pub mod tokens;

pub use error::ApiError;
pub use router::router;

use std::sync::Arc;
use std::time::Duration;

use crate::producer::{self, WriteTimeout};
use rdkafka::producer::FutureProducer;

use crate::access::{AuditLog, TokenRegistry};
use crate::delivery::SiemClient;
use crate::metrics::Metrics;
use crate::services::Services;
use crate::settings::SettingsStore;
use crate::state::{DeadLetters, StoreHealth};

/// The admin server's state.
pub struct Admin {
    services: Arc<Services>,
    /// The bootstrap super admin's bearer token (`ELS_ADMIN_TOKEN`); empty disables the `/v1`
    /// and `/console/api` routes.
    token: String,
    /// Issued tokens (from the tokens topic).
    tokens: TokenRegistry,
    /// Where audited routes record what they did.
    audit: AuditLog,
    /// Publishes replayed dead letters to the events topic.
    replay: FutureProducer,
    /// The events topic.
    topic: String,
    /// Most streams an org may have.
    max_streams: usize,
}

/// How long the dead-letter routes wait for this instance's view of every instance's dead
/// letters to be complete (read from the state topic at start).
const VIEW_WAIT: Duration = Duration::from_secs(20);

impl Admin {
    pub fn new(
        services: Arc<Services>,
        token: String,
        brokers: &str,
        topic: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let replay = producer::shared(brokers, WriteTimeout::Request)?;
        Ok(Self {
            services,
            token,
            tokens: TokenRegistry::default(),
            audit: AuditLog::default(),
            replay,
            topic: topic.to_string(),
            max_streams: 5,
        })
    }

    /// Allow at most `n` streams per org (`max_streams_per_org`).
    pub fn with_max_streams(mut self, n: usize) -> Self {
        self.max_streams = n.max(1);
        self
    }

    pub(crate) fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// Use `tokens` and `audit` (connected to their topics in `main`).
    pub fn with_access(mut self, tokens: TokenRegistry, audit: AuditLog) -> Self {
        self.tokens = tokens;
        self.audit = audit;
        self
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    pub(crate) fn tokens(&self) -> &TokenRegistry {
        &self.tokens
    }

    pub(crate) fn audit(&self) -> &AuditLog {
        &self.audit
    }

    pub(crate) fn settings(&self) -> &SettingsStore {
        &self.services.settings
    }

    pub(crate) fn streams(&self) -> &crate::streams::StreamStates {
        &self.services.streams
    }

    pub(crate) fn siem(&self) -> &SiemClient {
        &self.services.siem
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.services.metrics
    }

    pub(crate) fn store_health(&self) -> &StoreHealth {
        &self.services.store_health
    }

    pub(crate) fn ready(&self) -> bool {
        self.services.ready()
    }

    /// Partitions this instance owns.
    pub(crate) fn partitions(&self) -> Vec<i32> {
        self.services.ownership.assigned()
    }

    /// The dead letters, for counting (possibly a partial view while it is being read).
    pub(crate) fn dead_letter_count(&self) -> usize {
        self.services.dead_letters().count()
    }

    /// The dead-letter view once it holds every instance's dead letters, so no route answers
    /// from a partial list; 503 while it is still being read.
    pub(crate) async fn dead_letters(&self) -> Result<&DeadLetters, ApiError> {
        let view = self.services.dead_letters();
        if view.wait_synced(VIEW_WAIT).await {
            return Ok(view);
        }
        Err(ApiError::unavailable(format!(
            "dead letters of every instance are still being read from the state topic (waited \
             {} s); retry shortly",
            VIEW_WAIT.as_secs()
        )))
    }

    /// Set the dead-letter gauge from the view's count.
    pub(crate) fn count_dead_letters(&self) {
        let count = self.dead_letter_count();
        self.metrics().dead_letters.set(count as i64);
    }

    pub(crate) fn replay_producer(&self) -> (&FutureProducer, &str) {
        (&self.replay, &self.topic)
    }
}
