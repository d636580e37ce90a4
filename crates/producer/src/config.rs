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
    /// librdkafka's `message.max.bytes`, set explicitly: the largest record the producer
    /// sends. Each event's topic record must fit, so the ingest API refuses with 413 an event
    /// whose JSON exceeds this minus the record overhead and the longest key (see
    /// [`crate::kafka::max_event_bytes`]: 999,836 bytes for the default 1,000,000). Keep it
    /// at most the topic's `max.message.bytes` minus 61 (a record batch's header; Kafka's
    /// default 1,048,588 leaves room for the default).
    pub message_max_bytes: usize,
    /// Most events in one request; more gets 400.
    pub max_events_per_request: usize,
    /// How long a request waits for Kafka's acknowledgement before answering 503.
    pub ack_timeout_ms: u64,
    /// A connection must send a request's headers within this time of connecting or of its
    /// previous response, or it is closed (slow-header clients, idle keep-alive).
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive whole within this time of its headers; a slower one is
    /// answered 408 and the connection closed.
    pub body_read_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "els.events".into(),
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            message_max_bytes: 1_000_000,
            max_events_per_request: 5000,
            ack_timeout_ms: 15_000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
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
        // librdkafka's own range for message.max.bytes is 1000..=1000000000; an event needs
        // room besides the record overhead and key.
        if !(10_000..=1_000_000_000).contains(&self.message_max_bytes) {
            return bad("message_max_bytes", "must be between 10000 and 1000000000");
        }
        if self.header_read_timeout_ms == 0 {
            return bad("header_read_timeout_ms", "must be at least 1");
        }
        if self.body_read_timeout_ms == 0 {
            return bad("body_read_timeout_ms", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bound_slow_clients_and_record_sizes() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.message_max_bytes, 1_000_000);
        assert_eq!(config.header_read_timeout_ms, 10_000);
        assert_eq!(config.body_read_timeout_ms, 10_000);
        let (config, unknown): (Config, _) = els_model::config::layered(
            None,
            "ELS_",
            [
                ("ELS_MESSAGE_MAX_BYTES".to_string(), "500000".to_string()),
                ("ELS_HEADER_READ_TIMEOUT_MS".to_string(), "2000".to_string()),
            ],
        )
        .unwrap();
        assert!(unknown.is_empty());
        assert_eq!(config.message_max_bytes, 500_000);
        assert_eq!(config.header_read_timeout_ms, 2000);
        for bad in [
            Config {
                message_max_bytes: 999,
                ..Config::default()
            },
            Config {
                header_read_timeout_ms: 0,
                ..Config::default()
            },
            Config {
                body_read_timeout_ms: 0,
                ..Config::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
