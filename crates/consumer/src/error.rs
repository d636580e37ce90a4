//! The consumer's error type.

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("settings: {0}")]
    Settings(String),
    /// Writes need the settings topic (`settings_topic` is empty).
    #[error("settings are read-only: the settings topic is disabled (set settings_topic)")]
    ReadOnlySettings,
    /// Writing or reading the settings topic failed.
    #[error("settings topic: {0}")]
    SettingsTopic(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("dead-letter store: {0}")]
    Store(#[from] sled::Error),
    #[error("record encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl ConsumerError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Kafka(_) | Self::Store(_) | Self::Io(_) | Self::SettingsTopic(_)
        )
    }
}
