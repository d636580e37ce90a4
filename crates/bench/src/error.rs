//! The crate's one error enum. A benchmark has no retry decisions to make: every error ends
//! the run, so the variants only say which step failed and why. Process, broker, HTTP and
//! timing failures are the shared test kit's ([`KitError`]), the benchmark's own steps
//! included; only building events is the benchmark's alone.

use std::fmt;

use els_testkit::KitError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A process, broker, HTTP, JSON or timing step.
    #[error(transparent)]
    Kit(#[from] KitError),
    #[error("event: {0}")]
    Model(#[from] els_model::ModelError),
}

impl BenchError {
    pub fn step(what: impl fmt::Display) -> Self {
        KitError::step(what).into()
    }

    pub fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        KitError::io(what, source).into()
    }

    pub fn timeout(what: impl fmt::Display, after: std::time::Duration) -> Self {
        KitError::timeout(what, after).into()
    }
}

/// The kit's error kinds reach a benchmark step through `?` as they would a test.
macro_rules! through_the_kit {
    ($($source:ty),*) => {$(
        impl From<$source> for BenchError {
            fn from(e: $source) -> Self {
                BenchError::Kit(e.into())
            }
        }
    )*};
}

through_the_kit!(
    rdkafka::error::KafkaError,
    reqwest::Error,
    serde_json::Error
);

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
