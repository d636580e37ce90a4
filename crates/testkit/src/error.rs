//! The kit's one error enum: which step failed and why (a test or a benchmark run stops on
//! any of them).

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// A process, file or socket operation.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A request to siem-sim or to a consumer's admin API.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Something did not happen within its bound.
    #[error("timed out after {seconds:.0} s waiting for {what}")]
    Timeout { what: String, seconds: f64 },
    /// A step that failed for a reason of its own (e.g. a process exited early).
    #[error("{0}")]
    Step(String),
}

impl KitError {
    pub fn step(what: impl fmt::Display) -> Self {
        KitError::Step(what.to_string())
    }

    pub fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        KitError::Io {
            what: what.to_string(),
            source,
        }
    }

    pub fn timeout(what: impl fmt::Display, after: std::time::Duration) -> Self {
        KitError::Timeout {
            what: what.to_string(),
            seconds: after.as_secs_f64(),
        }
    }
}

pub type Result<T, E = KitError> = std::result::Result<T, E>;
