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
    /// Issuing or revoking tokens needs the tokens topic (`tokens_topic` is empty).
    #[error("tokens cannot be issued or revoked: the tokens topic is disabled (set tokens_topic)")]
    ReadOnlyTokens,
    /// Writing or reading the tokens or audit topic failed.
    #[error("{0}")]
    AccessTopic(String),
    /// Writing or reading the state changelog topic failed.
    #[error("state changelog: {0}")]
    Changelog(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The Kafka client failed for good (e.g. fenced): the process exits so it can restart.
    #[error("fatal kafka consumer error: {0}")]
    KafkaFatal(String),
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
            Self::Kafka(_)
                | Self::Store(_)
                | Self::Io(_)
                | Self::SettingsTopic(_)
                | Self::AccessTopic(_)
                | Self::Changelog(_)
        )
    }
}
