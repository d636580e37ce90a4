//! Consumer configuration: defaults, then a TOML file, then `ELS_*` environment variables.
//! Validated at start; errors name the field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConsumerError;
use crate::retry::RetryPolicy;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka bootstrap servers, comma-separated.
    pub brokers: String,
    /// Topic of execution events, keyed by org id.
    pub topic: String,
    /// Consumer group; more instances in the same group share the partitions.
    pub group_id: String,
    /// Static group membership (`group.instance.id`): a restarted instance with the same id
    /// takes its partitions back at once instead of waiting for a rebalance. Empty = dynamic.
    pub instance_id: String,
    /// JSON file of org settings (`{"orgs": {id: settings}, "default": settings}`).
    pub settings_file: String,
    /// Directory of the sled dead-letter and park store.
    pub data_dir: String,
    /// Admin API, `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: String,
    /// Bearer token of the admin API; empty disables the admin endpoints (metrics stay up).
    pub admin_token: String,
    /// HEC batches close at this many bytes...
    pub batch_max_bytes: usize,
    /// ...or this many events...
    pub batch_max_events: usize,
    /// ...or after waiting this long for more events.
    pub batch_linger_ms: u64,
    /// Per-request timeout towards a SIEM.
    pub request_timeout_ms: u64,
    /// Gzip HEC request bodies.
    pub gzip: bool,
    pub retry_initial_ms: u64,
    pub retry_max_interval_ms: u64,
    /// After this long failing, events go to the dead-letter store.
    pub retry_max_elapsed_ms: u64,
    /// Events queued in memory per org; beyond it the org's events are parked on disk.
    pub org_queue_capacity: usize,
    /// Consumed events not yet finished, across all orgs; beyond it reading pauses.
    pub max_in_flight: usize,
    /// On SIGTERM: how long to keep delivering what is in flight before exiting.
    pub shutdown_grace_ms: u64,
    /// Workers of orgs without traffic for this long are stopped (bounded memory).
    pub org_idle_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "els.events".into(),
            group_id: "els-consumer".into(),
            instance_id: String::new(),
            settings_file: String::new(),
            data_dir: "./els-data".into(),
            admin_listen: "127.0.0.1:9090".into(),
            admin_token: String::new(),
            batch_max_bytes: 1024 * 1024,
            batch_max_events: 500,
            batch_linger_ms: 200,
            request_timeout_ms: 10_000,
            gzip: false,
            retry_initial_ms: 250,
            retry_max_interval_ms: 30_000,
            retry_max_elapsed_ms: 300_000,
            org_queue_capacity: 1000,
            max_in_flight: 50_000,
            shutdown_grace_ms: 10_000,
            org_idle_ms: 300_000,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group_id", &self.group_id)
            .field("instance_id", &self.instance_id)
            .field("settings_file", &self.settings_file)
            .field("data_dir", &self.data_dir)
            .field("admin_listen", &self.admin_listen)
            .field("admin_token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Load from an optional TOML file and the process environment, then validate.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConsumerError> {
        let text = path.map(std::fs::read_to_string).transpose()?;
        let config: Self = els_model::config::layered(text.as_deref(), "ELS_", std::env::vars())
            .map_err(|e| ConsumerError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConsumerError> {
        let bad = |field: &str, why: &str| Err(ConsumerError::Config(format!("`{field}` {why}")));
        for (field, value) in [
            ("brokers", &self.brokers),
            ("topic", &self.topic),
            ("group_id", &self.group_id),
            ("data_dir", &self.data_dir),
        ] {
            if value.trim().is_empty() {
                return bad(field, "must not be empty");
            }
        }
        if self.admin_listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("admin_listen", "must be an address such as 127.0.0.1:9090");
        }
        if !self.admin_token.is_empty() && self.admin_token.len() < 16 {
            return bad("admin_token", "must be at least 16 characters");
        }
        for (field, value) in [
            ("batch_max_bytes", self.batch_max_bytes),
            ("batch_max_events", self.batch_max_events),
            ("org_queue_capacity", self.org_queue_capacity),
            ("max_in_flight", self.max_in_flight),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1");
            }
        }
        if self.request_timeout_ms == 0 || self.retry_initial_ms == 0 {
            return bad("request_timeout_ms/retry_initial_ms", "must be positive");
        }
        Ok(())
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(self.retry_initial_ms),
            max_interval: Duration::from_millis(self.retry_max_interval_ms),
            multiplier: 2.0,
            jitter: 0.5,
            max_elapsed: Duration::from_millis(self.retry_max_elapsed_ms),
        }
    }
}
