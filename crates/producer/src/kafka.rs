//! The idempotent Kafka producer. Plain Kafka configuration only, so the same code runs
//! against Apache Kafka in compose and the Kafka-compatible broker used in tests.

use std::time::Duration;

use els_model::ExecutionEvent;
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::error::ProducerError;

/// Sends events keyed by `org_id`; every send waits for the broker's acknowledgement.
#[derive(Clone)]
pub struct EventProducer {
    inner: FutureProducer,
    topic: String,
    ack_timeout: Duration,
}

impl EventProducer {
    pub fn new(brokers: &str, topic: &str, ack_timeout: Duration) -> Result<Self, ProducerError> {
        let inner: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", ack_timeout.as_millis().to_string())
            .set("client.id", "els-producer")
            .create()?;
        Ok(Self {
            inner,
            topic: topic.to_string(),
            ack_timeout,
        })
    }

    /// Produce all events; Ok only when Kafka acknowledged every one of them.
    pub async fn send_all(&self, events: &[ExecutionEvent]) -> Result<(), ProducerError> {
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap_or_default())
            .collect();
        let sends = events.iter().zip(&payloads).map(|(event, payload)| {
            let record = FutureRecord::to(&self.topic)
                .key(event.org_id.as_bytes())
                .payload(payload.as_slice());
            self.inner.send(record, Timeout::After(self.ack_timeout))
        });
        let results = join_all(sends).await;
        let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
        match failures.first() {
            None => Ok(()),
            Some((err, _)) => Err(ProducerError::NotAcknowledged {
                failed: failures.len(),
                total: events.len(),
                reason: err.to_string(),
            }),
        }
    }

    /// Whether the broker answers a metadata request for our topic (readiness).
    pub async fn ready(&self) -> bool {
        let producer = self.inner.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .map(|m| {
                    m.topics()
                        .iter()
                        .any(|t| t.error().is_none() && !t.partitions().is_empty())
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// Wait for outstanding sends on shutdown.
    pub fn flush(&self, timeout: Duration) {
        let _ = self.inner.flush(Timeout::After(timeout));
    }
}
