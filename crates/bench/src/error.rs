//! The crate's one error enum. A benchmark has no retry decisions to make: every error ends
//! the run, so the variants only say which step failed and why.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A process, file or socket operation.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A process or broker step of the shared test kit.
    #[error("{0}")]
    Kit(#[from] els_testkit::KitError),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("event: {0}")]
    Model(#[from] els_model::ModelError),
    /// Something did not happen within its bound (the run stops rather than hang).
    #[error("timed out after {seconds:.0} s waiting for {what}")]
    Timeout { what: String, seconds: f64 },
    /// A step that failed for a reason of its own (e.g. a process exited early).
    #[error("{0}")]
    Step(String),
}

impl BenchError {
    pub fn step(what: impl fmt::Display) -> Self {
        BenchError::Step(what.to_string())
    }

    pub fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        BenchError::Io {
            what: what.to_string(),
            source,
        }
    }

    pub fn timeout(what: impl fmt::Display, after: std::time::Duration) -> Self {
        BenchError::Timeout {
            what: what.to_string(),
            seconds: after.as_secs_f64(),
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
