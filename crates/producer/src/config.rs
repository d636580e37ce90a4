//! Producer configuration: defaults, then a TOML file, then `ELS_*` environment variables.

use serde::{Deserialize, Serialize};

use crate::error::ProducerError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka bootstrap servers, comma-separated.
    pub brokers: String,
    /// Topic that carries execution events, keyed by org id.
    pub topic: String,
    /// Where the ingest API and `/metrics` listen.
    pub listen: String,
    /// Largest accepted request body (bytes); larger gets 413.
    pub max_body_bytes: usize,
    /// Most events in one request; more gets 400.
    pub max_events_per_request: usize,
    /// How long a request waits for Kafka's acknowledgement before answering 503.
    pub ack_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "els.events".into(),
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            max_events_per_request: 5000,
            ack_timeout_ms: 15_000,
        }
    }
}

impl Config {
    /// Load from an optional TOML file and the process environment.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ProducerError> {
        let text = path.map(std::fs::read_to_string).transpose()?;
        let (config, unknown): (Self, _) =
            els_model::config::layered(text.as_deref(), "ELS_", std::env::vars())
                .map_err(|e| ProducerError::Config(e.to_string()))?;
        for variable in unknown {
            tracing::warn!(%variable, "ignoring an ELS_ variable this service does not use");
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ProducerError> {
        let bad = |field: &str, why: &str| Err(ProducerError::Config(format!("`{field}` {why}")));
        if self.brokers.trim().is_empty() {
            return bad("brokers", "must not be empty");
        }
        if self.topic.trim().is_empty() {
            return bad("topic", "must not be empty");
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("listen", "must be an address such as 127.0.0.1:8080");
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes", "must be at least 1024");
        }
        if self.max_events_per_request == 0 {
            return bad("max_events_per_request", "must be at least 1");
        }
        Ok(())
    }
}
