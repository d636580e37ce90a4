//! The idempotent Kafka producer. Plain Kafka configuration only (any Kafka-compatible
//! service works); tests, the local run and compose use Apache Kafka.
//!
//! One producer session serves every request: a request whose events Kafka did not
//! acknowledge in time is answered 503 (its caller retries; nothing was promised), while
//! librdkafka keeps the session's idempotent sequence intact for everyone else. Only a
//! *fatal* idempotence error (the session can never send again) replaces the session with a
//! fresh one (new producer id).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use els_model::ExecutionEvent;
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::util::Timeout;

use crate::error::ProducerError;

/// Sends events keyed by `org_id`; every send waits for the broker's acknowledgement.
#[derive(Clone)]
pub struct EventProducer {
    inner: Arc<RwLock<FutureProducer>>,
    brokers: String,
    topic: String,
    ack_timeout: Duration,
}

fn create(brokers: &str, ack_timeout: Duration) -> Result<FutureProducer, ProducerError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", ack_timeout.as_millis().to_string())
        .set("client.id", "els-producer")
        .create()?)
}

impl EventProducer {
    pub fn new(brokers: &str, topic: &str, ack_timeout: Duration) -> Result<Self, ProducerError> {
        Ok(Self {
            inner: Arc::new(RwLock::new(create(brokers, ack_timeout)?)),
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            ack_timeout,
        })
    }

    fn current(&self) -> FutureProducer {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Produce all events; Ok only when Kafka acknowledged every one of them.
    pub async fn send_all(&self, events: &[ExecutionEvent]) -> Result<(), ProducerError> {
        let producer = self.current();
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap_or_default())
            .collect();
        let sends = events.iter().zip(&payloads).map(|(event, payload)| {
            let record = FutureRecord::to(&self.topic)
                .key(event.org_id.as_bytes())
                .payload(payload.as_slice());
            producer.send(record, Timeout::After(self.ack_timeout))
        });
        let results = join_all(sends).await;
        let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
        match failures.first() {
            None => Ok(()),
            Some((err, _)) => {
                let error = ProducerError::NotAcknowledged {
                    failed: failures.len(),
                    total: events.len(),
                    reason: err.to_string(),
                };
                if let Some((code, reason)) = producer.client().fatal_error() {
                    tracing::warn!(error = %code, reason = %reason, "fatal producer error");
                    self.reset(&producer);
                }
                Err(error)
            }
        }
    }

    /// Replace `failed` (if it is still current) with a fresh producer session, after a fatal
    /// error.
    fn reset(&self, failed: &FutureProducer) {
        let fresh = match create(&self.brokers, self.ack_timeout) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not create a fresh producer; keeping the old one");
                return;
            }
        };
        let old = {
            let mut current = self.inner.write().unwrap_or_else(|p| p.into_inner());
            if !std::ptr::eq(current.client().native_ptr(), failed.client().native_ptr()) {
                return; // another request already reset it
            }
            std::mem::replace(&mut *current, fresh)
        };
        tracing::info!("the producer session failed for good; started a fresh one");
        // Drop the old session off the async threads: purge what it still queues (those
        // requests are answered 503), it cannot send them any more.
        tokio::task::spawn_blocking(move || {
            old.purge(PurgeConfig::default().queue().inflight());
            drop(old);
        });
    }

    /// Whether the broker answers a metadata request for our topic (readiness).
    pub async fn ready(&self) -> bool {
        let producer = self.current();
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
        let _ = self.current().flush(Timeout::After(timeout));
    }
}
