//! The producer's error type.

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka did not acknowledge {failed} of {total} events: {reason}")]
    NotAcknowledged {
        failed: usize,
        total: usize,
        reason: String,
    },
    /// An event whose topic record would exceed `message.max.bytes` (HTTP 413).
    #[error(
        "event {index} is {size} bytes as JSON; a topic record holds at most {limit} \
         (message.max.bytes minus the record overhead and the longest key)"
    )]
    EventTooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },
    /// An event could not be serialised (a bug: events that validated always serialise).
    #[error("serialising an event: {0}")]
    Encode(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
}

impl ProducerError {
    /// Whether the caller may try the same request again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Kafka(_) | Self::NotAcknowledged { .. } | Self::Http(_)
        )
    }
}
